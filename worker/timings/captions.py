"""Captions from marks: WebVTT, SRT and the JSON list of marks.

A caption (:class:`Cue`) is a sentence.  A sentence longer than ``max_chars``
is cut at word marks into cues of at most that many characters (two lines of
a subtitle), each timed by its own words; without word marks it stays whole.
Cue text is the sentence's text with every run of whitespace made one space.
Give :func:`cues` tidied marks (:func:`worker.timings.marks.tidy`), and the
cues never overlap and never run past the audio.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from worker.timings.model import Mark, MarkKind

#: Longest cue, in characters: two lines of 42, the usual subtitle limit.
MAX_CUE_CHARS = 84


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption: shown from ``start_ms`` to ``end_ms``."""

    start_ms: int
    end_ms: int
    text: str


def cues(marks: Iterable[Mark], max_chars: int = MAX_CUE_CHARS) -> list[Cue]:
    """The captions of ``marks``: one per sentence, long sentences cut at words.

    With no sentence marks at all, words are grouped into cues of at most
    ``max_chars`` instead.
    """
    listed = list(marks)
    words = sorted((m for m in listed if m.kind is MarkKind.WORD), key=lambda m: m.start_ms)
    out: list[Cue] = []
    sentence_marks = [m for m in listed if m.kind is MarkKind.SENTENCE]
    if not sentence_marks:
        return [_joined(group) for group in _groups(words, max_chars)]
    for sentence in sorted(sentence_marks, key=lambda m: m.start_ms):
        text = _flat(sentence.text)
        inside = [
            w
            for w in words
            if sentence.char_start <= w.char_start < sentence.char_end
            and sentence.start_ms <= w.start_ms <= sentence.end_ms
        ]
        if len(text) <= max_chars or len(inside) < 2:
            out.append(Cue(sentence.start_ms, sentence.end_ms, text))
            continue
        groups = _groups(inside, max_chars)
        for i, group in enumerate(groups):
            first, last = group[0], group[-1]
            start = sentence.start_ms if i == 0 else first.start_ms
            end = sentence.end_ms if i == len(groups) - 1 else groups[i + 1][0].start_ms
            piece = sentence.text[
                first.char_start - sentence.char_start : last.char_end - sentence.char_start
            ]
            out.append(Cue(start, max(start, end), _flat(piece)))
    return out


def _groups(words: Sequence[Mark], max_chars: int) -> list[list[Mark]]:
    """Consecutive words in groups whose text, from first to last, fits ``max_chars``."""
    groups: list[list[Mark]] = []
    for word in words:
        if groups and word.char_end - groups[-1][0].char_start <= max_chars:
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def _joined(group: list[Mark]) -> Cue:
    return Cue(group[0].start_ms, group[-1].end_ms, " ".join(_flat(w.text) for w in group))


def _flat(text: str) -> str:
    return " ".join(text.split())


def to_vtt(captions: Iterable[Cue]) -> str:
    """A WebVTT file: the header, then one cue per caption (text escaped for WebVTT)."""
    parts = ["WEBVTT\n"]
    for cue in captions:
        text = cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts.append(f"\n{_clock(cue.start_ms, '.')} --> {_clock(cue.end_ms, '.')}\n{text}\n")
    return "".join(parts)


def to_srt(captions: Iterable[Cue]) -> str:
    """A SubRip file: numbered cues from 1, times with a decimal comma."""
    parts = []
    for n, cue in enumerate(captions, 1):
        parts.append(
            f"{n}\n{_clock(cue.start_ms, ',')} --> {_clock(cue.end_ms, ',')}\n{cue.text}\n"
        )
    return "\n".join(parts)


def to_json(marks: Iterable[Mark]) -> str:
    """The JSON list of marks: sentences and words in time order (a sentence before the
    words it starts with)."""
    ordered = sorted(marks, key=lambda m: (m.start_ms, m.kind is MarkKind.WORD, m.char_start))
    return json.dumps([m.to_json() for m in ordered], ensure_ascii=False)


def _clock(ms: int, decimal: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal}{millis:03d}"
