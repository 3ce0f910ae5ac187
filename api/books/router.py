"""``/v1/books``: upload a book (EPUB, Markdown or plain text) and narrate it as a batch.

The upload is read into chapters (:func:`worker.books.parse_book`) inside the
request, so a file that is not a book, has no text, is too large or is a zip
bomb is refused with a 4xx naming the problem before anything is stored or
enqueued.  The answer shows the chapter list the batch was made from, and
what was skipped; ``?dry_run=true`` shows it without making a batch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from pydantic import ValidationError

from api.batches.schemas import BookChapterOut, BookOptions, BookOut, ParsedBookOut
from api.batches.service import PlannedItem, submit_batch
from api.batches.views import batch_out, current_view
from api.deps import Ctx, Tenant
from api.errors import ApiError, InvalidInput, PayloadTooLarge, validation_field
from api.jobs.service import check_idempotency_key
from api.schemas import ErrorOut
from worker.audio import InvalidBook
from worker.audio.book_output import inspect_cover
from worker.batches.model import BookInfo
from worker.books import DEFAULT_MAX_BYTES, Book, BookError, BookTooLarge, parse_book
from worker.settings import Settings

router = APIRouter(
    prefix="/books",
    tags=["books"],
    responses={
        401: {"model": ErrorOut, "description": "missing or unknown API key"},
        422: {
            "model": ErrorOut,
            "description": "not a book, a book without text, an unsafe archive, or bad options",
        },
        429: {"model": ErrorOut, "description": "rate limited; see Retry-After"},
    },
)

#: A book upload may be this many times ``SHOAL_MAX_TEXT_BYTES`` (at most 50 MiB).
BOOK_UPLOAD_FACTOR = 25
MAX_COVER_BYTES = 10 << 20


class BookRefused(ApiError):
    """The upload cannot become a book; status and code come from the :class:`BookError`."""

    def __init__(self, exc: BookError) -> None:
        super().__init__(exc.message, field="file", code=exc.code)
        self.status = exc.http_status


def max_book_bytes(settings: Settings) -> int:
    """Largest book upload accepted."""
    return min(DEFAULT_MAX_BYTES, BOOK_UPLOAD_FACTOR * settings.max_text_bytes)


def _read(upload: UploadFile, limit: int, field: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        message = f"{field}: the upload is over the limit of {limit} bytes"
        if field == "file":
            raise BookRefused(BookTooLarge(message))
        raise PayloadTooLarge(message, field=field)
    return data


def _options(raw: str | None) -> BookOptions:
    if raw is None or not raw.strip():
        return BookOptions()
    try:
        return BookOptions.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        inner = validation_field(err.get("loc", ()))
        field = f"options.{inner}" if inner else "options"
        if err.get("type") == "json_invalid":
            field = "options"
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}", field=field) from exc


def _spoken(title: str, text: str) -> str:
    """The chapter's text with its title read first."""
    stop = "" if title.rstrip()[-1:] in ".!?:;…" else "."
    return f"{title}{stop}\n\n{text}"


def _parsed(book: Book, price: float) -> ParsedBookOut:
    return ParsedBookOut(
        title=book.title,
        author=book.author,
        language=book.language,
        kind=book.kind.value,
        chars=book.chars,
        utf8_bytes=book.utf8_bytes,
        estimated_cost_usd=round(book.utf8_bytes * price / 1e6, 6),
        cover=book.cover is not None,
        chapters=[
            BookChapterOut(
                index=c.index,
                title=c.title,
                chars=c.chars,
                utf8_bytes=c.utf8_bytes,
                source=c.source,
            )
            for c in book.chapters
        ],
        skipped=list(book.skipped),
    )


