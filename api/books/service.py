"""What the book route does, apart from HTTP: read an upload into chapters, submit a batch.

The upload is read into chapters (:func:`worker.books.parse_book`) inside the
request, so a file that is not a book, has no text (a scanned PDF), is too
large or is a zip bomb is refused with a 4xx naming the problem before
anything is stored or enqueued.  Each chapter becomes one batch item
(:func:`api.batches.service.submit_batch`), its title read first as a narrator
says it (:func:`worker.books.speakable`) while the item keeps the book's own;
a dry run stops after reading, and shows every skipped part with its reason.
A range in ``options.chapters`` keeps only those chapters (1-based, in book
order, each with its own title); the rest are listed as not narrated and not
billed, and a range past the book's end is refused before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError

from api.batches.schemas import VoiceIn
from api.batches.service import PlannedItem, submit_batch
from api.books.schemas import (
    BookChapterOut,
    BookOptions,
    ChapterRange,
    ParsedBookOut,
    SkippedPartOut,
)
from api.deps import ApiContext
from api.errors import ApiError, InvalidInput, PayloadTooLarge, validation_field
from api.idempotency import Created, check_idempotency_key
from worker.audio import InvalidBook
from worker.audio.book_output import inspect_cover
from worker.batches.model import Batch, BookInfo
from worker.books import (
    DEFAULT_MAX_BYTES,
    Book,
    BookError,
    BookKind,
    BookTooLarge,
    Chapter,
    CoverError,
    Skip,
    SkipCategory,
    parse_book,
    speakable,
    usable_cover,
)
from worker.books.clean import SCENE_BREAK
from worker.jobs.markup import escape_tags
from worker.jobs.model import billing_for_bytes
from worker.settings import Settings, TenantConfig

#: A book upload may be this many times ``SHOAL_MAX_TEXT_BYTES`` (at most 50 MiB).
BOOK_UPLOAD_FACTOR = 25
MAX_COVER_BYTES = 10 << 20


class BookRefused(ApiError):
    """The upload cannot become a book; status and code come from the :class:`BookError`."""

    def __init__(self, exc: BookError) -> None:
        super().__init__(exc.message, field="file", code=exc.code, status=exc.http_status)


@dataclass(frozen=True, slots=True)
class BookUpload:
    """The form of ``POST /v1/books``: the book, and what may override or add to it."""

    file: UploadFile
    title: str | None = None
    author: str | None = None
    cover: UploadFile | None = None
    options: str | None = None  # BookOptions as JSON


@dataclass(frozen=True, slots=True)
class BookSubmission:
    """What was read from the upload, and the batch narrating it (None in a dry run)."""

    book: ParsedBookOut
    batch: Created[Batch] | None


@dataclass(frozen=True, slots=True)
class _Cover:
    """The cover image the audiobook gets, if any."""

    data: bytes | None = None
    mime: str | None = None


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


def parse_options(raw: str | None) -> BookOptions:
    """The ``options`` form field; :class:`InvalidInput` naming ``options.<field>``."""
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


def _uploaded_cover(upload: UploadFile | None) -> _Cover:
    """The cover image uploaded beside the book, checked; none if the field is empty."""
    if upload is None or not (upload.filename or upload.size):
        return _Cover()
    data = _read(upload, MAX_COVER_BYTES, "cover")
    try:
        data, _ = usable_cover(data, upload.content_type)  # an SVG becomes a PNG
        return _Cover(data, inspect_cover(data, None).mime)
    except CoverError as exc:
        raise InvalidInput(f"cover: {exc}", field="cover") from exc
    except InvalidBook as exc:
        raise InvalidInput(str(exc), field="cover") from exc


def _read_book(
    settings: Settings, upload: BookUpload, data: bytes, cover: _Cover, opts: BookOptions
) -> Book:
    try:
        return parse_book(
            data,
            filename=upload.file.filename,
            content_type=upload.file.content_type,
            title=upload.title,
            author=upload.author,
            cover=cover.data,
            cover_type=cover.mime,
            max_bytes=max_book_bytes(settings),
            options=opts.read_options(),
        )
    except BookError as exc:
        raise BookRefused(exc) from exc


def _book_cover(book: Book, uploaded: _Cover, skips: list[Skip]) -> _Cover:
    """The uploaded cover, else the book's own if usable (if not, ``skips`` says why)."""
    if uploaded.data is not None or book.cover is None:
        return uploaded
    try:
        return _Cover(book.cover, inspect_cover(book.cover, book.cover_type).mime)
    except InvalidBook as exc:
        reason = f"{str(exc).removeprefix('cover: ')}; the audiobook has none"
        skips.append(Skip(SkipCategory.NOT_TEXT, reason, "the cover"))
        return uploaded


