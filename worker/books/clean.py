"""Turn extracted text into narration text: what a narrator would actually read.

:func:`clean_text` is the one entry point the readers use.  In order, it:

1. normalises Unicode to NFC, line endings to ``\\n``, exotic spaces to a space,
   and drops soft hyphens, zero-width spaces, byte-order marks and control
   characters (they are invisible on the page but a TTS engine may voice them);
2. removes Gutenberg's ``[Illustration: …]`` placeholders (which span lines);
3. splits paragraphs at blank lines and goes line by line: removes footnote
   markers (``[1]``, ``[*]``, superscript digits after a word) and inline page
   markers (``[Pg 12]``, ``{12}``), eating the space before them so no " ."
   is left behind; drops lines that are then empty or only a page number
   (``12``, ``- 12 -``, ``Page 12``; not right after a line ending in a
   hyphen, where "1914-" / "1918" is a range); and turns lines with no letters
   or digits (``* * *``, ``⁂``, rules) into a scene break: a paragraph of its
   own, written :data:`SCENE_BREAK` (repeated breaks are one, and none opens or
   closes a text);
4. unwraps hard-wrapped lines into one line per paragraph, joining words
   hyphenated at a line end (see :class:`Vocabulary` for when the hyphen stays);
5. joins paragraphs with exactly one blank line.

Words are never lost: only markers and page numbers go, and symbol-only lines
become :data:`SCENE_BREAK`, which a book narrates as silence (``scene_break_ms``).
Cleaning is idempotent: clean text comes back unchanged.

Text from markup (EPUB) has its noise removed by meaning before it gets here,
so :func:`clean_lines` applies none of the text rules of steps 2–3: a
``[0]`` or a ``12`` on its own is literal text there.  Its line breaks are
the author's (``<br/>``, a line of verse), never a wrap: a line of verse
keeps its break (a short pause and a word boundary), and in prose a line
ending in a dash is never glued to the next word.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable

__all__ = [
    "SCENE_BREAK",
    "Vocabulary",
    "clean_lines",
    "clean_text",
    "clean_title",
    "has_words",
    "normalize",
]

# Spaces a narrator cannot hear the difference between; tabs and form feeds too.
_SPACE_CHARS = "\t\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
_SPACE_CHARS += "\u200a\u202f\u205f\u3000"
# Invisible characters: soft hyphen, zero-width space, word joiner, BOM.  ZWJ and
# ZWNJ stay: they change how Indic and Persian scripts are written.
_DROP_CHARS = "\u00ad\u200b\u2060\ufeff"
_TRANSLATE: dict[int, str | None] = {ord(c): " " for c in _SPACE_CHARS}
_TRANSLATE.update({ord(c): None for c in _DROP_CHARS})
_TRANSLATE.update({0x2028: "\n", 0x2029: "\n\n"})
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")

# Footnote markers: [1] [12] [*] [†] (never right after ")" or "]": that is an index,
# as in "href.split('#')[0]"), and the superscript digits publishers use after a word
# or its punctuation.  Three letters before a superscript keep
# units such as m² and km³.
_MARKERS = re.compile(
    r"[ ]*(?<![)\]])\[(?:\d{1,3}|[*†‡§¶])\]"
    r"|(?:(?<=[^\W\d_]{3})|(?<=[.,;:!?\"”’)]))[⁰¹²³⁴⁵⁶⁷⁸⁹]+"
    r"|[ ]*\[(?:pg|page|p\.)[ ]*[\divxlc]{1,6}\]"
    r"|[ ]*\{\d{1,4}\}",
    re.IGNORECASE,
)
_MARKER_HINT = re.compile(r"[\[{⁰¹²³⁴⁵⁶⁷⁸⁹]")
# Project Gutenberg's illustration placeholders, which may span lines.
_ILLUSTRATION = re.compile(r"\[illustration[^\]]{0,2000}\]", re.IGNORECASE)
# A line that is only a page number: "12", "- 12 -", "[12]", "Page 1012", "p. 12".  Bare
# numbers stop at three digits: a four-digit line is more likely a year ("1914-" / "1918").
_PAGE_LINE = re.compile(
    r"[-–—]?[ ]*\[?\d{1,3}\]?[ ]*[-–—]?|(?:page|pg\.?|p\.)[ ]*\d{1,4}", re.IGNORECASE
)
_WORD_CHAR = re.compile(r"[^\W_]")
_LETTERS = re.compile(r"[^\W\d_]+")
# Starting only at the beginning of a letter run keeps these linear on any input.
_COMPOUND = re.compile(r"(?<![^\W\d_])([^\W\d_]++)-([^\W\d_]+)")
_LAST_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_]+$")
_LINE_END_DASH = re.compile(r"[-–—]\n")
_BLANK_LINE = re.compile(r"\n[ ]*\n")
_SPACES = re.compile(r" {2,}")

# First halves of compounds that are nearly always written with a hyphen, so a
# line break after them is a real hyphen ("self-\nmade" → "self-made").
COMPOUND_PREFIXES = frozenset(
    [
        "all",
        "anti",
        "cross",
        "ex",
        "great",
        "half",
        "ill",
        "long",
        "non",
        "post",
        "quasi",
        "self",
        "semi",
        "short",
        "so",
        "well",
    ]
)


def normalize(text: str) -> str:
    """NFC, ``\\n`` line endings, plain spaces, no invisible or control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_TRANSLATE)
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)


