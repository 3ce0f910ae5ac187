"""Apply lexicons to a text: pure, one pass, whole words, longest match first.

Rules of every lexicon given are compiled into one regular expression and the
text is scanned once, left to right.  At each place the longest grapheme that
matches as a whole word wins; between graphemes of one length, the earlier
lexicon, then a case-sensitive rule over a case-insensitive one.  The text
that replaces a match is never scanned again, so an alias is never itself
substituted (``"NASA" → "NASA, the space agency"`` cannot loop).

*Whole word* means the match is neither preceded nor followed by a word
character: a letter, digit, underscore or combining mark of any script (so
``cafe`` does not match inside a decomposed ``café``).  Spaces inside a
grapheme match any run of whitespace (``New York`` matches across a line end).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from worker.lexicons.model import AppliedLexicon, Lexicon, Rule


@dataclass(frozen=True, slots=True)
class Substituted:
    """A text after lexicons: the text to send, and what each lexicon did."""

    text: str
    applied: list[AppliedLexicon]

    @property
    def replacements(self) -> int:
        """Words replaced, over every lexicon."""
        return sum(a.replacements for a in self.applied)


@cache
def _marks_class() -> str:
    """A character-class body of every combining mark (``re`` has no ``\\p{M}``).

    Built once on first use (a scan of the code space, a fraction of a second)
    rather than at import.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


def _word_class() -> str:
    # Word characters: \w, combining marks, and the joiners that glue scripts' letters.
    return f"[\\w{_marks_class()}\\u200c\\u200d]"


def _rule_pattern(rule: Rule) -> str:
    body = r"\s+".join(re.escape(part) for part in rule.grapheme.split(" "))
    return body if rule.case_sensitive else f"(?i:{body})"


@dataclass(frozen=True, slots=True)
class _Entry:
    lexicon: int  # index in the list of lexicons: lower wins
    rule: Rule
    exact: re.Pattern[str]  # the rule's own pattern, for finding which rule matched


class Matcher:
    """An ordered list of lexicons compiled for :meth:`apply`."""

    def __init__(self, lexicons: Sequence[Lexicon]) -> None:
        self.lexicons = list(lexicons)
        entries: list[_Entry] = []
        for li, lexicon in enumerate(self.lexicons):
            for rule in lexicon.rules:
                if rule.applied:
                    entries.append(_Entry(li, rule, re.compile(_rule_pattern(rule))))
        # Longest first; then the earlier lexicon; then case-sensitive before not.
        entries.sort(key=lambda e: (-len(e.rule.grapheme), e.lexicon, not e.rule.case_sensitive))
        self._entries = entries
        self._by_key: dict[str, list[_Entry]] = {}
        for entry in entries:
            self._by_key.setdefault(_key(entry.rule.grapheme), []).append(entry)
        self._pattern: re.Pattern[str] | None = None
        if entries:
            word = _word_class()
            alternatives = "|".join(e.exact.pattern for e in entries)
            self._pattern = re.compile(f"(?<!{word})(?:{alternatives})(?!{word})")

    def _which(self, matched: str) -> _Entry:
        """The entry whose pattern the alternation took for ``matched``: the first in order."""
        for entry in self._by_key.get(_key(matched), ()):
            if entry.exact.fullmatch(matched):
                return entry
        # Case folding the key cannot predict (such as a long s): look at every entry.
        return next(e for e in self._entries if e.exact.fullmatch(matched))

    def apply(self, text: str) -> Substituted:
        """``text`` with every whole-word grapheme replaced by its alias, in one pass."""
        counts = [0] * len(self.lexicons)
        out = text
        if self._pattern is not None:

            def replace(match: re.Match[str]) -> str:
                entry = self._which(match.group(0))
                counts[entry.lexicon] += 1
                return entry.rule.alias or ""

            out = self._pattern.sub(replace, text)
        applied = [
            AppliedLexicon(id=lex.id, version=lex.version, replacements=n)
            for lex, n in zip(self.lexicons, counts, strict=True)
        ]
        return Substituted(text=out, applied=applied)


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


def apply_lexicons(text: str, lexicons: Sequence[Lexicon]) -> Substituted:
    """Apply ``lexicons`` (earlier ones win a tie) to ``text``; see the module docstring."""
    return Matcher(lexicons).apply(text)