def _chosen(book: Book, chosen: ChapterRange | None) -> tuple[Chapter, ...]:
    """The chapters ``options.chapters`` names, in book order; all when it names none.

    :class:`InvalidInput` on ``options.chapters`` if the range reaches past the
    book's last chapter: a range that silently narrated less would bill and
    build a book other than the one asked for.
    """
    if chosen is None:
        return book.chapters
    count = len(book.chapters)
    beyond = chosen.beyond(count)
    if beyond:
        has = f"{count} chapters (1-{count})" if count > 1 else "1 chapter (1)"
        past = ChapterRange(beyond)
        which = str(past) if past == chosen else f"{past} of {chosen}"
        raise InvalidInput(
            f"options.chapters: the book has {has}: {which} is past its end",
            field="options.chapters",
        )
    return tuple(c for c in book.chapters if c.index + 1 in chosen)


def _check_chapter_voices(book: Book, opts: BookOptions) -> None:
    """:class:`InvalidInput` on ``options.chapter_voices`` for a chapter the book lacks."""
    count = len(book.chapters)
    for number in sorted(opts.chapter_voices):
        if not 1 <= number <= count:
            raise InvalidInput(
                f"options.chapter_voices: the book has no chapter {number} (it has 1-{count})",
                field="options.chapter_voices",
            )


def _parsed(
    book: Book,
    chosen: tuple[Chapter, ...],
    price: float,
    skips: list[Skip],
    *,
    cover: bool,
    chapter_range: ChapterRange | None,
) -> ParsedBookOut:
    """The answer's account of the book; its totals count the chapters narrated."""
    narrated = {c.index for c in chosen}
    utf8_bytes = sum(c.utf8_bytes for c in chosen)
    return ParsedBookOut(
        title=book.title,
        author=book.author,
        language=book.language,
        kind=book.kind.value,
        chars=sum(c.chars for c in chosen),
        utf8_bytes=utf8_bytes,
        estimated_cost_usd=billing_for_bytes(utf8_bytes, price).estimated_cost_usd,
        cover=cover,
        chapters=[
            BookChapterOut(
                index=c.index,
                title=c.title,
                chars=c.chars,
                utf8_bytes=c.utf8_bytes,
                estimated_cost_usd=billing_for_bytes(c.utf8_bytes, price).estimated_cost_usd,
                source=c.source,
                narrated=c.index in narrated,
            )
            for c in book.chapters
        ],
        chapter_range=None if chapter_range is None else str(chapter_range),
        skipped=[str(skip) for skip in skips],
        skipped_parts=[
            SkippedPartOut(
                category=skip.category, reason=skip.reason, source=skip.source, title=skip.title
            )
            for skip in skips
        ],
    )


def _spoken(title: str, text: str) -> str:
    """The chapter's text with its title read first."""
    stop = "" if title.rstrip()[-1:] in ".!?:;…" else "."
    return f"{title}{stop}\n\n{text}"


#: Kinds of book an author writes by hand, whose ``<break>`` and ``<voice>`` tags are markup.
_MANUSCRIPTS = frozenset({BookKind.MARKDOWN, BookKind.TEXT})


