"""Decide what kind of book an upload is, and decode text uploads.

The bytes decide first, the name and content type second:

* a zip is a Word document when it holds ``word/document.xml``, else it is
  read as an EPUB (whose reader says what is missing);
* ``%PDF-`` near the start is a PDF, whatever the file is called;
* a text that opens with ``<!DOCTYPE html>`` or ``<html>`` is HTML.

A file whose name or content type *claims* a kind its bytes are not (a
``.docx`` that is no zip, a ``.pdf`` without a PDF header, an ``.html`` that
is a picture) is refused saying both what it claimed and, when we can tell,
what it is.  Among text files, a ``.md`` name or a ``text/markdown`` type
means Markdown, a ``.txt`` name plain text, and otherwise Markdown headings
(``# Title``) or YAML front matter in the text decide.  Formats we recognise
but cannot read (RTF, legacy Word, MOBI, archives, images) are refused by
name, so the user learns what to convert to.
"""

from __future__ import annotations

import codecs
import re
from email.message import Message
from pathlib import PurePosixPath

from worker.books.archive import member_names
from worker.books.cover import SVG_TYPE, sniff_svg
from worker.books.errors import NotABook, ProtectedBook
from worker.books.model import BookKind

__all__ = [
    "decode_text",
    "detect_kind",
    "media_type",
    "sniff_image_type",
    "sniff_text_kind",
]

EPUB_TYPE = "application/epub+zip"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml", ".xht"})
DOCX_SUFFIXES = frozenset({".docx", ".docm", ".dotx"})
ACCEPTED = "EPUB, DOCX, PDF, HTML, Markdown or plain text"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local header, or an empty archive
PDF_MAGIC = b"%PDF-"
PDF_HEADER_WITHIN = 1024  # readers accept junk before the header, up to about this far
DOCX_BODY = "word/document.xml"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
# An Office file locked with a password is an OLE container holding this stream.
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")

# Formats people upload as "books" that this package does not read.
_FOREIGN = (
    (b"{\\rtf", "an RTF document"),
    (_OLE_MAGIC, "a legacy Office document (save it as DOCX)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)
_HTML_START = re.compile(
    r"\A(?:\s|<\?xml[^>]{0,200}\?>|<!--.{0,2000}?-->)*<(?:!doctype\s+html|html[\s>])",
    re.IGNORECASE | re.DOTALL,
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


def _claimed(suffix: str, mtype: str) -> str | None:
    """The kind a name or content type claims, in words ("an EPUB"), if it claims one."""
    if suffix == ".epub" or mtype == EPUB_TYPE:
        return "an EPUB"
    if suffix in DOCX_SUFFIXES or mtype == DOCX_TYPE:
        return "a Word document (DOCX)"
    if suffix == ".pdf" or mtype in PDF_TYPES:
        return "a PDF"
    if suffix in HTML_SUFFIXES or mtype in HTML_TYPES:
        return "an HTML document"
    return None


def _foreign(data: bytes) -> str | None:
    """What a file we do not read is, in words ("a RAR archive"), if we can tell."""
    for magic, what in _FOREIGN:
        if data.startswith(magic):
            return what
    if data[60:68] == b"BOOKMOBI":
        return "a MOBI/Kindle book (convert it to EPUB)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    return None


def _zip_kind(data: bytes, label: str, claimed: str | None) -> BookKind:
    names = {name.casefold() for name in member_names(data, label=label)}
    if DOCX_BODY in names:
        return BookKind.DOCX
    if claimed and claimed.startswith("a Word"):
        raise NotABook(f"{label} is not a Word document (DOCX): it has no {DOCX_BODY}")
    return BookKind.EPUB  # the EPUB reader says what is missing, if anything


def detect_kind(data: bytes, filename: str | None, content_type: str | None) -> BookKind:
    """Which reader to use for ``data``; :class:`NotABook` when none fits."""
    mtype, _ = media_type(content_type)
    suffix = _suffix(filename)
    label = _describe(filename)
    claimed = _claimed(suffix, mtype)
    if data.startswith(ZIP_MAGIC):
        return _zip_kind(data, label, claimed)
    if PDF_MAGIC in data[:PDF_HEADER_WITHIN]:
        return BookKind.PDF
    if not data.strip():
        raise NotABook(f"{label} is empty")
    if data.startswith(_OLE_MAGIC) and _ENCRYPTED_PACKAGE in data:
        raise ProtectedBook(
            f"{label} is a password-protected Office document; remove the password and upload it"
        )
    if what := _foreign(data):
        if claimed:
            raise NotABook(f"{label} is not {claimed}: it is {what}")
        raise NotABook(f"{label} is {what}; upload {ACCEPTED}")
    if claimed in ("an EPUB", "a Word document (DOCX)"):
        raise NotABook(f"{label} is not {claimed}: it is not a zip archive")
    if claimed == "a PDF":
        raise NotABook(f"{label} is not a PDF: it has no PDF header ({PDF_MAGIC.decode()})")
    if claimed == "an HTML document" or _HTML_START.match(data[:4096].decode("latin-1")):
        return BookKind.HTML  # the HTML reader refuses a "web page" with no markup
    if suffix in MARKDOWN_SUFFIXES or mtype in MARKDOWN_TYPES:
        return BookKind.MARKDOWN
    if suffix in TEXT_SUFFIXES:
        return BookKind.TEXT
    if mtype and not (mtype.startswith("text/") or mtype == "application/octet-stream"):
        raise NotABook(f"{label} has content type {mtype!r}, not a book")
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
    """The media type of JPEG, PNG, GIF, WebP or SVG image bytes; None for anything else."""
    for magic, kind in _IMAGE_MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if sniff_svg(data):
        return SVG_TYPE
    return None
