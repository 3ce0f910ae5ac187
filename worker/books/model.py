"""The values this package produces: a :class:`Book` of :class:`Chapter` objects.

Both are frozen: a parsed book is a plain record the API can show to the user
("this is the chapter list the batch was made from") and the orchestration can
turn into batch items without copying.  :class:`Section` is the intermediate
form every reader (EPUB, Markdown, plain text) produces before front matter is
skipped and chapters are numbered; a reader returns them in a
:class:`SourceBook`.  Every part that is not narrated is a :class:`Skip`
(a :class:`SkipCategory`, the reason in words, where it is, its title), so a
dry run can say why; :class:`ReadOptions` say how a book is read (which
navigation levels are chapters; whether notes, code and tables are read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "OPENING",
    "Book",
    "BookKind",
    "Chapter",
    "NotesMode",
    "ReadMode",
    "ReadOptions",
    "Section",
    "Skip",
    "SkipCategory",
    "SourceBook",
]

#: Section kind of text before the first chapter heading (or of a book with no
#: headings); such a section is titled with the book's title once that is known.
OPENING = "opening"


class BookKind(StrEnum):
    """What kind of file an upload is, which decides the reader."""

    EPUB = "epub"  # a zip with META-INF/container.xml (and mimetype application/epub+zip)
    MARKDOWN = "markdown"  # chapters from # headings
    TEXT = "text"  # chapters from "Chapter N" lines
    HTML = "html"  # a web page or XHTML file: chapters from h1/h2 headings
    DOCX = "docx"  # a Word document: chapters from its Heading 1/2 (and Title) styles
    PDF = "pdf"  # a PDF with a text layer: chapters from its outline, else heading lines


class SkipCategory(StrEnum):
    """Why a part of a book is not narrated, in one word a program can group by."""

    FRONT_MATTER = "front_matter"  # title page, contents, copyright, dedication … before the body
    BACK_MATTER = "back_matter"  # index, colophon, lists of illustrations … after the body
    LICENCE = "licence"  # Project Gutenberg's header and licence, a publisher's imprint
    EXTRA = "extra"  # advertisements, transcriber's notes, a metadata jacket
    NOTES = "notes"  # footnote and endnote bodies (options: notes="skip")
    CODE = "code"  # code blocks (options: code="skip")
    TABLE = "table"  # tables (options: tables="skip")
    EMPTY = "empty"  # nothing to narrate, or only a title
    NOT_TEXT = "not_text"  # a spine item outside the reading order, not a text document, missing


@dataclass(frozen=True, slots=True)
class Skip:
    """One part of the book that is not narrated, and why."""

    category: SkipCategory
    reason: str  # for people: "copyright page", "Project Gutenberg licence", "2 code blocks"
    source: str  # where it is: EPUB member (and #fragment), Markdown/text line
    title: str | None = None  # its title, when it has one

    def __str__(self) -> str:
        """ "'Contents' (toc.xhtml): table of contents", the form the dry run lists."""
        where = f"{self.title!r} ({self.source})" if self.title else self.source
        return f"{where}: {self.reason}"


class NotesMode(StrEnum):
    """What becomes of footnote and endnote bodies."""

    SKIP = "skip"  # not narrated (their markers never are)
    END_OF_CHAPTER = "end_of_chapter"  # read after the text of the chapter that refers to them


class ReadMode(StrEnum):
    """Whether code blocks (or tables) are narrated; either way their text is never altered."""

    SKIP = "skip"  # left out, and listed among the skipped parts
    READ = "read"  # read as written, line by line (tables row by row)


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How a book is read into chapters; the defaults suit most books."""

    split_level: int = 1  # navigation levels narrated as chapters: 1 = top-level entries only
    notes: NotesMode = NotesMode.SKIP
    code: ReadMode = ReadMode.SKIP
    tables: ReadMode = ReadMode.SKIP


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
    skips: tuple[Skip, ...] = ()  # what was not narrated and why, in reading order
    kind: BookKind = BookKind.TEXT  # which reader produced it

    @property
    def skipped(self) -> tuple[str, ...]:
        """The skips as lines: "'Contents' (toc.xhtml): table of contents"."""
        return tuple(str(skip) for skip in self.skips)

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
    skips: tuple[Skip, ...] = ()  # what the reader left out before or within it, in order


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
    skipped: tuple[Skip, ...] = ()  # parts the reader already left out (spine items, licence …)
