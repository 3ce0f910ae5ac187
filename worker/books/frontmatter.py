"""Which sections to skip, and the :class:`Book` made from the ones that are left.

A section is skipped, with a :class:`~worker.books.model.Skip` recorded in
:attr:`Book.skips`, when (first rule that applies wins):

1. its structure says so: ``epub:type`` / ``role="doc-…"`` of ``toc``,
   ``landmarks``, ``copyright-page``, ``titlepage``/``halftitlepage``,
   ``cover``, ``dedication``, ``index``, ``colophon``, ``imprint``,
   ``endnotes`` …;
2. its title says so: "Contents", "Table of Contents", "Copyright",
   "Dedication", "Title Page", "Index", "List of Illustrations", "Also by …",
   "The Full Project Gutenberg License";
3. it has nothing to narrate (no letter or digit), or only its title;
4. its text says so, and only for matter at the front or back of the book
   (before the first kept chapter or after the last one, or typed
   ``frontmatter`` / ``backmatter``), never for a chapter in the body or one
   typed ``bodymatter``: a copyright notice ("All rights reserved", "ISBN",
   "© 2024") in a short section with no title of its own; and at the front
   only, a list of entries that are mostly other chapters' titles,
   "Chapter …" labels or end in page numbers (a table of contents), a few
   words of which a paragraph is the book's title or author (a title page),
   or a short "For …" / "To …" (a dedication).

Dedications are skipped only when short (:data:`DEDICATION_CHARS`), so a
mislabelled chapter is never lost.  Runs of three or more title-only sections
(the entries of a plain-text table of contents) are recorded as one skip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from worker.books.clean import has_words
from worker.books.errors import BookTooLarge, EmptyBook
from worker.books.headings import starts_with_label
from worker.books.model import Book, BookKind, Chapter, Section, Skip, SkipCategory

__all__ = [
    "MAX_SECTIONS",
    "ONLY_TITLE",
    "build_book",
    "check_section_count",
    "copyright_notice",
    "skip_reason",
    "type_reason",
]

DEDICATION_CHARS = 600
MAX_SECTIONS = 10_000  # a batch item per chapter: far more than any real book has
TITLE_PAGE_WORDS = 40
COPYRIGHT_CHARS = 2500
TOC_MIN_ENTRIES = 3
TOC_ENTRY_SHARE = 0.6
ONLY_TITLE = "only a title, no text"

_TYPE_REASONS = {
    "toc": "table of contents",
    "landmarks": "table of contents",
    "page-list": "table of contents",
    "loi": "list of illustrations",
    "lot": "list of tables",
    "copyright-page": "copyright page",
    "titlepage": "title page",
    "halftitlepage": "title page",
    "halftitle": "title page",
    "seriespage": "title page",
    "cover": "cover page",
    "index": "index",
    "colophon": "colophon",
    "imprint": "imprint",
    "imprimatur": "colophon",
    "dedication": "dedication",
    "endnotes": "endnotes",
    "footnotes": "endnotes",
    "rearnotes": "endnotes",
    "pg-header": "Project Gutenberg header",
    "pg-licence": "Project Gutenberg licence",
}
# What is a chapter by meaning: text rules never skip it.
_BODY_KINDS = frozenset(["bodymatter", "chapter"])
_CATEGORIES = {
    ONLY_TITLE: SkipCategory.EMPTY,
    "no narratable text": SkipCategory.EMPTY,
    "endnotes": SkipCategory.NOTES,
    "Project Gutenberg header": SkipCategory.LICENCE,
    "Project Gutenberg licence": SkipCategory.LICENCE,
    "imprint": SkipCategory.LICENCE,
    "list of the author's other books": SkipCategory.EXTRA,
}
_TITLE_REASONS = {
    "contents": "table of contents",
    "table of contents": "table of contents",
    "toc": "table of contents",
    "copyright": "copyright page",
    "copyright page": "copyright page",
    "colophon": "colophon",
    "dedication": "dedication",
    "title page": "title page",
    "titlepage": "title page",
    "half title": "title page",
    "half title page": "title page",
    "cover": "cover page",
    "cover page": "cover page",
    "index": "index",
    "list of illustrations": "list of illustrations",
    "list of figures": "list of illustrations",
    "list of tables": "list of tables",
    "illustrations": "list of illustrations",
    "imprint": "imprint",
    "uncopyright": "copyright page",
    "legal notice": "copyright page",
    "copyright notice": "copyright page",
    "the full project gutenberg license": "Project Gutenberg licence",
    "the full project gutenberg licence": "Project Gutenberg licence",
    "project gutenberg license": "Project Gutenberg licence",
}
_ALSO_BY = re.compile(r"(?:also|other books|more books|books) by\b")
_COPYRIGHT = re.compile(
    r"all rights reserved|\bisbn\b|©\s*\d{4}|\(c\)\s*\d{4}|\bcopyright\b\W{0,3}(?:©\s*)?\d{4}",
    re.IGNORECASE,
)
# A TOC entry: "Prologue", "Appendix A", "IV. The Sea", "12) Home" (and see
# starts_with_label for "Chapter 3").
_TOC_LABEL = re.compile(
    r"(?i:prologue|epilogue|preface|introduction|foreword|afterword|appendix|acknowledg\w*"
    r"|notes|bibliography|glossary)\b|(?:[IVXLC]+|\d{1,3})[.):][ ]",
)
_PAGE_REF = re.compile(r"(?:\.{2,}|…|\s)\s*\d{1,4}$")
_DEDICATION = re.compile(r"(?:for|to|dedicated to|in (?:loving )?memory of)\b", re.IGNORECASE)


def check_section_count(count: int) -> None:
    """Refuse a "book" with more sections than any book has, before cleaning them all."""
    if count > MAX_SECTIONS:
        raise BookTooLarge(
            f"the book has {count} chapter headings or sections; at most {MAX_SECTIONS} are read"
        )


def _norm(text: str) -> str:
    """Casefolded words only: how titles are compared."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _looks_like_toc(text: str, titles: frozenset[str]) -> bool:
    entries = [p for line in text.split("\n\n") if (p := line.strip())]
    if len(entries) < TOC_MIN_ENTRIES:
        return False
    hits = sum(
        1
        for entry in entries
        if len(entry) <= 120
        and (
            _norm(entry) in titles
            or _TOC_LABEL.match(entry)
            or starts_with_label(entry)
            or _PAGE_REF.search(entry)
        )
    )
    return hits >= TOC_ENTRY_SHARE * len(entries)