#: How a scene break (``* * *``, ``<hr/>``) is written in narration text: a paragraph of its own.
SCENE_BREAK = "* * *"


def tidy_scene_breaks(paragraphs: Iterable[str]) -> list[str]:
    """``paragraphs`` with no scene break first, last or twice in a row."""
    out: list[str] = []
    for paragraph in paragraphs:
        if paragraph == SCENE_BREAK and (not out or out[-1] == SCENE_BREAK):
            continue
        out.append(paragraph)
    if out and out[-1] == SCENE_BREAK:
        out.pop()
    return out


def has_words(text: str) -> bool:
    """Whether ``text`` has anything to narrate: at least one letter or digit."""
    return _WORD_CHAR.search(text) is not None


def strip_markers(text: str) -> str:
    """Remove footnote markers and inline page markers (and the space before them)."""
    # Most lines have none of the characters a marker needs: skip the big regex.
    return _MARKERS.sub("", text) if _MARKER_HINT.search(text) else text


class Vocabulary:
    """The words of a text, to decide what a hyphen at a line end means.

    ``exam-`` / ``ple`` is joined to ``example`` unless the text itself says
    otherwise: when ``well-known`` occurs unbroken somewhere, a ``well-`` /
    ``known`` break keeps its hyphen; when ``example`` occurs unbroken, the
    break is joined.  With no evidence either way, the hyphen stays only after
    one of :data:`COMPOUND_PREFIXES` (and only when the next line starts in
    lowercase at all: ``Jean-`` / ``Paul`` always keeps it).

    The word sets are collected on first use: most texts never ask.
    """

    __slots__ = ("_compounds", "_text", "_words")

    def __init__(self, text: str) -> None:
        self._text = text
        self._words: frozenset[str] | None = None
        self._compounds: frozenset[str] = frozenset()

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """The vocabulary of ``text`` (collected lazily)."""
        return cls(text)

    def _collect(self) -> frozenset[str]:
        if self._words is None:
            folded = self._text.casefold()
            self._words = frozenset(_LETTERS.findall(folded))
            self._compounds = frozenset(f"{a}-{b}" for a, b in _COMPOUND.findall(folded))
            self._text = ""
        return self._words

    def joins(self, left: str, right: str) -> bool:
        """Whether the book shows ``left-`` / ``right`` to be one word broken in two."""
        words = self._collect()
        if f"{left}-{right}".casefold() in self._compounds:
            return False
        return (left + right).casefold() in words

    def keeps_hyphen(self, left: str, right: str) -> bool:
        """Whether ``left-`` at a line end followed by ``right`` is a real hyphen."""
        words = self._collect()
        if f"{left}-{right}".casefold() in self._compounds:
            return True
        if (left + right).casefold() in words:
            return False
        return left.casefold() in COMPOUND_PREFIXES


