"""The entry point: :func:`parse_book` turns uploaded bytes into a :class:`Book`.

The kind is decided by the bytes (:func:`~worker.books.detect.detect_kind`),
then its reader runs: EPUB, DOCX, PDF, HTML, Markdown or plain text.  The
book's own cover is made usable for an audiobook here (an SVG is rasterised,
:mod:`~worker.books.cover`); a cover that cannot be is left out and listed
among the skipped parts.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import PurePosixPath

from worker.books.clean import clean_title
from worker.books.cover import CoverError, usable_cover
from worker.books.detect import (
    decode_text,
    detect_kind,
    media_type,
    sniff_image_type,
    sniff_text_kind,
)
from worker.books.docx import read_docx
from worker.books.epub import read_epub
from worker.books.errors import BookTooLarge, NotABook
from worker.books.frontmatter import build_book
from worker.books.html import read_html
from worker.books.markdown import read_markdown
from worker.books.model import OPENING, Book, BookKind, ReadOptions, Skip, SkipCategory, SourceBook
from worker.books.pdf import read_pdf
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


def _where(filename: str | None, kind: BookKind) -> str:
    """How sources name a one-file book: its file name, or what it is."""
    name = PurePosixPath(filename.replace("\\", "/")).name if filename else ""
    return name or f"the {kind.value.upper()} file"


def _cover(
    data: bytes | None, media: str | None, skips: list[Skip]
) -> tuple[bytes | None, str | None]:
    """The cover as an image an audiobook can carry; if it cannot be one, ``skips`` says why."""
    if data is None:
        return None, None
    try:
        return usable_cover(data, media)
    except CoverError as exc:
        reason = f"{exc}; the audiobook has none"
        skips.append(Skip(SkipCategory.NOT_TEXT, reason, "the cover"))
        return None, None


# Long only by its keyword parameters and docstring; the steps read top-down.
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
    options: ReadOptions | None = None,
) -> Book:
    """Read an uploaded book (EPUB, DOCX, PDF, HTML, Markdown, text) into chapters of text.

    ``filename`` and ``content_type`` (the upload's, with an optional
    ``charset``) help decide the kind; the bytes decide first.  ``title``,
    ``author`` and ``cover`` (with ``cover_type``, sniffed from the bytes when
    omitted) override what the book says about itself; ``options`` say how
    chapters are split and what is read (notes, code, tables).  Raises a
    :class:`~worker.books.errors.BookError` subclass, and nothing else, for any
    upload that cannot become a book; the checks on size and archive safety
    run before anything is decompressed.
    """
    data = bytes(data)
    label = _label(filename)
    if len(data) > max_bytes:
        raise BookTooLarge(f"{label} is {len(data)} bytes; the limit is {max_bytes}")
    kind = detect_kind(data, filename, content_type)
    options = options or ReadOptions()
    kind, found = _read(data, kind, label, filename, content_type, max_unpacked_bytes, options)
    book_title = (
        clean_title(title or "") or found.title or _title_from_filename(filename) or UNTITLED
    )
    sections = tuple(
        dataclasses.replace(s, title=book_title) if OPENING in s.kinds else s
        for s in found.sections
    )
    skips = list(found.skipped)
    own_cover: bytes | None
    if cover is not None:  # the caller's, checked by the caller: its errors are the caller's
        own_cover, own_cover_type = cover, cover_type or sniff_image_type(cover)
    else:
        own_cover, own_cover_type = _cover(found.cover, found.cover_type, skips)
    book = build_book(
        sections,
        title=book_title,
        author=clean_title(author or "") or found.author,
        language=found.language,
        kind=kind,
        cover=own_cover,
        cover_type=own_cover_type,
        skipped=skips,
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
    options: ReadOptions,
) -> tuple[BookKind, SourceBook]:
    """Run the reader of ``kind``; a text upload's kind is settled once it is decoded."""
    where = _where(filename, kind)
    try:
        if kind is BookKind.EPUB:
            return kind, read_epub(
                data, label=label, max_unpacked_bytes=max_unpacked_bytes, options=options
            )
        if kind is BookKind.DOCX:
            return kind, read_docx(
                data,
                label=label,
                where=where,
                max_unpacked_bytes=max_unpacked_bytes,
                options=options,
            )
        if kind is BookKind.PDF:
            return kind, read_pdf(
                data,
                label=label,
                where=where,
                max_unpacked_bytes=max_unpacked_bytes,
                options=options,
            )
        if kind is BookKind.HTML:
            charset = media_type(content_type)[1]
            return kind, read_html(data, label=label, where=where, charset=charset, options=options)
        text = decode_text(data, filename=filename, content_type=content_type)
        kind = sniff_text_kind(text, filename, content_type)
        reader = read_markdown if kind is BookKind.MARKDOWN else read_text
        return kind, reader(text)
    except RecursionError as exc:  # a pathological document; never a crash
        raise NotABook(f"{label} is nested too deeply to read") from exc
