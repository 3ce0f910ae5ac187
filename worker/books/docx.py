"""Word (DOCX) books: converted to HTML by mammoth, then read as an HTML book.

Mammoth turns the paragraph styles into markup: Heading 1–6 into ``h1``–``h6``
(so chapters come from Heading 1/2 as an HTML book's come from its headings),
and with :data:`STYLE_MAP` the Title, Subtitle and Author styles into the
title block and a generated table of contents (the ``TOC`` styles) into a
part that is skipped.  Footnotes and endnotes come out as a list at the end
(their bodies marked as notes here, their references as links the walker
drops); tables as tables; page breaks, comments and images carry no words
and are left out.

A DOCX is a zip, and the same limits as an EPUB's apply before anything is
decompressed (:class:`~worker.books.archive.SafeArchive`).  Mammoth is given
a copy holding only the XML parts, each read within the archive's budget, so
a lying central directory cannot make it inflate more; XML with entity
declarations is refused.  Title, author and language also come from the
document's properties (``docProps/core.xml``) when the text has none.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile

import mammoth
import mammoth.images

from worker.books.archive import SafeArchive
from worker.books.errors import NotABook, UnsafeArchive
from worker.books.html import read_html
from worker.books.model import ReadOptions, SourceBook
from worker.books.xhtml import local_name, parse_xml

__all__ = ["STYLE_MAP", "read_docx"]

logger = logging.getLogger(__name__)

BODY = "word/document.xml"
STYLE_MAP = "\n".join(
    [
        "p[style-name='Title'] => h1.title:fresh",
        "p[style-name='Subtitle'] => p.subtitle:fresh",
        "p[style-name='Author'] => p.author:fresh",
        "p[style-name='Date'] => p.date:fresh",
        "p[style-name^='TOC'] => p.shoal-toc:fresh",
        "p[style-name^='toc'] => p.shoal-toc:fresh",
    ]
)
# Parts mammoth reads; media, fonts and thumbnails stay in the archive, unread.
_PARTS = re.compile(r"(?:\[Content_Types\]\.xml|(?:word/|_rels/|word/_rels/).*\.(?:xml|rels))")
_CORE = "docProps/core.xml"
# Mammoth's markup is regular and escapes the document's own text, so these
# patterns can only ever meet the markup it wrote.
_NOTE_BODY = re.compile(r'<li id="((?:foot|end)note)-(-?\d+)"')
_TOC = re.compile(r'<p class="shoal-toc">')


def _copy_for_mammoth(archive: SafeArchive) -> bytes:
    """A zip of the parts mammoth reads, each decompressed within the archive's limits."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
        for name in archive.names:
            if not _PARTS.fullmatch(name):
                continue
            data = archive.read(name)
            if b"<!ENTITY" in data:
                raise UnsafeArchive(f"member {name!r} declares XML entities; refused as unsafe")
            copy.writestr(name, data)
    return out.getvalue()


def _properties(archive: SafeArchive) -> dict[str, str]:
    """Title, creator and language from the document's core properties, if it has them."""
    member = archive.find(_CORE)
    if member is None:
        return {}
    try:
        root = parse_xml(archive.read(member), member)
    except NotABook:
        return {}  # broken properties never stop a readable document
    found: dict[str, str] = {}
    for element in root:
        name, text = local_name(element.tag), " ".join("".join(element.itertext()).split())
        if name in ("title", "creator", "language") and text:
            found.setdefault(name, text)
    return found


def _html(packed: bytes, label: str) -> str:
    """The document as HTML, notes and generated contents marked for the HTML reader."""
    try:
        result = mammoth.convert_to_html(
            io.BytesIO(packed),
            style_map=STYLE_MAP,
            # Images carry no words: never open them (nor, so, anything they link to).
            convert_image=mammoth.images.img_element(lambda image: {}),
            external_file_access=False,
        )
    except Exception as exc:  # mammoth raises many kinds on a broken document; all mean this
        raise NotABook(f"{label} is not a readable Word document: {exc}") from exc
    for message in result.messages[:20]:
        logger.debug("mammoth: %s", message.message)
    html = _NOTE_BODY.sub(r'<li class="\1" id="\1-\2"', result.value)
    html = _TOC.sub('<p role="doc-toc">', html)
    return f"<html><head><meta charset='utf-8'></head><body>{html}</body></html>"


def read_docx(
    data: bytes,
    *,
    label: str,
    where: str,
    max_unpacked_bytes: int,
    options: ReadOptions | None = None,
) -> SourceBook:
    """Sections of a Word document and its metadata; raises :class:`BookError`."""
    archive = SafeArchive(data, max_unpacked_bytes=max_unpacked_bytes, label=label)
    if archive.find(BODY) is None:
        raise NotABook(f"{label} is not a Word document (DOCX): it has no {BODY}")
    properties = _properties(archive)
    html = _html(_copy_for_mammoth(archive), label)
    found = read_html(html.encode("utf-8"), label=label, where=where, options=options)
    return SourceBook(
        found.title or properties.get("title"),
        found.author or properties.get("creator"),
        found.language or properties.get("language"),
        found.sections,
        skipped=found.skipped,
    )
