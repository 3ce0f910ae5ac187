"""Decide what kind of book an upload is, and decode text uploads.

The bytes decide first, the name and content type second: a zip is read as an
EPUB whatever it is called, and a file that *claims* to be an EPUB (by its
``.epub`` name or ``application/epub+zip`` type) but is not a zip is refused
rather than read as text.  Among text files, a ``.md`` name or a
``text/markdown`` type means Markdown, a ``.txt`` name means plain text, and
otherwise Markdown headings (``# Title``) or YAML front matter in the text
decide.  Formats we recognise but cannot read (PDF, MOBI, Word) are refused by
name, so the user learns what to convert to.
"""

from __future__ import annotations

import codecs
import re
from email.message import Message
from pathlib import PurePosixPath

from worker.books.errors import NotABook
from worker.books.model import BookKind

__all__ = ["decode_text", "detect_kind", "media_type", "sniff_image_type", "sniff_text_kind"]

EPUB_TYPE = "application/epub+zip"
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local header, or an empty archive

# Formats people upload as "books" that this package does not read.
_FOREIGN = (
    (b"%PDF-", "a PDF"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_MARKDOWN_HINT = re.compile(r"^(?:#{1,6}[ \t]+\S|---[ \t]*\n(?:title|author)[ \t]*:)", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Share of control characters (other than line breaks and tabs) beyond which
# "text" is really binary data that happened to decode.
_MAX_CONTROL_SHARE = 0.01


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """The bare media type (lowercase) and the ``charset`` parameter of a Content-Type."""
    if not content_type:
        return "", None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _suffix(filename: str | None) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower() if filename else ""


def _describe(filename: str | None) -> str:
    return repr(filename) if filename else "the upload"


def detect_kind(data: bytes, filename: str | None, content_type: str | None) -> BookKind:
    """Which reader to use for ``data``; :class:`NotABook` when none fits."""
    mtype, _ = media_type(content_type)
    suffix = _suffix(filename)
    if data.startswith(ZIP_MAGIC):
        return BookKind.EPUB
    claims_epub = suffix == ".epub" or mtype == EPUB_TYPE
    if claims_epub:
        raise NotABook(f"{_describe(filename)} is not an EPUB: it is not a zip archive")
    if not data.strip():
        raise NotABook(f"{_describe(filename)} is empty")
    for magic, what in _FOREIGN:
        if data.startswith(magic):
            raise NotABook(f"{_describe(filename)} is {what}; upload EPUB, Markdown or plain text")
    if data[60:68] == b"BOOKMOBI":
        raise NotABook(f"{_describe(filename)} is a MOBI/Kindle book; convert it to EPUB")
    if suffix in MARKDOWN_SUFFIXES or mtype in MARKDOWN_TYPES:
        return BookKind.MARKDOWN
    if suffix in TEXT_SUFFIXES:
        return BookKind.TEXT
    if mtype and not (mtype.startswith("text/") or mtype == "application/octet-stream"):
        raise NotABook(f"{_describe(filename)} has content type {mtype!r}, not a book")
    # The kind of a text upload is settled by looking at its text (sniff_text_kind).
    return BookKind.TEXT


def sniff_text_kind(text: str, filename: str | None, content_type: str | None) -> BookKind:
    """Markdown or plain text for decoded ``text`` whose name and type did not settle it."""
    mtype, _ = media_type(content_type)
    suffix = _suffix(filename)
    if suffix in MARKDOWN_SUFFIXES or mtype in MARKDOWN_TYPES:
        return BookKind.MARKDOWN
    if suffix in TEXT_SUFFIXES:
        return BookKind.TEXT
    return BookKind.MARKDOWN if _MARKDOWN_HINT.search(text) else BookKind.TEXT


def decode_text(data: bytes, *, filename: str | None, content_type: str | None) -> str:
    """Decode a text upload: BOM, then the declared charset, then UTF-8, then Windows-1252.

    Bytes that decode but are mostly control characters (a binary file with a
    ``.txt`` name) are refused as :class:`NotABook`.
    """
    _, charset = media_type(content_type)
    candidates: list[str] = []
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            candidates.append(encoding)
            break
    if charset:
        candidates.append(charset)
    candidates += ["utf-8", "cp1252"]
    text: str | None = None
    for encoding in candidates:
        try:
            text = data.decode(encoding)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        raise NotABook(f"{_describe(filename)} is not readable text (not UTF-8 or Windows-1252)")
    controls = len(text) - len(_CONTROL.sub("", text))
    if "\x00" in text or controls > _MAX_CONTROL_SHARE * len(text):
        raise NotABook(f"{_describe(filename)} looks like binary data, not text")
    return text


_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The media type of JPEG, PNG, GIF or WebP image bytes; None for anything else."""
    for magic, kind in _IMAGE_MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
