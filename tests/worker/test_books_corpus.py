"""The book corpus: real toolchains' books in, the chapters their navigation has out.

Pure tests over ``tests/fixtures/books/``: each ``*.expect.json`` names a book
there and says what :func:`worker.books.parse_book` must make of it (the
schema is in that folder's README).  Every check compares with the book's own
navigation and text; a failure message says which book, which chapter and
what was found instead.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from worker.books import Book, BookError, ReadOptions, parse_book

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "books"
EXPECTATIONS = sorted(CORPUS.glob("*.expect.json"))
NAMES = [path.name.removesuffix(".expect.json") for path in EXPECTATIONS]
COVER_TYPES = {"image/png", "image/jpeg"}  # what an audiobook can embed

# Skip reasons: each category is recognised by any of these words in the skip's
# category or reason (never in its title or source, which may name the file).
REASON_WORDS = {
    "titlepage": ("title page", "titlepage", "half title", "halftitle"),
    "toc": ("contents", "toc", "navigation"),
    "cover": ("cover",),
    "copyright": ("copyright",),
    "colophon": ("colophon", "imprint"),
    "licence": ("licen", "gutenberg", "boilerplate"),
    "advertisement": ("advert",),
    "transcriber's note": ("transcriber",),
    "notes": ("note",),
    "code": ("code",),
    "nonlinear": ("linear", "reading order"),
    "empty": ("empty", "no narratable", "only a title", "no text"),
}


def _expectation(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{name}.expect.json").read_text("utf-8"))
    return data


def _options(raw: dict[str, str]) -> ReadOptions:
    """``{"code": "read"}`` → ``ReadOptions(code=ReadMode.READ)``: enums from their values."""
    defaults = ReadOptions()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(defaults, key)
        values[key] = type(default)(value) if isinstance(default, enum.Enum) else value
    return dataclasses.replace(defaults, **values)


@functools.cache
def _parse(name: str) -> Book | str:
    """The parsed book, or why it could not be parsed (each test then fails saying so)."""
    expected = _expectation(name)
    data = (CORPUS / expected["book"]).read_bytes()
    options = _options(expected["options"]) if "options" in expected else None
    try:
        return parse_book(data, filename=expected["book"], options=options)
    except BookError as exc:
        return f"{expected['book']} was refused: {type(exc).__name__}: {exc}"


def _book(name: str) -> Book:
    book = _parse(name)
    if isinstance(book, str):
        pytest.fail(book)
    return book


def _flat(text: str) -> str:
    """Text as compared: NFC, every run of whitespace one space (line breaks are not wording)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _phrase(phrase: str) -> re.Pattern[str]:
    """A phrase anywhere, case-insensitively, never as part of a longer word or number."""
    flat = _flat(phrase)
    start = r"(?<!\w)" if flat[:1].isalnum() else ""
    end = r"(?!\w)" if flat[-1:].isalnum() else ""
    return re.compile(start + re.escape(flat) + end, re.IGNORECASE)


def _found(book: Book) -> str:
    return "\n".join(f"  {c.index}: {c.title!r} ({c.source})" for c in book.chapters)


