"""What the book route takes and answers: ``BookOptions`` (a form field) in, ``BookOut`` out."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.batches.schemas import BatchOptions, BatchOut
from worker.books import NotesMode, ReadMode, ReadOptions, SkipCategory, TitleStyle

# -- requests -------------------------------------------------------------------


class BookOptions(BatchOptions):
    """The ``options`` field of ``POST /v1/books`` (JSON): the batch options of a book."""

    speak_titles: bool = Field(True, description="read each chapter's title before its text")
    titles: TitleStyle = Field(
        TitleStyle.SPOKEN,
        description='how a title is read: "spoken" says "Chapter IV" as "Chapter Four" and '
        'a bare "I" as "Chapter One"; "as_written" reads it as the book writes it. '
        "The chapter markers always keep the book's own titles",
    )
    split_level: int = Field(
        1, ge=1, le=3, description="navigation levels narrated as chapters (1: top level only)"
    )
    notes: NotesMode = Field(
        NotesMode.SKIP, description="footnotes and endnotes: skipped, or read after their chapter"
    )
    code: ReadMode = Field(ReadMode.SKIP, description="code blocks: skipped, or read as written")
    tables: ReadMode = Field(ReadMode.SKIP, description="tables: skipped, or read row by row")

    def read_options(self) -> ReadOptions:
        """How the book is read into chapters."""
        return ReadOptions(
            split_level=self.split_level, notes=self.notes, code=self.code, tables=self.tables
        )


# -- responses ------------------------------------------------------------------


class BookChapterOut(BaseModel):
    index: int
    title: str = Field(description="as the book writes it: the chapter marker's title")
    chars: int
    utf8_bytes: int
    estimated_cost_usd: float = Field(description="of the chapter's text, its title not counted")
    source: str


class SkippedPartOut(BaseModel):
    """A part of the upload that is not narrated, and why."""

    category: SkipCategory = Field(description="the kind of reason, for grouping")
    reason: str = Field(description='in words: "table of contents", "Project Gutenberg licence"')
    source: str = Field(description="where it is: a file in the book, a heading, a page")
    title: str | None = Field(None, description="its title, when it has one")


class ParsedBookOut(BaseModel):
    """What was read from the upload: check the chapter list before (or while) it is narrated."""

    title: str
    author: str | None
    language: str | None
    kind: str
    chars: int
    utf8_bytes: int
    estimated_cost_usd: float
    cover: bool
    chapters: list[BookChapterOut]
    skipped: list[str] = Field(description="what was left out and why, one line each")
    skipped_parts: list[SkippedPartOut] = Field(
        default_factory=list, description="the same, one record each: category, reason, source"
    )


class BookOut(BaseModel):
    """``POST /v1/books``: the parsed book, and the batch narrating it (none in a dry run)."""

    book: ParsedBookOut
    batch: BatchOut | None
