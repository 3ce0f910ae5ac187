"""What the book route takes and answers: ``BookOptions`` (a form field) in, ``BookOut`` out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.batches.schemas import BatchOptions, BatchOut
from worker.books import NotesMode, ReadMode, ReadOptions, SkipCategory, TitleStyle

# -- requests -------------------------------------------------------------------

#: One part of a chapter range: a chapter number, or two joined by a hyphen.
_SPAN = re.compile(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?")
#: A range longer than this is not something a person wrote.
MAX_RANGE_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ChapterRange:
    """Chapters chosen by number (1-based: a chapter's ``index`` + 1), as inclusive spans.

    Kept as spans, never expanded, so ``1-999999999`` costs no more than
    ``1-3``.  Spans may come in any order and overlap: they mean their union,
    narrated in book order, each chapter once.
    """

    spans: tuple[tuple[int, int], ...]  # (first, last), sorted, neither overlapping nor adjacent

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and any(a <= number <= b for a, b in self.spans)

    def __str__(self) -> str:
        """The canonical form: ``"1,4,7-9"``."""
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.spans)

    def beyond(self, count: int) -> tuple[tuple[int, int], ...]:
        """The parts of the spans past chapter ``count``: what a book that long does not have."""
        return tuple((max(a, count + 1), b) for a, b in self.spans if b > count)

    @classmethod
    def parse(cls, value: Any) -> ChapterRange:
        """``"3-5"``, ``"1,4,7-9"`` or ``[3, 4, 5]``; :class:`ValueError` saying what is wrong."""
        if isinstance(value, list):
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
                raise ValueError("a list of chapter numbers must hold whole numbers only")
            spans = tuple((n, n) for n in value)
        elif isinstance(value, str):
            spans = _parse_spans(value)
        else:
            raise ValueError('give a range like "3-5" or "1,4,7-9", or a list of numbers')
        if not spans:
            raise ValueError("the range is empty: name a chapter, or leave chapters out for all")
        if any(first < 1 for first, _ in spans):
            raise ValueError("chapters are numbered from 1 (a chapter's index + 1)")
        return cls(_merged(spans))


def _merged(spans: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping and adjacent spans joined: ``5,1-3,2-4`` is ``1-5``."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return tuple(out)


def _parse_spans(text: str) -> tuple[tuple[int, int], ...]:
    if len(text) > MAX_RANGE_CHARS:
        raise ValueError(f"the range is over {MAX_RANGE_CHARS} characters")
    if not text.strip():
        return ()
    spans = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"{text.strip()!r} has an empty part between commas")
        match = _SPAN.fullmatch(part)
        if match is None:
            raise ValueError(
                f'{part.strip()!r} is not a chapter number or a range like "3-5" '
                '(write "1,4,7-9" for several)'
            )
        first = int(match[1])
        last = int(match[2]) if match[2] else first
        if last < first:
            raise ValueError(f'"{first}-{last}" is reversed: write "{last}-{first}"')
        spans.append((first, last))
    return tuple(spans)


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
    scene_break_ms: int = Field(
        2000,
        ge=0,
        le=10_000,
        description="silence at a scene break (`<hr/>`, a `* * *` line), on top of the "
        "paragraph silence (`defaults.paragraph_silence_ms`)",
    )
    code: ReadMode = Field(ReadMode.SKIP, description="code blocks: skipped, or read as written")
    tables: ReadMode = Field(ReadMode.SKIP, description="tables: skipped, or read row by row")
    chapters: str | list[int] | None = Field(
        None,
        description="narrate only these chapters, numbered from 1 (a chapter's index + 1, as "
        "`shoal book --dry-run` lists them): "
        '"3-5", "1,4,7-9" or [3, 4, 5]; all when left out. They keep their titles and their '
        "book order; a number past the book's last chapter is refused",
        examples=["3-5", "1,4,7-9", [3, 4, 5]],
    )

    chapter_voices: dict[int, str] = Field(
        default_factory=dict,
        description="a voice of the tenant (`/v1/voices`) for some chapters, by number (as "
        '`chapters` counts them): {"3": "voice_ab12"}; the others are read in the default voice',
        examples=[{"3": "voice_ab12"}],
    )

    @field_validator("chapters", mode="before")
    @classmethod
    def _check_chapters(cls, value: Any) -> str | None:
        """The range in its canonical form (``[3, 4, 5]`` and ``"5,3-4"`` alike as ``"3-5"``)."""
        return None if value is None else str(ChapterRange.parse(value))

    def chapter_range(self) -> ChapterRange | None:
        """The chapters chosen; None: all of them."""
        return None if self.chapters is None else ChapterRange.parse(self.chapters)

    def read_options(self) -> ReadOptions:
        """How the book is read into chapters."""
        return ReadOptions(
            split_level=self.split_level, notes=self.notes, code=self.code, tables=self.tables
        )


# -- responses ------------------------------------------------------------------


class BookChapterOut(BaseModel):
    index: int = Field(description="0-based in reading order; options.chapters counts from 1")
    title: str = Field(description="as the book writes it: the chapter marker's title")
    chars: int
    utf8_bytes: int
    estimated_cost_usd: float = Field(description="of the chapter's text, its title not counted")
    source: str
    narrated: bool = Field(
        True, description="false: left out by the range in options.chapters, and not billed"
    )


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
    chars: int = Field(description="of the chapters narrated")
    utf8_bytes: int = Field(description="of the chapters narrated")
    estimated_cost_usd: float = Field(description="of the chapters narrated")
    cover: bool
    chapters: list[BookChapterOut] = Field(
        description="every chapter of the book; those a range leaves out say narrated: false"
    )
    chapter_range: str | None = Field(
        None, description='options.chapters in its canonical form ("2-3", "1,4,7-9"); null: all'
    )
    skipped: list[str] = Field(description="what was left out and why, one line each")
    skipped_parts: list[SkippedPartOut] = Field(
        default_factory=list, description="the same, one record each: category, reason, source"
    )


class BookOut(BaseModel):
    """``POST /v1/books``: the parsed book, and the batch narrating it (none in a dry run)."""

    book: ParsedBookOut
    batch: BatchOut | None
