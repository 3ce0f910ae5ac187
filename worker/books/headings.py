"""Chapter heading lines in plain text: "Chapter 12", "CHAPTER IV.", "Part Two: The Sea".

A heading line is a label (``chapter``, ``part``, ``book``; any case) and a
number written in digits, roman numerals or English words ("One",
"Twenty-One", "the First"), optionally followed by a subtitle.  A subtitle
must either follow a separator (``.``, ``:``, a dash) or start with a capital
letter, so the wrapped prose line "Part one of the plan was simple" is not a
heading.  A few unnumbered section names ("Prologue", "Epilogue", "Preface",
"Foreword", "Introduction", "Afterword", "Interlude", and "Contents" so that a
table of contents becomes a section of its own, to be skipped) are headings
when they stand alone on a line, optionally with a subtitle after a separator.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HeadingLine", "chapter_level", "match_heading", "starts_with_label"]

_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]
_WORDS = (
    rf"(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_UNITS)}))?"
    rf"|{'|'.join(_TEENS)}|{'|'.join(_UNITS)}|(?:the[ ]+)?(?:{'|'.join(_ORDINALS)}))"
)
_ROMAN = r"(?=[MDCLXVI])M{0,4}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_NUMBER = rf"(?:\d{{1,4}}|{_ROMAN}|{_WORDS})"
_LABEL = r"chapter|part|book"
_NAMED = (
    r"prologue|epilogue|preface|foreword|introduction|afterword|interlude"
    r"|contents|table[ ]+of[ ]+contents"
)
_SEPARATOR = r"[ ]*[.:—–-][ ]*|[ ]+"
_NUMBERED = re.compile(
    rf"(?P<label>{_LABEL})[ ]+(?P<number>{_NUMBER})(?![\w-])(?:(?P<sep>{_SEPARATOR})(?P<rest>.*))?",
    re.IGNORECASE,
)
_UNNUMBERED = re.compile(rf"(?P<label>{_NAMED})(?:[ ]*[.:—–-][ ]*(?P<rest>.*))?", re.IGNORECASE)
_LABEL_START = re.compile(rf"(?:{_LABEL})[ ]+{_NUMBER}(?![\w-])", re.IGNORECASE)
MAX_HEADING_CHARS = 100
# Words left in lowercase when an ALL-CAPS subtitle is put in title case.
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "in",
        "nor",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
    ]
)


@dataclass(frozen=True, slots=True)
class HeadingLine:
    """A recognised heading line: its label, number (if any) and subtitle (if any)."""

    label: str  # "Chapter", "Part", "Book", "Prologue" …, capitalised
    number: str | None  # as written, tidied: "12", "IV", "Twenty-One", "the First"
    subtitle: str | None

    @property
    def title(self) -> str:
        """The chapter title: "Chapter IV: The Pool of Tears"."""
        head = f"{self.label} {self.number}" if self.number else self.label
        return f"{head}: {self.subtitle}" if self.subtitle else head


def _tidy_number(number: str) -> str:
    if number.isdigit():
        return number
    if re.fullmatch(_ROMAN, number, re.IGNORECASE):
        return number.upper()
    words = " ".join(number.lower().split())
    return "-".join(string.capwords(part) for part in words.split("-")).replace("The ", "the ")


def tidy_subtitle(text: str) -> str | None:
    """A subtitle with trailing dots and dashes removed; an ALL-CAPS one in title case."""
    text = " ".join(text.split()).strip(" .:—–-")
    if not text:
        return None
    if not (text.isupper() and len(text) > 3):
        return text
    words = text.lower().split(" ")
    return " ".join(
        w if i and w in _SMALL_WORDS else w[:1].upper() + w[1:] for i, w in enumerate(words)
    )


def match_heading(line: str) -> HeadingLine | None:
    """The heading on ``line`` (already stripped), or None if it is not one."""
    if not line or len(line) > MAX_HEADING_CHARS:
        return None
    if found := _NUMBERED.fullmatch(line):
        rest, number = found.group("rest"), found.group("number")
        # Without a separator only a capitalised subtitle ("Chapter 1 The Beginning")
        # follows, never wrapped prose ("Part one of the plan was simple").
        bare = rest is not None and not found.group("sep").strip()
        if bare and not rest[:1].isupper() and rest[:1] not in "\"“‘'(":
            return None
        bare_number = re.sub(r"(?i)^the[ ]+", "", number)
        if not (
            bare_number.isdigit()
            or bare_number.isupper()
            or bare_number.islower()
            or bare_number.istitle()
        ):
            return None  # "Chapter mIx" is a word, not a numeral
        if re.fullmatch(_ROMAN, number, re.IGNORECASE) and number.istitle() and len(number) > 1:
            return None  # "Chapter Mix": a word in title case, not roman numerals
        return HeadingLine(
            found.group("label").capitalize(),
            _tidy_number(number),
            tidy_subtitle(rest or ""),
        )
    if found := _UNNUMBERED.fullmatch(line):
        label = " ".join(found.group("label").split()).capitalize()
        return HeadingLine(label, None, tidy_subtitle(found["rest"] or ""))
    return None


def starts_with_label(text: str) -> bool:
    """Whether ``text`` begins like a numbered heading: "Chapter 3", "Part II" (a TOC entry)."""
    return _LABEL_START.match(text) is not None


def chapter_level(levels: Sequence[int], text_after: Sequence[bool]) -> int | None:
    """The heading level that makes chapters: the highest that repeats, unless only dividers.

    ``levels`` are the headings' levels in order; ``text_after`` says whether
    each has prose before the next heading.
    """
    counts = {level: levels.count(level) for level in set(levels)}
    repeated = sorted(level for level, n in counts.items() if n > 1)
    if not repeated:
        return min(counts) if counts else None
    level = repeated[0]
    for deeper in repeated[1:]:
        dividers = all(
            not text_after[k] and k + 1 < len(levels) and levels[k + 1] > level
            for k, lv in enumerate(levels)
            if lv == level
        )
        if not dividers:
            break
        level = deeper
    return level
