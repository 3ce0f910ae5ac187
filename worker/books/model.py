"""The values this package produces: a :class:`Book` of :class:`Chapter` objects.

Both are frozen: a parsed book is a plain record the API can show to the user
("this is the chapter list the batch was made from") and the orchestration can
turn into batch items without copying.  :class:`Section` is the intermediate
form every reader (EPUB, Markdown, plain text) produces before front matter is
skipped and chapters are numbered; a reader returns them in a
:class:`SourceBook`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["OPENING", "Book", "BookKind", "Chapter", "Section", "SourceBook"]

#: Section kind of text before the first chapter heading (or of a book with no
#: headings); such a section is titled with the book's title once that is known.
OPENING = "opening"


class BookKind(StrEnum):
    """What kind of file an upload is, which decides the reader."""

    EPUB = "epub"  # a zip with META-INF/container.xml (and mimetype application/epub+zip)
    MARKDOWN = "markdown"  # chapters from # headings
    TEXT = "text"  # chapters from "Chapter N" lines


@dataclass(frozen=True, slots=True)
class Chapter:
    """One chapter to narrate, in reading order.

    ``text`` holds the cleaned narration text with paragraphs separated by one
    blank line.  The heading that gave the chapter its ``title`` is *not* in
    ``text``: a consumer that wants the title spoken prepends it itself, so it
    is never read twice.
    """

    index: int  # 0-based in reading order, counting only kept chapters
    title: str  # from the EPUB nav/NCX, a heading, a "Chapter N" line, or "Chapter N"
    text: str  # cleaned narration text, paragraphs separated by "\n\n"
    source: str  # where it came from: EPUB member (and #fragment), Markdown/text line

    @property
    def chars(self) -> int:
        """Length of ``text`` in characters (code points)."""
        return len(self.text)

    @property
    def utf8_bytes(self) -> int:
        """Length of ``text`` in UTF-8 bytes: what the provider bills."""
        return len(self.text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Book:
    """A parsed book: its metadata, chapters in reading order, and what was skipped."""

    title: str
    author: str | None
    language: str | None  # as the book states it (BCP 47 in an EPUB), never guessed
    chapters: tuple[Chapter, ...]
    cover: bytes | None = None  # image bytes, from the EPUB or uploaded alongside it
    cover_type: str | None = None  # the cover's media type, e.g. "image/jpeg"
    skipped: tuple[str, ...] = ()  # "'Contents' (toc.xhtml): table of contents", one per skip
    kind: BookKind = BookKind.TEXT  # which reader produced it

    @property
    def chars(self) -> int:
        """Characters of narration text in all chapters."""
        return sum(chapter.chars for chapter in self.chapters)

    @property
    def utf8_bytes(self) -> int:
        """UTF-8 bytes of narration text in all chapters: what the provider bills."""
        return sum(chapter.utf8_bytes for chapter in self.chapters)


@dataclass(frozen=True, slots=True)
class Section:
    """A candidate chapter as a reader found it, before skipping and numbering.

    ``title`` is ``None`` when the source gave none (the chapter will be called
    "Chapter N").  ``kinds`` carries structural hints such as EPUB ``epub:type``
    values (``toc``, ``copyright-page``, ``titlepage``) that say what a section
    is better than its text can.
    """

    title: str | None
    text: str  # already cleaned
    source: str
    kinds: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class SourceBook:
    """What a reader found in a file: the file's own metadata and its sections in order.

    Front matter is still among the ``sections``;
    :func:`~worker.books.frontmatter.build_book` decides what to skip.
    """

    title: str | None
    author: str | None
    language: str | None
    sections: tuple[Section, ...]
    cover: bytes | None = None  # the cover image an EPUB declares
    cover_type: str | None = None
    skipped: tuple[str, ...] = ()  # EPUB spine items that are not chapters at all
