"""Which runs of an EPUB's spine make each chapter: the book's own navigation decides.

:func:`plan_chapters` turns the navigation (EPUB 3 nav or EPUB 2 NCX, see
:mod:`~worker.books.epub_package`) into a list of :class:`Planned` chapters,
each a run of :class:`Span` values over the spine's documents:

* **Levels.**  Entries at the top level are chapters; nested entries are
  sections inside them and split nothing.  ``split_level`` narrates deeper
  levels as chapters too (2: chapters and their sections).  A top level of a
  single entry holding all the others does not count when it is the book
  itself: it bears the book's title, or its entries lead into several files.
* **Fragments.**  An entry that points into a file starts its chapter at that
  anchor, as every chapter-level entry does, so a file is split only where the
  navigation says a chapter starts, never at its subsections.  When only
  headings come before the first such anchor in a file, the chapter takes the
  file from its start: the fragment names the chapter's heading.
* **The rest of the spine.**  A document the navigation does not reach joins
  the chapter before it (:attr:`Span.listed` is false, so the reader can
  skip it instead if it is matter); documents before the first chapter are
  sections of their own.

Without usable navigation each document is a chapter, split at its top
heading level (of h1–h3) when that level occurs more than once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.books.clean import has_words
from worker.books.epub_package import NavEntry
from worker.books.xhtml import Block, Document

__all__ = ["TITLE_LEVELS", "Planned", "Span", "chapter_entries", "plan_chapters"]

TITLE_LEVELS = 3  # h1–h3 can title a chapter; deeper headings stay in the text


@dataclass(frozen=True, slots=True)
class Span:
    """A run of one document's blocks: ``blocks[start:stop]`` of spine document ``doc``."""

    doc: int
    start: int
    stop: int
    listed: bool = True  # some navigation entry points into this document


@dataclass(frozen=True, slots=True)
class Planned:
    """One chapter-to-be: its spans in reading order, and the entry that starts it."""

    spans: tuple[Span, ...]
    title: str | None = None  # the navigation's title for it
    fragment: str | None = None  # the anchor its entry points at
    listed: bool = False  # it starts at a navigation entry (not a document before them)


def has_prose(blocks: Sequence[Block]) -> bool:
    """Whether any block that is not a heading has words."""
    return any(not b.heading and has_words(b.text) for b in blocks)


def _is_root(nav: Sequence[NavEntry], depth: int, book_title: str | None) -> bool:
    """Whether the only entry at ``depth`` is the book itself, holding all the chapters.

    It is when it bears the book's title, or when the entries below it lead
    into more than one document (a chapter's sections are in its own file).
    """
    here = [e for e in nav if e.depth == depth]
    below = {e.path for e in nav if e.depth > depth}
    if len(here) != 1 or not below:
        return False
    title = " ".join((book_title or "").casefold().split())
    return (bool(title) and " ".join(here[0].title.casefold().split()) == title) or len(below) > 1


def chapter_entries(
    nav: Sequence[NavEntry], split_level: int, book_title: str | None = None
) -> list[tuple[NavEntry, int]]:
    """(entry, rank) of the entries that start chapters; a lower rank wins a tie.

    A top-level entry that is the book itself (see :func:`_is_root`) does not
    count as a level: its entries rank last.
    """
    depths = sorted({e.depth for e in nav})
    base = depths[0] if depths else 0
    for depth in depths[1:]:
        if not _is_root(nav, base, book_title):
            break
        base = depth
    chosen = []
    for entry in nav:
        if entry.depth < base + max(split_level, 1):
            rank = entry.depth - base if entry.depth >= base else 1000 - entry.depth
            chosen.append((entry, rank))
    return chosen


