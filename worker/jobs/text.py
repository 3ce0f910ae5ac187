"""Cut a job's text into segments: the unit of streaming, retry, checkpoint and parallelism.

A segment is an exact slice of the input, so ``"".join(s.text for s in segments)``
gives back the text unchanged, and a job that resumes from segment *k* knows
precisely which characters are already synthesised.

Where to cut, best first (the *levels*)::

    PARAGRAPH  a blank line: always ends a segment (the assembler adds paragraph silence)
    SENTENCE   after . ! ? … 。 ！ ？ (and friends) plus any closing quotes/brackets
    CLAUSE     after , ; : — ， 、 ； ：
    LINE       at a single line break (lists, headings, verse)
    SPACE      at any other whitespace
    WS_START   between a word and the whitespace after it (only to shed long whitespace)
    NOBREAK    at a no-break space (U+00A0 and kin): the writer asked us not to
    CJK        between CJK characters, respecting the usual line-breaking rules
    GRAPHEME   inside a word, between user-perceived characters (a word longer than max_chars)
    CHAR       anywhere (a single grapheme longer than max_chars)

Within a paragraph the pieces between cuts of one level are packed greedily up
to ``max_chars``; a piece that is still too long is cut at the next level.
Whitespace between segments stays at the end of the segment before it.  A run of
whitespace too long to fit beside its neighbours is the only thing that may end
up in a segment of its own (the synthesiser should skip blank segments).

Segmentation is deterministic: the same text and ``max_chars`` always give the
same segments, which is what makes a checkpoint by segment index valid.  It is
also local: each paragraph is cut on its own, whitespace included, so editing
one paragraph changes only that paragraph's segments, and the segment cache
(:mod:`worker.jobs.cache`) still holds the audio of every other one.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise

__all__ = ["Segment", "segment_text"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One contiguous slice of a job's text."""

    index: int  # 0-based, in text order
    text: str  # exact slice of the input
    start: int  # character offset in the input
    paragraph_end: bool  # ends a paragraph: the assembler may add paragraph silence after it
    break_ms: int = 0  # silence a <break> tag asks for after it (worker.jobs.markup)
    voice: str | None = None  # the passage's voice (a <voice> tag); None: the job's own

    @property
    def end(self) -> int:
        """Offset just past the segment: ``text[start:end] == self.text``."""
        return self.start + len(self.text)


class _Cut(IntEnum):
    """Cut levels, best first; see the module docstring."""

    PARAGRAPH = 0
    SENTENCE = 1
    CLAUSE = 2
    LINE = 3
    SPACE = 4
    WS_START = 5
    NOBREAK = 6
    CJK = 7
    GRAPHEME = 8
    CHAR = 9


_SENTENCE_END = frozenset(".!?…‼⁇⁈⁉‽。！？｡．︒﹒﹖﹗؟।॥")
_CLAUSE_END = frozenset(",;:—–―，、；：﹐﹑﹔﹕､،؛")
# Closing quotes and brackets that belong to the sentence they close; the
# markdown emphasis marks are here so "**Note.** Next" still cuts after "**".
_CLOSERS = frozenset("\"'”’»›)]}」』）】〕〉》〗〙〛］｝＂＇｣*_`")
_OPENERS = frozenset("([{«‹“‘「『（【〔〈《〖〘〚［｛｢")
# Punctuation that reads as a pause even without a space after it ("well—maybe").
_BREAK_AFTER_IN_WORD = frozenset("—―…")
# Japanese/Chinese line-breaking rules (kinsoku): these never start a segment.
_NO_START = (
    frozenset(
        "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿーゝゞヽヾ々〻・"
    )
    | _CLOSERS
    | _SENTENCE_END
    | _CLAUSE_END
)
_NO_BREAK_SPACES = frozenset("\u00a0\u2007\u202f")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_WHITESPACE = re.compile(r"\s+")  # matches exactly the characters str.isspace() accepts
_NON_WHITESPACE = re.compile(r"\S+")
# A period after these is usually not the end of a sentence.
# ("etc." and "no." are left out: they end sentences as often as not.)
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "cf", "fig"),
        *("vol", "pp", "mt", "approx", "dept", "gen", "col", "capt", "lt", "sgt", "rev", "hon"),
    }
)

_CJK_RANGES = (
    (0x1100, 0x115F),  # Hangul Jamo (leading consonants, wide)
    (0x2E80, 0x303E),  # CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
    (0x3041, 0x3247),  # Hiragana, Katakana, Bopomofo, Hangul compatibility jamo, Kanbun
    (0x3250, 0x33FF),  # enclosed CJK letters, CJK compatibility
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97C),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFE30, 0xFE4F),  # CJK Compatibility Forms
    (0xFF01, 0xFF60),  # full-width ASCII variants
    (0xFF61, 0xFFDC),  # half-width CJK punctuation, katakana and Hangul
    (0xFFE0, 0xFFE6),  # full-width signs
    (0x20000, 0x3FFFD),  # CJK Unified Ideographs Extensions B and later
)


