"""Chapter titles as a narrator says them: numbers as words, capitals in ordinary case.

A chapter's displayed title (its chapter marker, the manifest) keeps the book's
own spelling; what is *spoken* before the chapter's text is
:func:`spoken_title` of it, unless the book's options ask for titles as
written (:class:`TitleStyle`).  Pure functions, no I/O::

    "I"                  → "Chapter One"       a bare numeral is a chapter number,
    "IV. The Sea"        → "Chapter Four. The Sea"     never the pronoun "I"
    "Chapter IV"         → "Chapter Four"
    "CHAPTER THE FIRST"  → "Chapter the First"
    "Part II"            → "Part Two"
    "Book 2, Chap. 12"   → "Book Two, Chapter Twelve"

Numbers are turned into words only after a label (``chapter``, ``part``,
``book``, ``volume``, ``act``, ``scene``, ``canto``, ``stave``, ``letter``,
``section``, and the abbreviations ``ch.``, ``chap.``, ``vol.``, ``pt.``), or
when they are the whole title or open it before a separator (``.``, ``:``, a
dash).  A bare Roman numeral must be written in capitals or in lowercase, with
the letters I, V, X, L and C only (values up to 399), so that "MIX", "CD" or
"Mix" stay words.  A title written in capitals is put in title case ("THE
STORM" → "The Storm"): some engines spell out a word in capitals letter by
letter.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "TitleStyle",
    "int_to_roman",
    "int_to_words",
    "roman_to_int",
    "speakable",
    "spoken_title",
]

MAX_ROMAN = 3999
MAX_BARE_ROMAN = 399  # without a label: I…CCCXCIX, never D or M ("MIX", "CD", "DC" are words)


class TitleStyle(StrEnum):
    """How a chapter's title is read before its text."""

    SPOKEN = "spoken"  # numerals as words, capitals in ordinary case (spoken_title)
    AS_WRITTEN = "as_written"  # exactly as the book writes it


_UNITS = [
    "",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
]
_TENS = ["", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]
_ROMAN_VALUES = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)
# The canonical form only: "IIII" and "VX" are not numerals.
_ROMAN = r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_ROMAN_RE = re.compile(_ROMAN)
_LABELS = {
    "chapter": "Chapter",
    "chap": "Chapter",
    "ch": "Chapter",
    "part": "Part",
    "pt": "Part",
    "book": "Book",
    "volume": "Volume",
    "vol": "Volume",
    "act": "Act",
    "scene": "Scene",
    "canto": "Canto",
    "stave": "Stave",
    "letter": "Letter",
    "section": "Section",
}
_NUMBER = r"\d{1,4}|[MDCLXVI]{1,15}|[mdclxvi]{1,15}"
_LABELLED = re.compile(
    rf"\b(?P<label>{'|'.join(sorted(_LABELS, key=len, reverse=True))})(?P<dot>\.?)"
    rf"(?P<space>[ ]+)(?P<number>{_NUMBER})(?![\w'’-])",
    re.IGNORECASE,
)
# A title that is a number, or opens with one before a separator: "IV", "IV. The Sea", "12 — Home".
_BARE = re.compile(rf"(?P<number>{_NUMBER})(?P<rest>[ ]*(?:[.:]|[ ][—–-])(?:[ ]+.*)?|[.:]?)")
_SMALL_WORDS = frozenset(
    "a an and as at but by for from in into nor of on or the to with".split()  # noqa: SIM905
)
_STOPS = re.compile(r"[.:;!?—–]")
_CAPS_WORD = re.compile(r"[^\W\d_][^\W\d_'’]*")


def int_to_roman(number: int) -> str:
    """1 → "I", 1994 → "MCMXCIV"; ``ValueError`` outside 1…3999."""
    if not 1 <= number <= MAX_ROMAN:
        raise ValueError(f"no Roman numeral for {number}")
    out = []
    for value, letters in _ROMAN_VALUES:
        count, number = divmod(number, value)
        out.append(letters * count)
    return "".join(out)


def roman_to_int(numeral: str) -> int | None:
    """ "IV" → 4 (either case); None for anything that is not a canonical Roman numeral."""
    upper = numeral.upper()
    if not upper or not _ROMAN_RE.fullmatch(upper):
        return None
    total = 0
    pos = 0
    for value, letters in _ROMAN_VALUES:
        while upper.startswith(letters, pos):
            total += value
            pos += len(letters)
    return total


def int_to_words(number: int) -> str:
    """1 → "One", 21 → "Twenty-One", 1994 → "One Thousand Nine Hundred Ninety-Four"."""
    if not 1 <= number <= 9999:
        raise ValueError(f"{number} is out of range for a chapter number")
    parts = []
    thousands, rest = divmod(number, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        parts.append(f"{_UNITS[thousands]} Thousand")
    if hundreds:
        parts.append(f"{_UNITS[hundreds]} Hundred")
    if rest >= 20:
        tens, units = divmod(rest, 10)
        parts.append(f"{_TENS[tens]}-{_UNITS[units]}" if units else _TENS[tens])
    elif rest:
        parts.append(_UNITS[rest])
    return " ".join(parts)


def _value(number: str, *, labelled: bool) -> int | None:
    """The value of a chapter number written in digits or Roman numerals, if it is one."""
    if number.isdigit():
        digits = int(number)
        # Without a label, four digits are more likely a year ("1914") than a chapter.
        return digits if 1 <= digits <= (9999 if labelled else 999) else None
    if not (number.isupper() or number.islower()):
        return None  # "Mix", "Vi": words in title case
    value = roman_to_int(number)
    if value is None or labelled:
        return value
    if set(number.upper()) - set("IVXLC") or value > MAX_BARE_ROMAN:
        return None
    return value


def _labelled(match: re.Match[str]) -> str:
    value = _value(match["number"], labelled=True)
    if value is None:
        return match[0]
    return f"{_LABELS[match['label'].lower()]}{match['space']}{int_to_words(value)}"


def _is_caps(title: str) -> bool:
    """Whether ``title`` is written in capitals (more than three letters, none lowercase)."""
    letters = [c for c in title if c.isalpha()]
    return len(letters) > 3 and all(c.isupper() for c in letters)


def _title_case(title: str) -> str:
    """Words in capitals in title case; Roman numerals ("VIII") and other words as they are."""
    out = []
    pos = 0
    for number, match in enumerate(_CAPS_WORD.finditer(title)):
        word = match[0]
        if word.isupper() and not (len(word) > 1 and roman_to_int(word)):
            lower = word.lower()
            # Small words stay lowercase, except first and after a stop ("Four. The Sea").
            opens = not number or _STOPS.search(title[pos : match.start()])
            small = not opens and lower in _SMALL_WORDS
            word = lower if small else lower[:1].upper() + lower[1:]
        out += [title[pos : match.start()], word]
        pos = match.end()
    out.append(title[pos:])
    return "".join(out)


def spoken_title(title: str) -> str:
    """``title`` as a narrator reads it (see the module docstring); never empty if it was not."""
    text = " ".join(title.split())
    if not text:
        return title
    caps = _is_caps(text)
    if bare := _BARE.fullmatch(text):
        value = _value(bare["number"], labelled=False)
        if value is not None:
            text = f"Chapter {int_to_words(value)}{bare['rest']}"
    text = _LABELLED.sub(_labelled, text)
    return _title_case(text) if caps else text


def speakable(title: str, style: TitleStyle) -> str:
    """The title to read aloud in ``style``."""
    return spoken_title(title) if style is TitleStyle.SPOKEN else title