def _names_a_line(text: str, names: tuple[str | None, ...]) -> bool:
    """Whether a paragraph of ``text`` is one of ``names`` ("by" before, or a
    few words after, allowed: "by Ada Author", "The Book: A Novel")."""
    wanted = [n for n in map(_norm, filter(None, names)) if len(n) >= 3]
    for paragraph in text.split("\n\n"):
        line = _norm(paragraph).removeprefix("by ")
        for name in wanted:
            if line == name:
                return True
            # "The Book: A Novel", but never a sentence ("Alice was tired.").
            subtitled = line.startswith(name + " ") and len(line.split()) <= 3 + len(name.split())
            if subtitled and not paragraph.rstrip().endswith((".", "!", "?")):
                return True
    return False


def copyright_notice(text: str) -> bool:
    """Whether a short text reads as a copyright page ("All rights reserved", "ISBN", "© 2024")."""
    return len(text) <= COPYRIGHT_CHARS and _COPYRIGHT.search(text) is not None


def type_reason(kinds: frozenset[str], text: str = "") -> str | None:
    """Why a section of these structural kinds is not narrated (a dedication only if short)."""
    for kind in sorted(kinds):
        reason = _TYPE_REASONS.get(kind)
        if reason and (reason != "dedication" or len(text) <= DEDICATION_CHARS):
            return reason
    return None


def skip_reason(
    section: Section,
    *,
    book_title: str,
    author: str | None,
    front: bool,
    back: bool = False,
    titles: frozenset[str] = frozenset(),
    names: tuple[str | None, ...] = (),
    sole: bool = False,
) -> str | None:
    """Why ``section`` should not be narrated, or None to keep it.

    ``front`` is true while no chapter has been kept yet and more sections
    follow, ``back`` once no kept chapter follows: only there do the text
    rules apply.  ``titles`` are all sections' normalised titles, to
    recognise a table of contents by its entries; ``names`` are other names
    of the book and its author (what the file said before the user overrode
    them).  A ``sole`` section (the book's only one) is never judged by its
    text alone: a short story ending "All rights reserved." is still a story.
    """
    text = section.text
    if reason := type_reason(section.kinds, text):
        return reason
    title = _norm(section.title or "")
    reason = _TITLE_REASONS.get(title)
    if reason and (reason != "dedication" or len(text) <= DEDICATION_CHARS):
        return reason
    if _ALSO_BY.match(title):
        return "list of the author's other books"
    if not has_words(text):
        return ONLY_TITLE if section.title else "no narratable text"
    if sole or section.kinds & _BODY_KINDS:
        return None  # a chapter by meaning: never judged by its text
    front = front or "frontmatter" in section.kinds
    back = back or "backmatter" in section.kinds
    # Untitled, or titled only with the book's own name.
    untitled = not title or title in {_norm(n) for n in (book_title, *names) if n}
    if (front or back) and untitled and copyright_notice(text):
        return "copyright page"
    if front and _looks_like_toc(text, titles - {title}):
        return "table of contents"
    if front:
        short = len(_norm(text).split()) <= TITLE_PAGE_WORDS
        if untitled and short and _names_a_line(text, (book_title, author, *names)):
            return "title page"
        if len(text) <= 200 and text.count("\n\n") <= 1 and _DEDICATION.match(text):
            return "dedication"
    return None