def segment_text(text: str, max_chars: int) -> list[Segment]:
    """Cut ``text`` into segments of at most ``max_chars`` characters.

    Paragraphs (separated by a blank line) always end a segment and are kept
    whole when they fit; longer ones are packed greedily from whole sentences,
    then clauses, then words.  A word is only cut when it alone is longer than
    ``max_chars``; CJK text without spaces may be cut between characters.  The
    segments join back to ``text`` exactly.  Empty text gives ``[]``.

    ``paragraph_end`` is set on the segment holding the last words of each
    paragraph, including the last paragraph of the text, so an assembler
    adding paragraph silence should skip it after the final segment.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if not text:
        return []
    return _Segmenter(text, max_chars).run()


# -- character classes ---------------------------------------------------------


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _is_conjoining_jamo(ch: str) -> bool:
    code = ord(ch)
    return 0x1100 <= code <= 0x11FF or 0xA960 <= code <= 0xA97F or 0xD7B0 <= code <= 0xD7FF


def _extends_previous(ch: str) -> bool:
    """True for characters that attach to the one before (accents, selectors, skin tones)."""
    code = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors (emoji vs text presentation)
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


def _is_grapheme_boundary(text: str, pos: int) -> bool:
    """An approximation of UAX #29: never cut inside what a reader sees as one character."""
    before, after = text[pos - 1], text[pos]
    if before == "\r" and after == "\n":
        return False
    if before == "\u200d" or after == "\u200d":  # zero-width joiner glues emoji sequences
        return False
    if _extends_previous(after):
        return False
    if _is_conjoining_jamo(before) and _is_conjoining_jamo(after):
        return False
    if _is_regional_indicator(before) and _is_regional_indicator(after):
        # Flags are pairs of regional indicators: cut only after an even count.
        run = 0
        i = pos - 1
        while i >= 0 and _is_regional_indicator(text[i]):
            run += 1
            i -= 1
        return run % 2 == 0
    return True


# -- the segmenter -------------------------------------------------------------