def _chapter_pairs(name: str) -> list[tuple[dict[str, Any], Any]]:
    """Expected and actual chapters side by side, once their titles are known to match."""
    book = _book(name)
    expected = _expectation(name)["chapters"]
    titles = [c.title for c in book.chapters]
    if titles != [e["title"] for e in expected]:
        pytest.fail(f"{name}: chapters do not match; test_chapters_follow_navigation says how")
    return list(zip(expected, book.chapters, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_chapters_follow_navigation(name: str) -> None:
    """Chapters and their titles are the navigation's top-level entries, in order."""
    book = _book(name)
    wanted = [chapter["title"] for chapter in _expectation(name)["chapters"]]
    got = [chapter.title for chapter in book.chapters]
    assert got == wanted, (
        f"{name}: expected chapters {wanted}\nbut the importer made:\n{_found(book)}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_text_is_kept_word_for_word(name: str) -> None:
    """Each chapter starts where it should and holds its sections' text unchanged."""
    problems = []
    for expected, chapter in _chapter_pairs(name):
        text = _flat(chapter.text)
        label = f"{name}, chapter {chapter.title!r}"
        starts = expected.get("starts")
        if starts and not text.startswith(_flat(starts)):
            problems.append(f"{label}: should start {starts!r}, starts {text[:120]!r}")
        snippets = list(expected.get("contains", []))
        for section in expected.get("sections", []):
            snippets += section.get("contains", [])
        problems += [
            f"{label}: lacks {snippet!r}" for snippet in snippets if _flat(snippet) not in text
        ]
        problems += _section_headings(label, text, expected.get("sections", []))
    assert not problems, "\n".join(problems)


def _section_headings(label: str, text: str, sections: list[dict[str, Any]]) -> list[str]:
    """A section's heading is read inside its chapter, in the navigation's order."""
    problems, position = [], 0
    for section in sections:
        heading = _flat(section.get("heading", section["title"]))
        found = text.find(heading, position)
        if found < 0:
            problems.append(f"{label}: section heading {heading!r} is not read (in order)")
        else:
            position = found + len(heading)
    return problems


@pytest.mark.parametrize("name", [n for n in NAMES if "separate" in _expectation(n)])
def test_line_breaks_keep_words_apart(name: str) -> None:
    """A line of verse that ends (in a dash or not) is never glued to the next line's word."""
    narration = "\n".join(chapter.text for chapter in _book(name).chapters)
    problems = []
    for before, after in _expectation(name)["separate"]:
        pattern = re.escape(before) + r"\W*\s\W*" + re.escape(after)
        if not re.search(pattern, unicodedata.normalize("NFC", narration)):
            problems.append(f"{name}: {before!r} and {after!r} are not two lines apart")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NAMES)
def test_nothing_else_is_narrated(name: str) -> None:
    """No licence, header, page or line number, note body or title page in the narration."""
    book = _book(name)
    problems = []
    for chapter in book.chapters:
        spoken = _flat(f"{chapter.title}\n{chapter.text}")
        for phrase in _expectation(name).get("absent", []):
            hit = _phrase(phrase).search(spoken)
            if hit:
                context = spoken[max(0, hit.start() - 50) : hit.end() + 50]
                problems.append(f"{name}, {chapter.title!r}: {phrase!r} narrated in …{context}…")
    assert not problems, "\n".join(problems)


def _skip_parts(skip: Any) -> tuple[str, str]:
    """(where, why) of a skip: its title and source, its category and reason."""
    if hasattr(skip, "reason"):
        where = f"{getattr(skip, 'title', '') or ''} {getattr(skip, 'source', '')}"
        return where, f"{getattr(skip, 'category', '')} {skip.reason}"
    where, _, why = str(skip).rpartition(": ")
    return where, why


def _matches(skip: Any, expected: dict[str, Any]) -> bool:
    where, why = _skip_parts(skip)
    reasons = expected["reason"]
    reasons = [reasons] if isinstance(reasons, str) else reasons
    words = [word for reason in reasons for word in REASON_WORDS[reason]]
    if not any(word in why.casefold() for word in words):
        return False
    return expected.get("match", "").casefold() in where.casefold()


@pytest.mark.parametrize("name", [n for n in NAMES if "skipped" in _expectation(n)])
def test_matter_is_skipped_with_its_reason(name: str) -> None:
    """Every part that is not narrated is listed, with why (what the dry run shows)."""
    book = _book(name)
    skips = list(getattr(book, "skips", None) or book.skipped)
    problems = []
    for expected in _expectation(name)["skipped"]:
        found = next((skip for skip in skips if _matches(skip, expected)), None)
        if found is None:
            problems.append(f"{name}: no skip for {expected}")
        else:
            skips.remove(found)  # each listed part answers one expectation
    listed = "\n".join(f"  {skip}" for skip in getattr(book, "skips", None) or book.skipped)
    assert not problems, "\n".join(problems) + f"\nthe importer listed:\n{listed}"


@pytest.mark.parametrize("name", [n for n in NAMES if "title" in _expectation(n)])
def test_title_author_and_cover(name: str) -> None:
    """The book's own title and author, and its cover in a form an audiobook can carry."""
    book = _book(name)
    expected = _expectation(name)
    assert (book.title, book.author) == (expected["title"], expected.get("author")), name
    if expected.get("cover"):
        assert book.cover, f"{name}: the book's cover was lost"
        assert book.cover_type in COVER_TYPES, f"{name}: cover is {book.cover_type}"


def test_every_book_is_expected() -> None:
    """No book in the corpus goes unchecked, and every expectation names a real book."""
    books = {p.name for p in CORPUS.iterdir() if p.suffix in {".epub", ".html", ".docx", ".pdf"}}
    named = {_expectation(name)["book"] for name in NAMES}
    assert books == named