def _skip(section: Section, reason: str, *, front: bool) -> Skip:
    category = _CATEGORIES.get(reason)
    if category is None:
        category = SkipCategory.FRONT_MATTER if front else SkipCategory.BACK_MATTER
    return Skip(category, reason, section.source, section.title)


def _describe(section: Section) -> str:
    return f"{section.title!r} ({section.source})" if section.title else section.source


def _record(skips: list[Skip], run: list[Section]) -> None:
    """Record a run of title-only sections: one each, or one for three or more."""
    if len(run) >= 3:
        where = f"{len(run)} headings from {_describe(run[0])} to {_describe(run[-1])}"
        skips.append(Skip(SkipCategory.EMPTY, f"{ONLY_TITLE} (a table of contents?)", where))
    else:
        skips.extend(_skip(s, ONLY_TITLE, front=True) for s in run)
    run.clear()


def build_book(
    sections: Sequence[Section],
    *,
    title: str,
    author: str | None,
    language: str | None,
    kind: BookKind,
    cover: bytes | None = None,
    cover_type: str | None = None,
    skipped: Sequence[Skip] = (),
    aliases: tuple[str | None, ...] = (),
) -> Book:
    """Skip front and back matter and empty sections, number the rest; :class:`EmptyBook` if none.

    ``skipped`` are skips the reader made outside any section (EPUB spine
    items that are not text); they come first in :attr:`Book.skips`, and each
    section's own :attr:`Section.skips` (boilerplate, notes, code) come just
    before its own verdict, so the list is in reading order.
    ``aliases`` are the title and author the file gave, when the caller
    overrode them, so a title page still reads as one.
    """
    chapters, skips = _sort_out(sections, title=title, author=author, aliases=aliases)
    every = [*skipped, *skips]
    if not chapters:
        detail = "; ".join(map(str, every)) if every else "no sections found"
        raise EmptyBook(f"{title!r} has no narratable text ({detail})")
    return Book(
        title=title,
        author=author,
        language=language,
        chapters=tuple(chapters),
        cover=cover,
        cover_type=cover_type,
        skips=tuple(every),
        kind=kind,
    )


def _reasons(
    sections: Sequence[Section], *, title: str, author: str | None, aliases: tuple[str | None, ...]
) -> list[str | None]:
    """Each section's reason to be skipped (None: kept), front to back then back to front."""
    titles = frozenset(_norm(s.title) for s in sections if s.title)

    def judge(section: Section, *, front: bool, back: bool = False) -> str | None:
        return skip_reason(
            section,
            book_title=title,
            author=author,
            front=front,
            back=back,
            titles=titles,
            names=aliases,
            sole=len(sections) == 1,
        )

    reasons: list[str | None] = []
    kept = False
    for number, section in enumerate(sections, 1):
        # Front matter comes before the body: never the last section.
        reason = judge(section, front=not kept and number < len(sections))
        reasons.append(reason)
        kept = kept or reason is None
    for number in range(len(sections) - 1, 0, -1):  # back matter: after the last kept chapter
        if reasons[number] is not None:
            continue
        reason = judge(sections[number], front=False, back=True)
        if reason is None or reasons.count(None) == 1:
            break
        reasons[number] = reason
    return reasons


def _sort_out(
    sections: Sequence[Section],
    *,
    title: str,
    author: str | None,
    aliases: tuple[str | None, ...],
) -> tuple[list[Chapter], list[Skip]]:
    """The sections kept, numbered as chapters, and why each other one was skipped."""
    reasons = _reasons(sections, title=title, author=author, aliases=aliases)
    chapters: list[Chapter] = []
    skipped: list[Skip] = []
    title_only: list[Section] = []
    for section, reason in zip(sections, reasons, strict=True):
        if section.skips:  # the reader's, in reading order
            _record(skipped, title_only)
            skipped.extend(section.skips)
        if reason == ONLY_TITLE:
            title_only.append(section)
            continue
        _record(skipped, title_only)
        if reason is not None:
            skipped.append(_skip(section, reason, front=not chapters))
            continue
        index = len(chapters)
        name = section.title or f"Chapter {index + 1}"
        chapters.append(Chapter(index, name, section.text, section.source))
    _record(skipped, title_only)
    return chapters, skipped