class _Segmenter:
    """One run of the algorithm; holds the text and its candidate cuts by level."""

    def __init__(self, text: str, max_chars: int) -> None:
        self.text = text
        self.max = max_chars
        self.best: dict[int, _Cut] = {}
        self._find_gap_cuts()
        self._find_in_word_cuts()
        self.by_level: dict[_Cut, list[int]] = {level: [] for level in _Cut}
        for pos in sorted(self.best):
            self.by_level[self.best[pos]].append(pos)

    def _mark(self, pos: int, level: _Cut) -> None:
        if 0 < pos < len(self.text) and level < self.best.get(pos, _Cut.CHAR + 1):
            self.best[pos] = level

    def _find_gap_cuts(self) -> None:
        """Cuts at whitespace; the cut sits after the run so the run stays with the words before."""
        text = self.text
        for match in _WHITESPACE.finditer(text):
            start, end = match.span()
            run = match.group()
            if start == 0:
                # Leading whitespace: a cut after it lets it be shed if it is too long.
                self._mark(end, _Cut.SPACE)
                continue
            if set(run) <= _NO_BREAK_SPACES:
                self._mark(end, _Cut.NOBREAK)
                continue
            self._mark(start, _Cut.WS_START)
            breaks = _LINE_BREAK.findall(run)
            if len(breaks) >= 2 or "\u2029" in run:
                self._mark(end, _Cut.PARAGRAPH)
                continue
            level = self._punctuation_level(start, end)
            if level is None:
                level = _Cut.LINE if breaks else _Cut.SPACE
            self._mark(end, level)

    def _punct_before(self, pos: int) -> int:
        """Index of the last character before ``pos`` that is not a closing quote or bracket."""
        i = pos - 1
        while i >= 0 and self.text[i] in _CLOSERS:
            i -= 1
        return i

    def _punctuation_level(self, start: int, end: int) -> _Cut | None:
        """Level of the gap ``text[start:end]`` judged by the punctuation before it."""
        text = self.text
        i = self._punct_before(start)
        if i < 0:
            return None
        ch = text[i]
        if ch in _SENTENCE_END:
            if ch == "." and self._period_is_not_a_full_stop(i, end):
                return _Cut.SPACE
            return _Cut.SENTENCE
        if ch in _CLAUSE_END:
            return _Cut.CLAUSE
        return None

    def _period_is_not_a_full_stop(self, period: int, next_word: int) -> bool:
        """Abbreviations, initials and "… the" do not end sentences; cutting there sounds odd."""
        text = self.text
        if next_word < len(text) and text[next_word].islower():
            return True
        word_start = period
        while word_start > 0 and not text[word_start - 1].isspace():
            word_start -= 1
        word = text[word_start:period].lstrip("".join(_OPENERS)).lower()
        if word in _ABBREVIATIONS:
            return True
        token = text[word_start:period]
        return len(token) == 1 and token.isupper()

    def _find_in_word_cuts(self) -> None:
        """Cuts between two non-space characters: CJK text and pauses such as "—"."""
        text = self.text
        for match in _NON_WHITESPACE.finditer(text):
            if match.group().isascii():
                continue  # no CJK, no dashes, no combining marks: nothing to find
            for pos in range(match.start() + 1, match.end()):
                level = self._in_word_level(pos)
                if level is not None:
                    self._mark(pos, level)

    def _in_word_level(self, pos: int) -> _Cut | None:
        text = self.text
        before, after = text[pos - 1], text[pos]
        if after in _NO_START or before in _OPENERS or not _is_grapheme_boundary(text, pos):
            return None
        punct = text[max(self._punct_before(pos), 0)]
        cjk_side = _is_cjk(punct) or _is_cjk(after)
        if punct in _SENTENCE_END and cjk_side:
            return _Cut.SENTENCE
        if punct in _CLAUSE_END and cjk_side:
            return _Cut.CLAUSE
        if before in _BREAK_AFTER_IN_WORD:
            return _Cut.CLAUSE
        if _is_cjk(before) or _is_cjk(after):
            return _Cut.CJK
        return None

    def _cuts(self, start: int, end: int, level: _Cut) -> list[int]:
        """Candidate cuts of exactly ``level`` strictly inside ``[start, end)``."""
        if level == _Cut.CHAR:
            return list(range(start + 1, end))
        if level == _Cut.GRAPHEME:
            return [p for p in range(start + 1, end) if _is_grapheme_boundary(self.text, p)]
        positions = self.by_level[level]
        return positions[bisect_right(positions, start) : bisect_left(positions, end)]

    def _split(self, start: int, end: int, level: _Cut) -> list[tuple[int, int]]:
        """Cut ``[start, end)`` into spans of at most ``max`` characters, best cuts first.

        The span holds no cut better than ``level`` (its caller already used
        them), so the pieces between ``level`` cuts are packed greedily and a
        piece that is still too long recurses one level down.
        """
        if end - start <= self.max:
            return [(start, end)]
        cuts = self._cuts(start, end, level)
        while not cuts:  # terminates: CHAR has a cut in any span longer than max >= 1
            level = _Cut(level + 1)
            cuts = self._cuts(start, end, level)
        spans: list[tuple[int, int]] = []
        group_start = group_end = start
        bounds = [start, *cuts, end]
        for piece_start, piece_end in pairwise(bounds):
            if piece_end - piece_start > self.max:
                if group_end > group_start:
                    spans.append((group_start, group_end))
                spans.extend(self._split(piece_start, piece_end, _Cut(level + 1)))
                # The last part of the long piece is usually short: let what follows join it.
                group_start, group_end = spans.pop()
            elif piece_end - group_start <= self.max:
                group_end = piece_end
            else:
                spans.append((group_start, group_end))
                group_start, group_end = piece_start, piece_end
        if group_end > group_start:
            spans.append((group_start, group_end))
        return spans

    def run(self) -> list[Segment]:
        spans: list[list[int]] = []  # [start, end, paragraph_end]: mutable while rebalancing
        bounds = [0, *self.by_level[_Cut.PARAGRAPH], len(self.text)]
        for para_start, para_end in pairwise(bounds):
            pieces = [[s, e, 0] for s, e in self._split(para_start, para_end, _Cut.SENTENCE)]
            pieces[-1][2] = 1
            # Each paragraph on its own: its segments depend on its text alone, so an
            # edit changes only the paragraph's own segments (and the segment cache
            # still holds every other paragraph's).
            spans.extend(self._absorb_blank_spans(pieces))
        return [
            Segment(index=i, text=self.text[s:e], start=s, paragraph_end=bool(pend))
            for i, (s, e, pend) in enumerate(spans)
        ]

    def _absorb_blank_spans(self, spans: list[list[int]]) -> list[list[int]]:
        """Give whitespace-only spans of one paragraph to their neighbours in it, as far
        as ``max`` allows.

        Whitespace goes to the segment before first (where it belongs), then to
        the front of the one after; only what fits in neither stays on its own,
        in ``max``-sized blank segments.
        """
        text = self.text
        out: list[list[int]] = []
        i = 0
        while i < len(spans):
            if not text[spans[i][0] : spans[i][1]].isspace():
                out.append(spans[i])
                i += 1
                continue
            j = i
            paragraph_end = 0
            while j < len(spans) and text[spans[j][0] : spans[j][1]].isspace():
                paragraph_end |= spans[j][2]
                j += 1
            blank_start, blank_end = spans[i][0], spans[j - 1][1]
            if out:
                before = out[-1]
                take = min(blank_end - blank_start, self.max - (before[1] - before[0]))
                before[1] += take
                blank_start += take
                # The paragraph's last words are in `before`: silence belongs after them.
                before[2] |= paragraph_end
                paragraph_end = 0
            if j < len(spans):
                after = spans[j]
                take = min(blank_end - blank_start, self.max - (after[1] - after[0]))
                after[0] -= take
                blank_end -= take
            for s in range(blank_start, blank_end, self.max):
                out.append([s, min(s + self.max, blank_end), 0])
            if paragraph_end and out:  # only when the whole text is whitespace
                out[-1][2] = 1
            i = j
        return out