def _join_lines(lines: list[str], vocabulary: Vocabulary) -> str:
    """Unwrap one paragraph's lines into one line, mending line-end hyphenation."""
    joined = "\n".join(lines)
    if not _LINE_END_DASH.search(joined):  # the common case: nothing to mend
        return _SPACES.sub(" ", joined.replace("\n", " "))
    parts = [lines[0]]
    for prev, line in itertools.pairwise(lines):
        left = _LAST_WORD.search(prev[-64:-1]) if prev.endswith("-") else None
        right = _LETTERS.match(line) if line[:1].islower() else None
        if left and right and not vocabulary.keeps_hyphen(left.group(0), right.group(0)):
            parts[-1] = parts[-1][:-1]  # "exam-" / "ple": the hyphen only broke the word
            parts.append(line)
        elif prev.endswith(("-", "–", "—")) and not prev[-2:-1].isspace():
            # "well-" / "known", "Jean-" / "Paul", "1914-" / "1918", "said—" / "and".
            parts.append(line)
        else:
            parts += (" ", line)
    return _SPACES.sub(" ", "".join(parts))


def _continues(lines: list[str]) -> bool:
    """Whether the paragraph so far ends mid-word or mid-range ("1914-"): the next line
    belongs to it, even if it is only a number."""
    return bool(lines) and lines[-1].endswith(("-", "–", "—"))


def _paragraphs(text: str) -> Iterable[list[str]]:
    """Lines of each paragraph, with page numbers and symbol-only lines removed."""
    for block in _BLANK_LINE.split(text):
        lines: list[str] = []
        for raw in block.split("\n"):
            # Markers go line by line, so a line that was only "[12]" vanishes
            # without leaving a blank line that would split the paragraph.
            line = strip_markers(raw).strip()
            if not line or (_PAGE_LINE.fullmatch(line) and not _continues(lines)):
                continue
            if not has_words(line):  # "* * *", "———": a scene break ends the paragraph
                if lines:
                    yield lines
                yield [SCENE_BREAK]
                lines = []
                continue
            lines.append(line)
        if lines:
            yield lines


def clean_text(text: str, vocabulary: Vocabulary | None = None) -> str:
    """Clean raw text into narration text: paragraphs separated by one blank line.

    ``vocabulary`` lets a caller that cleans a book piece by piece decide
    hyphenation with the whole book's words; by default the text's own are used.
    """
    text = _ILLUSTRATION.sub("", normalize(text))
    if vocabulary is None:
        vocabulary = Vocabulary.of(text)
    paragraphs = (_join_lines(lines, vocabulary) for lines in _paragraphs(text))
    return "\n\n".join(tidy_scene_breaks(paragraphs))


def clean_title(title: str) -> str:
    """A heading as a one-line title: markers removed, whitespace collapsed."""
    text = strip_markers(" ".join(normalize(title).split()))
    return " ".join(text.split())


def _join_authored(lines: list[str], vocabulary: Vocabulary) -> str:
    """Join a paragraph's authored lines (``<br/>``) into one, each break a word boundary.

    Only a hyphen the book itself shows to be a break ("exam-" / "ple" where
    "example" occurs unbroken) is mended.
    """
    parts = [lines[0]]
    for prev, line in itertools.pairwise(lines):
        left = _LAST_WORD.search(prev[-64:-1]) if prev.endswith("-") else None
        right = _LETTERS.match(line) if line[:1].islower() else None
        if left and right and vocabulary.joins(left.group(0), right.group(0)):
            parts[-1] = parts[-1][:-1]
            parts.append(line)
        else:
            parts += (" ", line)
    return _SPACES.sub(" ", "".join(parts))


def clean_lines(text: str, vocabulary: Vocabulary, *, keep_breaks: bool) -> str:
    """Narration text of one block of markup: literal text kept, only whitespace tidied.

    ``keep_breaks`` keeps every line (verse, preformatted text, code, a table
    row's cells) on its own; otherwise the lines of a paragraph are joined.
    Blank lines separate paragraphs (a table's rows); lines with no letter or
    digit are dropped, and a block of nothing else is a scene break
    (:data:`SCENE_BREAK`, as an ``<hr/>`` is).
    """
    paragraphs = []
    for block in _BLANK_LINE.split(normalize(text)):
        lines = [line for raw in block.split("\n") if has_words(line := " ".join(raw.split()))]
        if not lines:
            if block.strip() and not keep_breaks:
                paragraphs.append(SCENE_BREAK)
            continue
        paragraphs.append("\n".join(lines) if keep_breaks else _join_authored(lines, vocabulary))
    return "\n\n".join(paragraphs)
