"""The entry point: :func:`parse_book` turns uploaded bytes into a :class:`Book`."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import PurePosixPath

from worker.books.clean import clean_title
from worker.books.detect import decode_text, detect_kind, sniff_image_type, sniff_text_kind
from worker.books.epub import read_epub
from worker.books.errors import BookTooLarge, NotABook
from worker.books.frontmatter import build_book
from worker.books.markdown import read_markdown
from worker.books.model import OPENING, Book, BookKind, SourceBook
from worker.books.plaintext import read_text

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_UNPACKED_BYTES", "parse_book"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 << 20
DEFAULT_MAX_UNPACKED_BYTES = 200 << 20
UNTITLED = "Untitled"


def _title_from_filename(filename: str | None) -> str | None:
    """ "my_great-book.epub" → "my great-book": a last-resort title."""
    if not filename:
        return None
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    return " ".join(re.sub(r"[_]+", " ", stem).split()) or None


def _label(filename: str | None) -> str:
    return repr(filename) if filename else "the upload"


def parse_book(
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    title: str | None = None,
    author: str | None = None,
    cover: bytes | None = None,
    cover_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> Book:
    """Read an uploaded book (EPUB, Markdown or plain text) into chapters of narration text.

    ``filename`` and ``content_type`` (the upload's, with an optional
    ``charset``) help decide the kind; the bytes decide first.  ``title``,
    ``author`` and ``cover`` (with ``cover_type``, sniffed from the bytes when
    omitted) override what the book says about itself.  Raises a
    :class:`~worker.books.errors.BookError` subclass, and nothing else, for any
    upload that cannot become a book; the checks on size and archive safety
    run before anything is decompressed.
    """
    data = bytes(data)
    label = _label(filename)
    if len(data) > max_bytes:
        raise BookTooLarge(f"{label} is {len(data)} bytes; the limit is {max_bytes}")
    kind = detect_kind(data, filename, content_type)
    kind, found = _read(data, kind, label, filename, content_type, max_unpacked_bytes)
    book_title = (
        clean_title(title or "") or found.title or _title_from_filename(filename) or UNTITLED
    )
    sections = tuple(
        dataclasses.replace(s, title=book_title) if OPENING in s.kinds else s
        for s in found.sections
    )
    own_cover, own_cover_type = found.cover, found.cover_type
    if cover is not None:
        own_cover, own_cover_type = cover, cover_type or sniff_image_type(cover)
    book = build_book(
        sections,
        title=book_title,
        author=clean_title(author or "") or found.author,
        language=found.language,
        kind=kind,
        cover=own_cover,
        cover_type=own_cover_type,
        skipped=found.skipped,
        aliases=(found.title, found.author),
    )
    logger.info(
        "parsed %s book %r: %d chapters, %d chars, %d skipped",
        kind,
        book.title,
        len(book.chapters),
        book.chars,
        len(book.skipped),
    )
    return book


def _read(
    data: bytes,
    kind: BookKind,
    label: str,
    filename: str | None,
    content_type: str | None,
    max_unpacked_bytes: int,
) -> tuple[BookKind, SourceBook]:
    """Run the reader of ``kind``; a text upload's kind is settled once it is decoded."""
    try:
        if kind is BookKind.EPUB:
            return kind, read_epub(data, label=label, max_unpacked_bytes=max_unpacked_bytes)
        text = decode_text(data, filename=filename, content_type=content_type)
        kind = sniff_text_kind(text, filename, content_type)
        reader = read_markdown if kind is BookKind.MARKDOWN else read_text
        return kind, reader(text)
    except RecursionError as exc:  # a pathological document; never a crash
        raise NotABook(f"{label} is nested too deeply to read") from exc