@router.post(
    "",
    status_code=202,
    response_model=BookOut,
    summary="Narrate a book",
    responses={
        200: {"model": BookOut, "description": "a dry run, or an Idempotency-Key replay"},
        409: {"model": ErrorOut, "description": "Idempotency-Key used with another upload"},
        413: {"model": ErrorOut, "description": "the upload (or a chapter) is over the limit"},
        503: {"model": ErrorOut, "description": "the queue is unreachable; nothing was made"},
    },
)
def create_book(
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    file: Annotated[UploadFile, File(description="the book: .epub, .md or .txt")],
    title: Annotated[str | None, Form(max_length=300, description="overrides the book's")] = None,
    author: Annotated[str | None, Form(max_length=300, description="overrides the book's")] = None,
    cover: Annotated[UploadFile | None, File(description="JPEG or PNG cover image")] = None,
    options: Annotated[
        str | None,
        Form(
            description='JSON: {"defaults", "produce", "callback_url", "metadata", '
            '"speak_titles"} as for batches'
        ),
    ] = None,
    dry_run: Annotated[bool, Query(description="only read the book; make no batch")] = False,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="retries with the same upload get one batch"),
    ] = None,
) -> BookOut:
    """Read the book into chapters and queue one batch item per chapter."""
    settings = ctx.settings
    key = check_idempotency_key(idempotency_key)
    opts = _options(options)
    data = _read(file, max_book_bytes(settings), "file")
    cover_data: bytes | None = None
    cover_type: str | None = None
    if cover is not None and (cover.filename or cover.size):
        cover_data = _read(cover, MAX_COVER_BYTES, "cover")
        try:
            cover_type = inspect_cover(cover_data, None).mime
        except InvalidBook as exc:
            raise InvalidInput(str(exc), field="cover") from exc
    try:
        book = parse_book(
            data,
            filename=file.filename,
            content_type=file.content_type,
            title=title,
            author=author,
            cover=cover_data,
            cover_type=cover_type,
            max_bytes=max_book_bytes(settings),
        )
    except BookError as exc:
        raise BookRefused(exc) from exc
    skipped = list(book.skipped)
    if book.cover is not None and cover_data is None:
        try:
            cover_type = inspect_cover(book.cover, book.cover_type).mime
            cover_data = book.cover
        except InvalidBook as exc:
            skipped.append(f"the book's cover ({exc}); the audiobook has none")
    parsed = _parsed(book, settings.price_per_million_bytes_usd)
    parsed.skipped = skipped
    parsed.cover = cover_data is not None
    if dry_run:
        response.status_code = 200
        return BookOut(book=parsed, batch=None)

    items = []
    for chapter in book.chapters:
        text = _spoken(chapter.title, chapter.text) if opts.speak_titles else chapter.text
        if len(text.encode()) > settings.max_text_bytes:
            raise PayloadTooLarge(
                f"file: chapter {chapter.index + 1} ({chapter.title!r}) is "
                f"{len(text.encode())} bytes of text; one chapter may have at most "
                f"{settings.max_text_bytes} (SHOAL_MAX_TEXT_BYTES)",
                field="file",
            )
        items.append(
            PlannedItem(
                title=chapter.title,
                text=text,
                source=chapter.source,
                field=f"chapters.{chapter.index}",
            )
        )
    fingerprint: dict[str, Any] = {
        "file": hashlib.sha256(data).hexdigest(),
        "filename": file.filename,
        "title": title,
        "author": author,
        "cover": hashlib.sha256(cover_data).hexdigest() if cover_data else None,
        "options": json.loads(opts.model_dump_json()),
    }
    info = BookInfo(
        title=book.title,
        author=book.author,
        language=book.language,
        cover_type=cover_type,
        kind=book.kind.value,
        filename=file.filename,
        skipped=skipped,
    )
    submission = submit_batch(
        ctx,
        tenant,
        items=items,
        options=opts,
        book=info,
        cover=cover_data,
        idempotency=("books", key) if key else None,
        request_fingerprint=fingerprint,
    )
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    if not submission.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return BookOut(book=parsed, batch=batch_out(current_view(ctx, submission.batch), ctx.storage))
