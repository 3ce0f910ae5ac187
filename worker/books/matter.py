"""Boilerplate that is never narrated, wherever it sits: licences, transcriber's notes, ads.

Recognised by meaning first (the ids and classes toolchains give it, see
:func:`~worker.books.semantics.matter_kinds`; a paragraph that is mostly
links into the book is an entry of a table of contents), then by Project Gutenberg's
own markers: everything before ``*** START OF THE PROJECT GUTENBERG EBOOK``
and from ``*** END OF THE PROJECT GUTENBERG EBOOK`` on is its header and
licence, even when the markers sit inside one file or one block
(:func:`mark_gutenberg`).  A document the navigation does not list is matter
when its markup or its title says so (:func:`unlisted_reason`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from worker.books.model import SkipCategory
from worker.books.semantics import (
    ADVERTISEMENT,
    PG_HEADER,
    PG_LICENCE,
    TOC_ENTRY,
    TRANSCRIBER_NOTE,
)
from worker.books.xhtml import Block, Document

__all__ = ["MATTER_REASONS", "block_matter", "mark_gutenberg", "title_matter", "unlisted_reason"]

#: Kind → (category, reason) of boilerplate removed block by block.
MATTER_REASONS: dict[str, tuple[SkipCategory, str]] = {
    PG_HEADER: (SkipCategory.LICENCE, "Project Gutenberg header"),
    PG_LICENCE: (SkipCategory.LICENCE, "Project Gutenberg licence"),
    TRANSCRIBER_NOTE: (SkipCategory.EXTRA, "transcriber's note"),
    ADVERTISEMENT: (SkipCategory.EXTRA, "advertisement"),
    TOC_ENTRY: (SkipCategory.FRONT_MATTER, "table of contents"),
}
_START = re.compile(r"\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG E", re.IGNORECASE)
_END = re.compile(
    r"\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG E"
    r"|^[ ]*End of (?:the )?Project Gutenberg",
    re.IGNORECASE | re.MULTILINE,
)
_TITLES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"transcriber'?s? notes?\b|transcriber’s notes?\b"), TRANSCRIBER_NOTE),
    (
        re.compile(
            r"(?:advertisements?|adverts?|publishers'? (?:announcements|catalogue))$"
            r"|(?:also available|also by|by the same author|other books by|new books)\b"
        ),
        "",
    ),
    (re.compile(r"(?:the full )?project gutenberg(?:™|'s|’s)? licen[cs]e"), PG_LICENCE),
]


def block_matter(block: Block) -> str | None:
    """The boilerplate kind of a block, if it is boilerplate."""
    found = block.kinds & MATTER_REASONS.keys()
    return min(found) if found else None


def title_matter(title: str | None) -> str | None:
    """The boilerplate kind a title names: "Transcriber's Notes", "Advertisements"."""
    text = " ".join((title or "").casefold().split())
    for pattern, kind in _TITLES:
        if pattern.match(text):
            return kind or ADVERTISEMENT
    return None


def unlisted_reason(doc: Document, title: str | None) -> tuple[SkipCategory, str] | None:
    """Why a document the navigation does not list is not part of the chapter before it.

    ``title`` is its first heading, or else its first line.
    """
    kinds = set(doc.kinds)
    if doc.blocks:
        kinds |= frozenset.intersection(*(b.kinds for b in doc.blocks))
    found = sorted(kinds & MATTER_REASONS.keys())
    named = title_matter(title)
    if found or named:
        return MATTER_REASONS[found[0] if found else str(named)]
    return None


def _mark(doc: Document, start: int, stop: int, kind: str) -> Document:
    blocks = list(doc.blocks)
    for i in range(start, stop):
        blocks[i] = dataclasses.replace(blocks[i], kinds=blocks[i].kinds | {kind})
    return dataclasses.replace(doc, blocks=tuple(blocks))


def _cut(doc: Document, at: int, offset: int, keep_after: bool, kind: str) -> Document:
    """Split block ``at`` at the line holding ``offset``: one side boilerplate, one kept."""
    block = doc.blocks[at]
    line_start = block.text.rfind("\n", 0, offset) + 1
    line_end = block.text.find("\n", offset)
    line_end = len(block.text) if line_end < 0 else line_end + 1
    before, after = block.text[:line_start].strip(), block.text[line_end:].strip()
    kept, dropped = (after, before) if keep_after else (before, after)
    pieces = [dataclasses.replace(block, kinds=block.kinds | {kind}, text=dropped or "*")]
    if kept:
        pieces.append(dataclasses.replace(block, text=kept))
    if not keep_after:
        pieces.reverse()
    blocks = [*doc.blocks[:at], *pieces, *doc.blocks[at + 1 :]]
    grow = len(pieces) - 1
    anchors = {name: i + grow if i > at else i for name, i in doc.anchors.items()}
    return dataclasses.replace(doc, blocks=tuple(blocks), anchors=anchors)


def _find(
    docs: Sequence[Document], pattern: re.Pattern[str], after: tuple[int, int] = (0, 0)
) -> tuple[int, int, int] | None:
    """(document, block, offset) of the first match at or after ``after``."""
    for d in range(after[0], len(docs)):
        for b in range(after[1] if d == after[0] else 0, len(docs[d].blocks)):
            if found := pattern.search(docs[d].blocks[b].text):
                return d, b, found.start()
    return None


def mark_gutenberg(docs: Sequence[Document]) -> list[Document]:
    """The documents with Project Gutenberg's header and licence marked by their markers.

    Blocks before the START marker are marked :data:`PG_HEADER`, blocks from
    the END marker on :data:`PG_LICENCE`; a block that holds a marker is cut at
    the marker's line.  Books without the markers come back as they were.
    """
    out = list(docs)
    after = (0, 0)
    if start := _find(out, _START):
        d, b, offset = start
        out[d] = _cut(out[d], b, offset, True, PG_HEADER)
        b += 1 if len(out[d].blocks) > len(docs[d].blocks) else 0
        for i in range(d):
            out[i] = _mark(out[i], 0, len(out[i].blocks), PG_HEADER)
        out[d] = _mark(out[d], 0, b, PG_HEADER)
        after = (d, b)
    if end := _find(out, _END, after):
        d, b, offset = end
        before = len(out[d].blocks)
        out[d] = _cut(out[d], b, offset, False, PG_LICENCE)
        b += len(out[d].blocks) - before
        out[d] = _mark(out[d], b, len(out[d].blocks), PG_LICENCE)
        for i in range(d + 1, len(out)):
            out[i] = _mark(out[i], 0, len(out[i].blocks), PG_LICENCE)
    return out
