"""What the book route takes and answers: ``BookOptions`` (a form field) in, ``BookOut`` out."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.batches.schemas import BatchOptions, BatchOut

# -- requests -------------------------------------------------------------------


class BookOptions(BatchOptions):
    """The ``options`` field of ``POST /v1/books`` (JSON): the batch options of a book."""

    speak_titles: bool = Field(True, description="read each chapter's title before its text")


# -- responses ------------------------------------------------------------------


class BookChapterOut(BaseModel):
    index: int
    title: str
    chars: int
    utf8_bytes: int
    source: str


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
    skipped: list[str] = Field(description="front matter and empty sections left out")


class BookOut(BaseModel):
    """``POST /v1/books``: the parsed book, and the batch narrating it (none in a dry run)."""

    book: ParsedBookOut
    batch: BatchOut | None