def _narrated(text: str, scene_break_ms: int, markup: bool) -> str:
    """A chapter's text as a job reads it: each scene break a pause of ``scene_break_ms``.

    With ``markup`` (a Markdown or text manuscript), the author's ``<break>`` and
    ``<voice>`` tags are read as tags; in a published book (EPUB, HTML, DOCX,
    PDF) the same characters are the book's text, and never start a tag.
    """
    pause = f'<break time="{scene_break_ms}ms"/>'
    paragraphs = (text if markup else escape_tags(text)).split("\n\n")
    return "\n\n".join(pause if p == SCENE_BREAK else p for p in paragraphs)


def _items(
    chapters: tuple[Chapter, ...], opts: BookOptions, settings: Settings, *, markup: bool
) -> list[PlannedItem]:
    """One batch item per chapter; :class:`PayloadTooLarge` naming a chapter over the limit.

    The item's title (the chapter marker) is the book's own; the text read
    starts with the title as ``opts.titles`` says to read it.
    """
    items = []
    for chapter in chapters:
        voice = opts.chapter_voices.get(chapter.index + 1)
        text = _narrated(chapter.text, opts.scene_break_ms, markup)
        if opts.speak_titles:
            text = _spoken(speakable(chapter.title, opts.titles), text)
        size = len(text.encode())
        if size > settings.max_text_bytes:
            raise PayloadTooLarge(
                f"file: chapter {chapter.index + 1} ({chapter.title!r}) is "
                f"{size} bytes of text; one chapter may have at most "
                f"{settings.max_text_bytes} (SHOAL_MAX_TEXT_BYTES)",
                field="file",
            )
        items.append(
            PlannedItem(
                title=chapter.title,
                text=text,
                voice=VoiceIn(voice=voice) if voice is not None else None,
                source=chapter.source,
                field=f"chapters.{chapter.index}",
            )
        )
    return items


def _fingerprint(upload: BookUpload, data: bytes, cover: _Cover, opts: BookOptions) -> Any:
    """What stands for the request for its Idempotency-Key: the files by digest, the rest as is."""
    return {
        "file": hashlib.sha256(data).hexdigest(),
        "filename": upload.file.filename,
        "title": upload.title,
        "author": upload.author,
        "cover": hashlib.sha256(cover.data).hexdigest() if cover.data else None,
        "options": json.loads(opts.model_dump_json()),
    }


def submit_book(
    ctx: ApiContext,
    tenant: TenantConfig,
    upload: BookUpload,
    *,
    dry_run: bool,
    idempotency_key: str | None,
) -> BookSubmission:
    """Read the upload into chapters and submit them as one batch (not in a dry run)."""
    settings = ctx.settings
    key = check_idempotency_key(idempotency_key)
    opts = parse_options(upload.options)
    data = _read(upload.file, max_book_bytes(settings), "file")
    uploaded = _uploaded_cover(upload.cover)
    book = _read_book(settings, upload, data, uploaded, opts)
    chapter_range = opts.chapter_range()
    chapters = _chosen(book, chapter_range)
    _check_chapter_voices(book, opts)
    skips = list(book.skips)
    cover = _book_cover(book, uploaded, skips)
    parsed = _parsed(
        book,
        chapters,
        settings.price_per_million_bytes_usd,
        skips,
        cover=cover.data is not None,
        chapter_range=chapter_range,
    )
    if dry_run:
        return BookSubmission(parsed, None)
    info = BookInfo(
        title=book.title,
        author=book.author,
        language=book.language,
        cover_type=cover.mime,
        kind=book.kind.value,
        filename=upload.file.filename,
        skipped=parsed.skipped,
    )
    batch = submit_batch(
        ctx,
        tenant,
        items=_items(chapters, opts, settings, markup=book.kind in _MANUSCRIPTS),
        options=opts,
        book=info,
        cover=cover.data,
        idempotency=("books", key) if key else None,
        request_fingerprint=_fingerprint(upload, data, cover, opts),
    )
    return BookSubmission(parsed, batch)
