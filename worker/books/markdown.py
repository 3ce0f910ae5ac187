"""Markdown books: chapters from headings, Markdown syntax stripped to narration text.

Which headings make chapters: a single level-1 heading that comes first is the
book's title, not a chapter.  Of the other headings, the highest level that
occurs more than once makes chapters (one heading of a level cannot structure
a book).  When every section at that level is only a divider (no text before
the next heading of a deeper level that also repeats, as with "# Part One" /
"## Chapter 1"), the deeper level makes the chapters instead, and the dividers
become title-only sections (skipped and recorded).  Headings above the chapter
level still start a section; deeper ones stay in the text as paragraphs.

What is removed: YAML front matter (read for ``title``, ``author``,
``lang``/``language``), fenced code blocks, HTML comments and tags, images,
footnote references ``[^1]`` and their definitions, link reference
definitions, emphasis and strike-through marks, list and quote markers, table
pipes and rules.  Links keep their text, inline code its content; backslash
escapes and HTML entities are resolved.  Thematic breaks end a paragraph.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass

from worker.books.clean import (
    SCENE_BREAK,
    Vocabulary,
    clean_text,
    clean_title,
    has_words,
    normalize,
)
from worker.books.frontmatter import check_section_count
from worker.books.headings import chapter_level
from worker.books.model import OPENING, Section, SourceBook

__all__ = ["read_markdown"]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_YAML_FIELD = re.compile(r"^(\w+)[ \t]*:[ \t]*(.*)$")
_YAML_ITEM = re.compile(r"^[ \t]+-[ \t]+(.+)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FOOTNOTE_DEF = re.compile(r"^ {0,3}\[\^[^\]]+\]:")
_LINK_DEF = re.compile(r"^ {0,3}\[[^\]^][^\]]*\]:[ \t]*\S+")
_QUOTE = re.compile(r"^(?:[ \t]{0,3}>[ \t]?)+")
_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_ESCAPED_BASE = 0xF0000  # private-use plane: escaped characters hide here while syntax is removed
# Spans are bounded so that a hostile line of unclosed brackets costs linear time.
_INLINE = (
    (re.compile(r"!\[[^\[\]]{0,500}\](?:\([^()]{0,2000}\)|\[[^\[\]]{0,200}\])"), ""),  # images
    (re.compile(r"[ \t]*\[\^[^\[\]\s]{1,50}\]"), ""),  # footnote references
    (re.compile(r"\[([^\[\]]{0,500})\](?:\([^()]{0,2000}\)|\[[^\[\]]{0,200}\])"), r"\1"),
    (re.compile(r"<(?:https?://|mailto:|www\.)[^<>\s]{0,2000}>"), ""),  # autolinks
    # HTML tags, but for shoal's own <break> and <voice> (worker.jobs.markup)
    (re.compile(r"</?(?!(?:break|voice)(?![\w-]))[A-Za-z][^<>]{0,1000}>", re.IGNORECASE), ""),
    (re.compile(r"(`{1,3})([^`]{1,1000})\1"), r"\2"),  # inline code keeps its content
    (re.compile(r"(\*\*|__)(?=\S)(.{1,1000}?)(?<=\S)\1"), r"\2"),
    (re.compile(r"\*(?=\S)(.{1,1000}?)(?<=\S)\*"), r"\1"),
    (re.compile(r"(?<![^\W_])_(?=\S)(.{1,1000}?)(?<=\S)_(?![^\W_])"), r"\1"),
    (re.compile(r"~~(?=\S)(.{1,1000}?)(?<=\S)~~"), r"\1"),
)
_MAX_HEADING_LINE = 1000
_SYNTAX_HINT = re.compile(r"[\\!*_`~\[\]<>&]")
_HIDDEN = re.compile("[\U000f0000-\U000f007f]")


@dataclass(frozen=True, slots=True)
class _Heading:
    line: int  # 0-based index of the heading's (first) line
    end: int  # index of the line after it
    level: int
    text: str


def _front_matter(text: str) -> tuple[str, dict[str, str]]:
    """The text without YAML front matter, and its scalar (or first list item) fields."""
    found = _FRONT_MATTER.match(text)
    if not found:
        return text, {}
    fields: dict[str, str] = {}
    key = None
    for line in found.group(1).split("\n"):
        if (item := _YAML_ITEM.match(line)) and key and key not in fields:
            fields[key] = item.group(1).strip().strip("\"'")
        elif field := _YAML_FIELD.match(line):
            key, value = field.group(1).lower(), field.group(2).strip()
            if value and not value.startswith(("|", ">")):
                fields[key] = value.strip("[]").strip().strip("\"'")
    blank_lines = "\n" * found.group(0).count("\n")  # keep line numbers right
    return blank_lines + text[found.end() :], fields


def _drop_comments(text: str) -> str:
    """HTML comments removed, their line breaks kept (so line numbers stay right)."""
    out: list[str] = []
    pos = 0
    while (start := text.find("<!--", pos)) >= 0:
        end = text.find("-->", start + 4)
        if end < 0:
            break
        out += [text[pos:start], "\n" * text.count("\n", start, end)]
        pos = end + 3
    out.append(text[pos:])
    return "".join(out)


def _unhide(match: re.Match[str]) -> str:
    return chr(ord(match.group(0)) - _ESCAPED_BASE)


def strip_inline(line: str) -> str:
    """One line of Markdown as plain text: links to their text, marks and tags removed."""
    if not _SYNTAX_HINT.search(line):
        return line  # plain prose, the common case
    line, escapes = _ESCAPE.subn(lambda m: chr(_ESCAPED_BASE + ord(m.group(1))), line)
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    if escapes:
        line = _HIDDEN.sub(_unhide, line)
    return html.unescape(line) if "&" in line else line


def _scan(lines: list[str]) -> tuple[list[str], list[_Heading]]:
    """Block structure: each line as plain text ("" where dropped), and the headings.

    Dropped lines (code, definitions, headings) become blank lines, so they end
    the paragraph they interrupt.
    """
    out: list[str] = []
    headings: list[_Heading] = []
    fence: str | None = None
    in_footnote = False
    for i, line in enumerate(lines):
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            out.append("")
            continue
        if opening := _FENCE.match(line):
            fence = opening.group(1)
            out.append("")
            continue
        if in_footnote and (not line.strip() or line[:1] in " \t"):
            out.append("")
            continue
        in_footnote = bool(_FOOTNOTE_DEF.match(line))
        if in_footnote or _LINK_DEF.match(line) or ("|" in line and _TABLE_RULE.match(line)):
            out.append("")
            continue
        prev = out[-1] if out else ""
        setext = _SETEXT.match(line)
        if setext and prev.strip() and prev[0] != "\n" and (i < 2 or not lines[i - 2].strip()):
            headings.append(_Heading(i - 1, i + 1, 1 if line.strip()[0] == "=" else 2, prev))
            out[-1] = ""
            out.append("")
        elif len(line) <= _MAX_HEADING_LINE and (atx := _ATX.match(line)):
            headings.append(_Heading(i, i + 1, len(atx.group(1)), strip_inline(atx.group(2) or "")))
            out.append("")
        elif _RULE.match(line):
            out.append(SCENE_BREAK)  # a thematic break: a scene break, its own paragraph
        else:
            out.append(_block_line(line))
    return out, headings


def _block_line(line: str) -> str:
    """A text line without quote, list and table markup; list items start paragraphs."""
    line = _QUOTE.sub("", line)
    if _LIST.match(line):
        line = "\n" + _LIST.sub("", line)
    if line.lstrip().startswith("|"):
        line = "\n" + ", ".join(c.strip() for c in line.strip().strip("|").split("|"))
    return strip_inline(line)


def read_markdown(raw: str) -> SourceBook:
    """Sections of a Markdown book, and the metadata its front matter or title heading gives."""
    text, fields = _front_matter(normalize(raw))
    text = _drop_comments(text)
    lines = text.split("\n")
    plain, headings = _scan(lines)
    check_section_count(len(headings) + 1)
    title = clean_title(fields["title"]) if fields.get("title") else None
    if sum(1 for h in headings if h.level == 1) == 1 and headings and headings[0].level == 1:
        title = title or clean_title(headings[0].text) or None
        book_heading = headings.pop(0)
        plain[book_heading.line] = ""
    vocabulary = Vocabulary.of("\n".join(plain))

    # Cached: the chapter-level choice and the sections ask for the same ranges.
    # (Deeper headings put back below never fall inside a range asked for before.)
    @functools.cache
    def body(start: int, stop: int) -> str:
        return clean_text("\n".join(plain[start:stop]), vocabulary)

    bounds = [h.line for h in headings] + [len(lines)]
    text_between = [has_words(body(h.end, bounds[k + 1])) for k, h in enumerate(headings)]
    level = chapter_level([h.level for h in headings], text_between)
    # Deeper headings stay in the text as paragraphs of their own.
    for h in headings:
        if level is not None and h.level > level:
            plain[h.line] = "\n" + h.text + "\n"
    starts = [h for h in headings if level is not None and h.level <= level]
    sections: list[Section] = []
    first = starts[0].line if starts else len(lines)
    preamble = body(0, first)
    if preamble or not starts:
        where = f"lines 1-{first}" if starts else "the whole text"
        sections.append(Section(None, preamble, where, frozenset({OPENING})))
    for k, h in enumerate(starts):
        stop = starts[k + 1].line if k + 1 < len(starts) else len(lines)
        source = f"line {h.line + 1}: {lines[h.line].strip()}"
        sections.append(Section(clean_title(h.text) or None, body(h.end, stop), source))
    author = fields.get("author")
    language = fields.get("lang") or fields.get("language")
    return SourceBook(title, author, language, tuple(sections))
