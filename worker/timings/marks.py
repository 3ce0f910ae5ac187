"""Marks from a provider's alignment: words found in the text, sentences, tidied.

A provider aligns *pieces of text it spoke* (usually words) to times, without
saying where they are in the text sent.  :func:`locate` finds them, in order:
each piece is looked for a little way after the previous one, exactly, then
ignoring case, then without the punctuation around it.  A piece it cannot
find (a number the provider spelt out, say) is given the text between its
neighbours that were found, so no time is lost and no text is invented.

:func:`sentences` makes one sentence mark per sentence of the text from the
word marks inside it; :func:`tidy` is the last step before captions: marks
of one kind in time order, never overlapping, never past the audio.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from worker.timings.model import Mark, MarkKind

#: How far past the previous word a word is looked for (characters, beyond its own length).
SEARCH_WINDOW = 200

# A sentence ends after ., !, ?, … or their CJK forms (plus closing quotes and
# brackets) before whitespace or the end; a line break ends one too (headings,
# list items).
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*(?=\s|$)|[。！？]+|\n")
_PUNCTUATION = string.punctuation + "“”‘’«»…—–¡¿。、，；：！？"


class Aligned(Protocol):
    """A piece of spoken text and its times in seconds (a provider's alignment segment)."""

    @property
    def text(self) -> str: ...

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


def locate(text: str, pieces: Iterable[Aligned]) -> list[Mark]:
    """Word marks for ``pieces`` (in spoken order), with their characters in ``text``.

    Times become whole milliseconds.  Pieces with no letters or digits of
    their own (punctuation the provider aligned) are dropped.
    """
    lowered = text.lower() if len(text.lower()) == len(text) else None
    found: list[tuple[Aligned, tuple[int, int] | None]] = []
    cursor = 0
    for piece in pieces:
        needle = piece.text.strip()
        if not any(ch.isalnum() for ch in needle):
            continue
        span = _find(text, lowered, needle, cursor)
        found.append((piece, span))
        if span is not None:
            cursor = span[1]
    out: list[Mark] = []
    for i, (piece, span) in enumerate(found):
        if span is None:
            span = _gap(text, found, i)
        start_ms = max(0, round(piece.start * 1000))
        end_ms = max(start_ms, round(piece.end * 1000))
        out.append(Mark(MarkKind.WORD, start_ms, end_ms, text[span[0] : span[1]], *span))
    return out


def _find(text: str, lowered: str | None, needle: str, cursor: int) -> tuple[int, int] | None:
    limit = cursor + len(needle) + SEARCH_WINDOW
    at = text.find(needle, cursor, limit)
    if at >= 0:
        return at, at + len(needle)
    if lowered is not None:
        at = lowered.find(needle.lower(), cursor, limit)
        if at >= 0:
            return at, at + len(needle)
    core = needle.strip(_PUNCTUATION)
    if core and core != needle:
        return _find(text, lowered, core, cursor)
    return None


def _gap(
    text: str, found: Sequence[tuple[Aligned, tuple[int, int] | None]], i: int
) -> tuple[int, int]:
    """The text between the nearest found words before and after piece ``i``."""
    before = next((span[1] for _, span in reversed(found[:i]) if span is not None), 0)
    after = next((span[0] for _, span in found[i + 1 :] if span is not None), len(text))
    while before < after and text[before].isspace():
        before += 1
    while after > before and text[after - 1].isspace():
        after -= 1
    return before, after


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of ``text`` as ``(start, end)`` character spans, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        _add_span(text, start, match.end(), spans)
        start = match.end()
    _add_span(text, start, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def sentences(text: str, words: Sequence[Mark]) -> list[Mark]:
    """One sentence mark per sentence of ``text`` that has word marks in it.

    A sentence runs from the start of its first word to the end of its last;
    a word belongs to the sentence its first character is in.  ``words`` and
    ``text`` must index the same characters.
    """
    ordered = sorted((w for w in words if w.kind is MarkKind.WORD), key=lambda w: w.char_start)
    out: list[Mark] = []
    i = 0
    for start, end in sentence_spans(text):
        while i < len(ordered) and ordered[i].char_start < start:
            i += 1
        inside: list[Mark] = []
        while i < len(ordered) and ordered[i].char_start < end:
            inside.append(ordered[i])
            i += 1
        if inside:
            begin = min(w.start_ms for w in inside)
            finish = max(w.end_ms for w in inside)
            out.append(Mark(MarkKind.SENTENCE, begin, finish, text[start:end], start, end))
    return out


def tidy(marks: Iterable[Mark], duration_ms: int) -> list[Mark]:
    """``marks`` ready to publish: sentences first, then words, each kind in time order,
    every mark within ``0..duration_ms``, none overlapping the next of its kind.

    Where two marks of a kind overlap, the earlier one ends where the later
    one starts: the later start is the one a listener hears.
    """
    out: list[Mark] = []
    for kind in MarkKind:
        mine = sorted(
            (m for m in marks if m.kind is kind), key=lambda m: (m.start_ms, m.char_start)
        )
        kept: list[Mark] = []
        for mark in mine:
            start = min(mark.start_ms, duration_ms)
            mark = replace(mark, start_ms=start, end_ms=max(start, min(mark.end_ms, duration_ms)))
            if kept and kept[-1].end_ms > mark.start_ms:
                kept[-1] = replace(kept[-1], end_ms=max(kept[-1].start_ms, mark.start_ms))
            kept.append(mark)
        out.extend(kept)
    return out