def _starts(
    docs: Sequence[Document], index: dict[str, int], chosen: list[tuple[NavEntry, int]]
) -> dict[tuple[int, int], NavEntry]:
    """Where each chapter starts: (document, block) → the entry that starts it."""
    by_doc: dict[int, list[tuple[int, int, NavEntry]]] = {}
    for entry, rank in chosen:
        if (doc := index.get(entry.path)) is None:
            continue  # not in the reading order
        anchors = docs[doc].anchors
        block = anchors.get(entry.fragment, 0) if entry.fragment else 0
        by_doc.setdefault(doc, []).append((block, rank, entry))
    starts: dict[tuple[int, int], tuple[int, NavEntry]] = {}
    for doc, points in by_doc.items():
        points.sort(key=lambda point: point[0])
        first = points[0][0]
        if first > 0 and not has_prose(docs[doc].blocks[:first]):
            # Only headings before it: the fragment names the chapter's own heading.
            points = [(0 if block == first else block, r, e) for block, r, e in points]
        for block, rank, entry in points:
            held = starts.get((doc, block))
            if held is None or rank < held[0]:
                starts[(doc, block)] = (rank, entry)
    return {key: entry for key, (_, entry) in starts.items()}


def _spans(
    docs: Sequence[Document], begin: tuple[int, int], end: tuple[int, int], listed: set[int]
) -> tuple[Span, ...]:
    """The spans from ``begin`` up to (not including) ``end``, across documents."""
    spans = []
    doc, block = begin
    while (doc, block) < end and doc < len(docs):
        stop = end[1] if doc == end[0] else len(docs[doc].blocks)
        if stop > block or doc == begin[0]:
            spans.append(Span(doc, block, stop, doc in listed))
        doc, block = doc + 1, 0
    return tuple(spans)


def plan_chapters(
    docs: Sequence[Document],
    paths: Sequence[str],
    nav: Sequence[NavEntry],
    split_level: int = 1,
    book_title: str | None = None,
) -> list[Planned]:
    """The chapters of a book whose spine documents are ``docs`` (at ``paths``)."""
    index = {path: i for i, path in enumerate(paths)}
    starts = _starts(docs, index, chapter_entries(nav, split_level, book_title))
    if not starts:
        return _by_headings(docs)
    listed = {index[e.path] for e in nav if e.path in index}
    ordered = sorted(starts)
    plans = []
    first_doc, first_block = ordered[0]
    for doc in range(first_doc):  # before the first entry: each a section of its own
        plans.append(Planned((Span(doc, 0, len(docs[doc].blocks), doc in listed),)))
    if first_block:
        plans.append(Planned((Span(first_doc, 0, first_block, True),)))
    for begin, end in zip(ordered, [*ordered[1:], (len(docs), 0)], strict=True):
        entry = starts[begin]
        spans = _spans(docs, begin, end, listed)
        plans.append(Planned(spans, entry.title or None, entry.fragment, True))
    return plans


def split_by_headings(doc: Document) -> list[tuple[int, int]]:
    """(start, stop) of each chapter in a document the navigation says nothing about.

    A document is split at its top heading level (of h1–h3) when that level
    occurs more than once; text before the first such heading is a part of
    its own when it has prose (an epigraph), else it opens the first chapter.
    """
    levels = [b.heading for b in doc.blocks if 0 < b.heading <= TITLE_LEVELS]
    top = min(levels, default=0)
    if not top or levels.count(top) < 2:
        return [(0, len(doc.blocks))]
    starts = [i for i, b in enumerate(doc.blocks) if b.heading == top]
    if starts[0] > 0 and has_prose(doc.blocks[: starts[0]]):
        starts.insert(0, 0)
    starts[0] = 0
    return list(zip(starts, [*starts[1:], len(doc.blocks)], strict=True))


def _by_headings(docs: Sequence[Document]) -> list[Planned]:
    """Without navigation: each document a chapter, or several split at its headings."""
    return [
        Planned((Span(doc, start, stop, False),))
        for doc, document in enumerate(docs)
        for start, stop in split_by_headings(document)
    ]
