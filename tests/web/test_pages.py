"""The web app's pages and the offline docs, without a browser or a server (pure).

The app is the real one (:func:`api.app.create_app`) driven in-process; no
request reaches Redis or storage, because the pages render no tenant data.
What the browser tests cannot see cheaply is checked here: every page renders
with its script, the scripts' imports resolve, nothing shipped points at
another host, and the docs pages load only local files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web import docs, pages
from shoal_run.stack import Ready
from worker.jobs.model import ErrorCode
from worker.settings import Settings

STATIC = pages.HERE / "static"
PATHS = {
    "/app/signin": "signin",
    "/app/jobs": "jobs",
    "/app/jobs/new": "new-job",
    "/app/jobs/job_123": "job",
    "/app/books": "books",
    "/app/books/new": "new-book",
    "/app/books/bat_123": "book",
    "/app/voices": "voices",
    "/app/lexicons": "lexicons",
    "/app/lexicons/new": "lexicon",
    "/app/lexicons/lex_123": "lexicon",
    "/app/operations": "operations",
}


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as client:
        yield client


class Addresses(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("src", "href") and v]


def addresses(html: str) -> list[str]:
    parser = Addresses()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(("path", "script"), PATHS.items())
def test_every_page_renders_with_its_script_and_local_files_only(
    http: TestClient, path: str, script: str
) -> None:
    response = http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'data-page="{script}"' in html
    assert (STATIC / "js" / f"{script}.js").is_file()
    for address in addresses(html):
        assert address.startswith(("/", "#")), address  # this server's own, nothing else
        if address.startswith("/app/static/"):
            assert (STATIC / address.removeprefix("/app/static/")).is_file(), address
    assert re.search(r'<main id="main"', html) and 'role="alert"' in html


def test_an_id_from_the_address_is_escaped(http: TestClient) -> None:
    html = http.get('/app/jobs/"><img src=x onerror=alert(1)>').text
    assert "<img src=x" not in html
    assert 'data-id="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html


def test_the_front_door_leads_to_the_app_and_unknown_pages_say_so(http: TestClient) -> None:
    assert http.get("/", follow_redirects=False).headers["location"] == "/app/"
    assert http.get("/app/", follow_redirects=False).headers["location"] == "/app/jobs"
    missing = http.get("/app/nothing/here")
    assert missing.status_code == 404 and "There is no page at this address" in missing.text
    assert http.get("/v1/nothing").json()["error"]["code"] == "not_found"  # the API is unchanged


def test_every_script_import_resolves_and_nothing_shipped_names_another_host() -> None:
    for js in (STATIC / "js").glob("*.js"):
        source = js.read_text()
        for target in re.findall(r'from\s+"(\./[^"]+)"', source):
            assert (js.parent / target).is_file(), f"{js.name} imports {target}"
        assert "eval(" not in source and "innerHTML" not in source, js.name  # text, never markup
    for f in [*STATIC.rglob("*.*"), *(pages.HERE / "templates").glob("*.html")]:
        text = f.read_text()
        hosts = set(re.findall(r"https?://([^/\"' )]+)", text)) - {"www.w3.org"}  # SVG namespace
        assert not hosts, f"{f.name} names {hosts}"


def test_every_error_code_has_words() -> None:
    assert set(pages.ERROR_HINTS) == set(ErrorCode)
    assert all(text.endswith(".") for text in pages.ERROR_HINTS.values())


def test_the_docs_load_only_files_of_this_server(http: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        response = http.get(path)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        found = addresses(response.text)
        assert found and all(a.startswith("/") for a in found), found
        for address in found:
            assert http.get(address).status_code == 200, address
    assert "fonts.googleapis" not in http.get("/redoc").text
    assert http.get("/openapi.json").json()["info"]["title"] == "shoal"


def test_the_redoc_bundle_fetches_nothing_from_elsewhere(http: TestClient) -> None:
    original = (docs.assets_dir() / docs.REDOC_JS).read_bytes()
    assert all(remote in original for remote in docs.REDOC_FETCHES)  # still worth replacing
    served = http.get(f"{docs.ASSETS_URL}/{docs.REDOC_JS}")
    assert served.headers["content-type"].startswith("text/javascript")
    assert not any(remote in served.content for remote in docs.REDOC_FETCHES)
    assert len(served.content) > 500_000  # the whole bundle, not a stub


def test_the_web_pages_are_not_in_the_api_document(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/app", "/docs", "/redoc"))]


def test_the_make_run_banner_shows_the_web_app() -> None:
    ready = Ready(
        api_url="http://127.0.0.1:8000",
        api_key="shoal_abc",
        tenant="local",
        redis="redis",
        provider="local_tts",
        storage="rclone",
        outputs="state/s3/shoal/",
        outputs_dir=None,
        logs_dir=Path("state/logs"),
    )
    assert "web app   http://127.0.0.1:8000/app/" in ready.banner()
