"""Plain-text books: chapters from "Chapter N" lines, text unwrapped and cleaned.

Rules (see :mod:`worker.books.headings` for what a heading line looks like):

* A heading must stand apart: a blank line (or the start or end of the text)
  before or after it, or be written in capitals.  That keeps a wrapped line
  that happens to begin "Book Two" inside its paragraph.  Three or more
  heading-like lines in a row are a table of contents, not headings.
* A heading without a subtitle takes the next line as one when that line is
  short, has no sentence punctuation at its end and is followed by a blank
  line ("CHAPTER I." / "Down the Rabbit-Hole").
* Text before the first heading becomes a section of kind
  :data:`~worker.books.model.OPENING`, titled with the book's title (the
  front-matter rules usually skip it as a title page); with no headings at
  all, the whole text is one such chapter.
* A short title page before the first heading gives the title (its first short
  line) and the author (a "by …" line) when nothing else does.
* Project Gutenberg's licence header and footer are cut off, and its
  ``Title:``, ``Author:`` and ``Language:`` lines are read as metadata.
"""

from __future__ import annotations

import re

from worker.books.clean import Vocabulary, clean_text, normalize
from worker.books.frontmatter import check_section_count
from worker.books.headings import HeadingLine, match_heading, tidy_subtitle
from worker.books.model import OPENING, Section, SourceBook

__all__ = ["read_text"]

_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_FIELD = re.compile(r"^(title|author|language):[ \t]*(.+)$", re.I | re.M)
_SUBTITLE_MAX = 80
_TITLE_PAGE_LINES = 6
_LIST_RUN = 3
_BY = re.compile(r"by[ ]+(\S.*)$", re.I)
_SENTENCE_END = tuple('.!?"”’…,;')
# Languages Project Gutenberg names in its header, as BCP 47 tags.
_LANGUAGES = {
    "english": "en",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "finnish": "fi",
    "swedish": "sv",
    "latin": "la",
}


def _strip_gutenberg(text: str) -> tuple[str, dict[str, str], int]:
    """The text between Gutenberg's START and END lines, the header's fields, and how
    many lines were cut before it (so sources keep the file's line numbers)."""
    start = _GUTENBERG_START.search(text)
    if not start:
        return text, {}, 0
    fields = {k.lower(): v.strip() for k, v in _GUTENBERG_FIELD.findall(text[: start.start()])}
    body = text[start.end() :]
    if end := _GUTENBERG_END.search(body):
        body = body[: end.start()]
    return body, fields, text.count("\n", 0, start.end())


def _blank(lines: list[str], i: int) -> bool:
    """Whether line ``i`` is blank, counting the edges of the text as blank."""
    return i < 0 or i >= len(lines) or not lines[i].strip()


def _listed(matches: list[HeadingLine | None]) -> set[int]:
    """Lines in runs of three or more heading-like lines: a table of contents, not headings."""
    listed: set[int] = set()
    run: list[int] = []
    for i, match in enumerate([*matches, None]):
        if match is not None:
            run.append(i)
            continue
        if len(run) >= _LIST_RUN:
            listed.update(run)
        run = []
    return listed


def _find_headings(lines: list[str]) -> list[tuple[int, int, HeadingLine]]:
    """(first line, line after the heading, heading) for each heading, in order."""
    found: list[tuple[int, int, HeadingLine]] = []
    matches = [match_heading(line.strip()) for line in lines]
    listed = _listed(matches)
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        heading = matches[i]
        apart = _blank(lines, i - 1) or _blank(lines, i + 1) or line.isupper()
        if heading is None or not apart or i in listed:
            i += 1
            continue
        end = i + 1
        if heading.subtitle is None:
            j = end + 1 if _blank(lines, end) and not _blank(lines, end + 1) else end
            candidate = lines[j].strip() if j < len(lines) else ""
            if (
                candidate
                and len(candidate) <= _SUBTITLE_MAX
                and not candidate.endswith(_SENTENCE_END)
                and _blank(lines, j + 1)
                and match_heading(candidate) is None
            ):
                heading = HeadingLine(heading.label, heading.number, candidate)
                end = j + 1
        found.append((i, end, heading))
        i = end
    return found


def _title_page(lines: list[str]) -> tuple[str | None, str | None]:
    """Title and author from a short title page: "THE KEEPER" / "by Tom Teller"."""
    lines = [line.strip() for line in lines if line.strip()]
    if not lines or len(lines) > _TITLE_PAGE_LINES or sum(len(x.split()) for x in lines) > 40:
        return None, None
    author = next((m.group(1) for x in lines if (m := _BY.match(x))), None)
    title = next(
        (x for x in lines if not _BY.match(x) and len(x) <= _SUBTITLE_MAX and x[-1] not in ".!?"),
        None,
    )
    return (tidy_subtitle(title) if title else None), author


def read_text(raw: str) -> SourceBook:
    """Sections of a plain-text book, and the metadata in its Gutenberg header if any."""
    body, fields, skipped_lines = _strip_gutenberg(normalize(raw))
    title, author = fields.get("title"), fields.get("author")
    lines = body.split("\n")
    vocabulary = Vocabulary.of(body)
    headings = _find_headings(lines)
    check_section_count(len(headings) + 1)
    if headings and title is None:
        title, found_author = _title_page(lines[: headings[0][0]])
        author = author or found_author
    sections: list[Section] = []
    first = headings[0][0] if headings else len(lines)
    preamble = clean_text("\n".join(lines[:first]), vocabulary)
    if preamble or not headings:
        where = f"lines {skipped_lines + 1}-{skipped_lines + first}"
        if not headings:
            where = "the whole text"
        sections.append(Section(None, preamble, where, frozenset({OPENING})))
    for n, (start, end, heading) in enumerate(headings):
        stop = headings[n + 1][0] if n + 1 < len(headings) else len(lines)
        text = clean_text("\n".join(lines[end:stop]), vocabulary)
        source = f"line {skipped_lines + start + 1}: {lines[start].strip()}"
        sections.append(Section(heading.title, text, source))
    language = fields.get("language")
    if language:
        language = _LANGUAGES.get(language.casefold(), language)
    return SourceBook(title, author, language, tuple(sections))
