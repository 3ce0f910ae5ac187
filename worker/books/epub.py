"""EPUB books: the spine in reading order, split into chapters, cleaned into sections.

Each spine item (``linear="no"`` ones are skipped and recorded) is one chapter
unless it holds several:

* **Navigation fragments.**  When the table of contents points *into* the file
  (``text.xhtml#ch2``), it is split at those anchors, using the shallowest
  entries that point into it.  Deeper entries split it only when the file's
  own top entry is a divider with no text before them (a "Part One" file that
  holds its chapters), never when they are the subsections of one chapter.
* **Headings.**  Without such entries, a file is split at its top heading level
  (of h1–h3) when that level occurs more than once ("a file with several h1
  chapters"); a single h1 followed by h2s is one chapter with subsections.

A chapter's title comes from the navigation (the entry for the file, or the
fragment it was split at), else from the headings that open it (joined: "Chapter 1:
The Beginning"), else from its first h1–h3, else it is left for
:func:`~worker.books.frontmatter.build_book` to call "Chapter N".  The
headings that open a chapter are not part of its text.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.books.archive import SafeArchive
from worker.books.clean import Vocabulary, clean_text, has_words
from worker.books.epub_package import XHTML_TYPES, NavEntry, Package, read_package
from worker.books.frontmatter import check_section_count
from worker.books.model import Section, SourceBook
from worker.books.xhtml import Block, Document, extract, parse_xml

__all__ = ["Part", "read_epub", "split_document"]

TITLE_LEVELS = 3  # h1–h3 can title a chapter; deeper headings stay in the text


@dataclass(frozen=True, slots=True)
class Part:
    """A run of a document's blocks that makes one chapter."""

    start: int
    stop: int
    nav_title: str | None = None
    fragment: str | None = None  # the anchor it starts at, for its source


def _has_prose(blocks: tuple[Block, ...]) -> bool:
    return any(not b.heading and has_words(b.text) for b in blocks)


def _nav_points(doc: Document, entries: list[NavEntry]) -> list[tuple[int, NavEntry]] | None:
    """(block index, entry) where navigation fragments split the document.

    An empty list means the navigation does not split it; None means it
    points at subsections, so headings must not split it either.
    """
    top = min((e.depth for e in entries), default=0)
    for depth in sorted({e.depth for e in entries}):
        here = [
            (doc.anchors[e.fragment], e)
            for e in entries
            if e.depth == depth and e.fragment and e.fragment in doc.anchors
        ]
        if not here:
            continue
        here.sort(key=lambda point: point[0])
        if depth == top or not _has_prose(doc.blocks[: here[0][0]]):
            return here
        return None  # subsections of the chapter this file is
    return []


def split_document(doc: Document, entries: list[NavEntry]) -> list[Part]:
    """Where one spine item's chapters start and end; ``entries`` point into it."""
    bare = next((e.title for e in entries if e.fragment is None and e.title), None)
    points = _nav_points(doc, entries)
    starts: dict[int, tuple[str | None, str | None]] = {}
    if points:
        for index, entry in points:
            starts.setdefault(index, (entry.title or None, entry.fragment))
    elif points is not None:
        levels = [b.heading for b in doc.blocks if 0 < b.heading <= TITLE_LEVELS]
        top = min(levels, default=0)
        if top and levels.count(top) > 1:
            starts = {i: (None, None) for i, b in enumerate(doc.blocks) if b.heading == top}
    first = min(starts, default=None)
    if first is None:
        starts[0] = (bare, None)
    elif first > 0:
        if points or _has_prose(doc.blocks[:first]):
            # Text before the first split, or a divider the navigation names ("Part
            # One" before its chapters): a part of its own, skipped later if empty.
            starts[0] = (bare, None)
        else:
            starts[0] = starts.pop(first)  # only minor headings: they open the first part
    ordered = sorted(starts)
    stops = [*ordered[1:], len(doc.blocks)]
    return [Part(a, b, *starts[a]) for a, b in zip(ordered, stops, strict=True)]


def _title_and_body(blocks: tuple[Block, ...], nav_title: str | None) -> tuple[str | None, int]:
    """The part's title and how many opening heading blocks it takes from the text."""
    opening = 0
    while opening < len(blocks) and 0 < blocks[opening].heading <= TITLE_LEVELS:
        opening += 1
    if nav_title:
        return nav_title, opening
    if opening:
        titles: list[str] = []
        for block in blocks[:opening]:
            sep = " " if titles and titles[-1][-1] in ".:;—–-!?" else ": "
            titles += [sep, block.text] if titles else [block.text]
        return "".join(titles), opening
    first = next((b.text for b in blocks if 0 < b.heading <= TITLE_LEVELS), None)
    return first, 0


def _kinds(doc: Document, part: Part, extra: frozenset[str]) -> frozenset[str]:
    blocks = doc.blocks[part.start : part.stop]
    shared = frozenset.intersection(*(b.kinds for b in blocks)) if blocks else doc.kinds
    return shared | doc.kinds | extra


def read_epub(data: bytes, *, label: str, max_unpacked_bytes: int) -> SourceBook:
    """Sections of an EPUB, with its metadata and cover; raises :class:`BookError`."""
    archive = SafeArchive(data, max_unpacked_bytes=max_unpacked_bytes, label=label)
    package = read_package(archive)
    skipped: list[str] = []
    docs: list[tuple[str, Document]] = []
    for ref in package.spine:
        item = ref.item
        if item is None:
            skipped.append(f"spine item {ref.idref!r}: not in the manifest")
        elif not ref.linear:
            skipped.append(f'{item.path}: outside the reading order (linear="no")')
        elif item.media_type not in XHTML_TYPES:
            skipped.append(f"{item.path}: not a text document ({item.media_type or 'no type'})")
        elif (member := archive.find(item.path)) is None:
            skipped.append(f"{item.path}: missing from the archive")
        else:
            docs.append((item.path, extract(parse_xml(archive.read(member), member))))
    sections = _sections(package, docs)
    cover = cover_type = None
    if package.cover is not None and (member := archive.find(package.cover.path)):
        cover, cover_type = archive.read(member), package.cover.media_type
    return SourceBook(
        package.title,
        package.author,
        package.language,
        tuple(sections),
        cover,
        cover_type,
        tuple(skipped),
    )


def _sections(package: Package, docs: list[tuple[str, Document]]) -> list[Section]:
    vocabulary = Vocabulary.of("\n".join(b.text for _, doc in docs for b in doc.blocks))
    sections: list[Section] = []
    for path, doc in docs:
        extra = package.landmarks.get(path, frozenset())
        if path == package.nav_path:
            extra |= {"toc"}
        entries = [e for e in package.nav if e.path == path]
        parts = split_document(doc, entries)
        check_section_count(len(sections) + len(parts))
        for number, part in enumerate(parts, 1):
            blocks = doc.blocks[part.start : part.stop]
            title, opening = _title_and_body(blocks, part.nav_title)
            text = clean_text("\n\n".join(b.text for b in blocks[opening:]), vocabulary)
            fragment = part.fragment or next(
                (a for a, i in doc.anchors.items() if i == part.start and part.start), None
            )
            source = f"{path}#{fragment}" if fragment else path
            if len(parts) > 1 and not fragment:
                source += f" (part {number} of {len(parts)})"
            sections.append(Section(title, text, source, _kinds(doc, part, extra)))
    return sections
