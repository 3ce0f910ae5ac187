"""The web app's pages under ``/app``: server-rendered shells that a little script fills in.

Each page is a Jinja2 template (``api/web/templates/``) with its headings,
forms and labels, and one ES module (``api/web/static/js/``) that calls the
``/v1`` API with the API key the user signed in with.  The key lives in the
tab's session storage and travels as a Bearer token, so the server renders no
tenant data: a page is the same for everyone, and the API checks every call::

    /app/                    → /app/jobs
    /app/signin              the API key
    /app/jobs                list, filters, live progress; /app/jobs/new; /app/jobs/{id}
    /app/books               the books, newest first; /app/books/new (upload, preview, start);
                             /app/books/{id}
    /app/voices              list, upload, preview
    /app/lexicons            list; /app/lexicons/new; /app/lexicons/{id} (edit rules)
    /app/operations          queues, provider slots, recent failures

Choices the API already knows (statuses, formats, error codes) are written
into the pages from the Python enums, so the script keeps no copy of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from worker.audio import OutputFormat
from worker.batches.model import BatchStatus, CombinedFormat
from worker.jobs.model import ErrorCode, JobStatus

HERE = Path(__file__).resolve().parent
#: Where the app lives; its static files are under ``{PREFIX}/static``.
PREFIX = "/app"

templates = Jinja2Templates(directory=HERE / "templates")

#: A job's error code in words: what happened and what to do about it.
ERROR_HINTS: dict[ErrorCode, str] = {
    ErrorCode.PROVIDER_AUTH: "The speech provider refused shoal's credentials. "
    "An operator needs to check the provider key.",
    ErrorCode.PROVIDER_CREDIT: "The speech provider account is out of credit.",
    ErrorCode.PROVIDER_REQUEST: "The speech provider refused the request as it was made.",
    ErrorCode.REFERENCE_AUDIO: "A reference recording could not be read as audio.",
    ErrorCode.VOICE_DELETED: "The voice was deleted while the job waited in the queue.",
    ErrorCode.PROVIDER_UNAVAILABLE: "The speech provider kept failing; shoal retried "
    "and then gave up. Try again later.",
    ErrorCode.STORAGE: "The finished audio could not be stored. Try again later.",
    ErrorCode.INTERNAL: "Something went wrong inside shoal. An operator can find the "
    "details in the worker's log.",
}


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its template, its script, its title and the navigation entry it lights."""

    template: str
    script: str
    title: str
    nav: str


PAGES: dict[str, Page] = {
    "signin": Page("signin.html", "signin", "Sign in", ""),
    "jobs": Page("jobs.html", "jobs", "Jobs", "jobs"),
    "new_job": Page("new_job.html", "new-job", "New narration", "new_job"),
    "job": Page("job.html", "job", "Job", "jobs"),
    "books": Page("books.html", "books", "Books", "books"),
    "new_book": Page("new_book.html", "new-book", "New book", "books"),
    "book": Page("book.html", "book", "Book", "books"),
    "voices": Page("voices.html", "voices", "Voices", "voices"),
    "lexicons": Page("lexicons.html", "lexicons", "Lexicons", "lexicons"),
    "lexicon": Page("lexicon.html", "lexicon", "Lexicon", "lexicons"),
    "operations": Page("operations.html", "operations", "Operations", "operations"),
    "not_found": Page("not_found.html", "common", "Page not found", ""),
}

#: The navigation bar: (page name, link, label).
NAV = (
    ("jobs", "/jobs", "Jobs"),
    ("new_job", "/jobs/new", "New narration"),
    ("books", "/books", "Books"),
    ("voices", "/voices", "Voices"),
    ("lexicons", "/lexicons", "Lexicons"),
    ("operations", "/operations", "Operations"),
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def choices() -> dict[str, Any]:
    """What the templates offer in their menus, from the enums the API validates against."""
    return {
        "job_statuses": [s.value for s in JobStatus],
        "batch_statuses": [s.value for s in BatchStatus],
        "formats": [f.value for f in OutputFormat if f is not OutputFormat.PCM],
        "combined_formats": [f.value for f in CombinedFormat],
        "error_hints": {code.value: text for code, text in ERROR_HINTS.items()},
    }


def root_of(request: Request) -> str:
    """Where the API is mounted (its ``root_path``, behind a proxy), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``name`` with ``context`` (ids from the path), as HTML."""
    page = PAGES[name]
    root = root_of(request)
    return templates.TemplateResponse(
        request,
        page.template,
        {
            "root": root,
            "app": root + PREFIX,
            "page": page,
            "nav": NAV,
            **choices(),
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


@router.get("", response_class=RedirectResponse, response_model=None)
@router.get("/", response_class=RedirectResponse, response_model=None)
def home(request: Request) -> RedirectResponse:
    """The app's front door: the job list (which sends a signed-out user to sign in)."""
    root = root_of(request)
    return RedirectResponse(f"{root}{PREFIX}/jobs", status_code=303)


@router.get("/signin", response_class=HTMLResponse, response_model=None)
def signin(request: Request) -> HTMLResponse:
    """Sign in with an API key."""
    return render(request, "signin")


@router.get("/jobs", response_class=HTMLResponse, response_model=None)
def jobs(request: Request) -> HTMLResponse:
    """The job list."""
    return render(request, "jobs")


@router.get("/jobs/new", response_class=HTMLResponse, response_model=None)
def new_job(request: Request) -> HTMLResponse:
    """The new-narration form."""
    return render(request, "new_job")


@router.get("/jobs/{job_id}", response_class=HTMLResponse, response_model=None)
def job(request: Request, job_id: str) -> HTMLResponse:
    """One job."""
    return render(request, "job", item_id=job_id)


@router.get("/books", response_class=HTMLResponse, response_model=None)
def books(request: Request) -> HTMLResponse:
    """The tenant's books, newest first."""
    return render(request, "books")


@router.get("/books/new", response_class=HTMLResponse, response_model=None)
def new_book(request: Request) -> HTMLResponse:
    """Upload a book, preview it, start it."""
    return render(request, "new_book")


@router.get("/books/{batch_id}", response_class=HTMLResponse, response_model=None)
def book(request: Request, batch_id: str) -> HTMLResponse:
    """One book (a batch)."""
    return render(request, "book", item_id=batch_id)


@router.get("/voices", response_class=HTMLResponse, response_model=None)
def voices(request: Request) -> HTMLResponse:
    """Voices: list, upload, preview."""
    return render(request, "voices")


@router.get("/lexicons", response_class=HTMLResponse, response_model=None)
def lexicons(request: Request) -> HTMLResponse:
    """Lexicons: the list."""
    return render(request, "lexicons")


@router.get("/lexicons/new", response_class=HTMLResponse, response_model=None)
def new_lexicon(request: Request) -> HTMLResponse:
    """A new lexicon, edited like any other."""
    return render(request, "lexicon", item_id="")


@router.get("/lexicons/{lexicon_id}", response_class=HTMLResponse, response_model=None)
def lexicon(request: Request, lexicon_id: str) -> HTMLResponse:
    """One lexicon's rules, to edit."""
    return render(request, "lexicon", item_id=lexicon_id)


@router.get("/operations", response_class=HTMLResponse, response_model=None)
def operations(request: Request) -> HTMLResponse:
    """Queues, provider slots and recent failures."""
    return render(request, "operations")


@router.get("/{rest:path}", response_class=HTMLResponse, response_model=None)
def not_found(request: Request, rest: str) -> HTMLResponse:
    """Any other address under the app: a page saying so, in words."""
    return render(request, "not_found", status_code=404)
