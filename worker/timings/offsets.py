"""Character offsets of the text sent, mapped back to the text as submitted.

Two things stand between what a user submitted and what a provider spoke:

1. *Lexicons* respell words at submission (:mod:`worker.lexicons.apply`): the
   job's ``text`` is the respelled text, and ``source_text`` keeps what was
   submitted (only when a lexicon changed something).
2. *Markup* (``<break>`` and ``<voice>`` tags, :mod:`worker.jobs.markup`) is
   never sent: each segment is an exact slice of the job's text between tags,
   and ``Segment.start`` says where; a segment's offsets become the job's by
   adding it (:meth:`Mark.moved <worker.timings.model.Mark.moved>`).

An :class:`OffsetMap` undoes step 1: a sorted list of :class:`Edit` (a span of
the job's text that replaced a span of the submitted text); between edits the
two texts are the same and offsets shift by the edits before.  Build it
exactly from the replacements made (:meth:`OffsetMap.from_replacements`), or,
for a job that kept only the two texts, by comparing them
(:meth:`OffsetMap.between`).  It is small JSON (:meth:`OffsetMap.to_json`), so
it can be stored with a job.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from worker.timings.model import InvalidMarks, Mark

# Tokens compared by OffsetMap.between: words, runs of spaces, single other characters.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
#: Tokens that must agree for OffsetMap.between to end an edit.
RESYNC_TOKENS = 2
#: How far (tokens) OffsetMap.between looks for them.
RESYNC_WINDOW = 256


@dataclass(frozen=True, slots=True)
class Edit:
    """``sent[sent_start:sent_end]`` replaced ``source[source_start:source_end]``."""

    sent_start: int
    sent_end: int
    source_start: int
    source_end: int


@dataclass(frozen=True, slots=True)
class OffsetMap:
    """Maps character offsets of the text sent to the text as submitted."""

    edits: tuple[Edit, ...] = ()
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        last = 0
        for edit in self.edits:
            if edit.sent_start < last or edit.sent_end < edit.sent_start:
                raise InvalidMarks(f"offset map edits overlap or run backwards at {edit}")
            if edit.source_end < edit.source_start:
                raise InvalidMarks(f"offset map edit runs backwards: {edit}")
            last = edit.sent_end
        object.__setattr__(self, "_starts", tuple(e.sent_start for e in self.edits))

    @classmethod
    def from_replacements(
        cls, source: str, replacements: Iterable[tuple[int, int, str]]
    ) -> tuple[OffsetMap, str]:
        """The map, and the text sent, for ``source`` with each ``(start, end, new)`` applied.

        Replacements are spans of ``source`` in order, not overlapping (what a
        lexicon pass makes).
        """
        edits: list[Edit] = []
        pieces: list[str] = []
        pos = sent = 0
        for start, end, new in replacements:
            if start < pos or end < start or end > len(source):
                raise InvalidMarks(f"replacement {start}..{end} is out of order or out of range")
            pieces.append(source[pos:start])
            sent += start - pos
            edits.append(Edit(sent, sent + len(new), start, end))
            pieces.append(new)
            sent += len(new)
            pos = end
        pieces.append(source[pos:])
        return cls(tuple(edits)), "".join(pieces)

    @classmethod
    def between(cls, source: str, sent: str) -> OffsetMap:
        """The map from ``sent`` back to ``source``, found by comparing the two.

        Both texts are read as tokens (words, runs of spaces, single other
        characters) side by side; where they differ, the nearest place where
        :data:`RESYNC_TOKENS` tokens agree again ends the edit.  Linear in the
        texts' length, and exact for texts that differ by replaced words (what
        lexicons do), unless an alias repeats the words right after it.
        """
        if source == sent:
            return cls()
        a, b = _tokens(source), _tokens(sent)
        edits: list[Edit] = []
        i = j = 0
        while i < len(a) or j < len(b):
            if i < len(a) and j < len(b) and a[i][0] == b[j][0]:
                i, j = i + 1, j + 1
                continue
            di, dj = _resync(a, b, i, j)
            edits.append(
                Edit(
                    _at(b, j, len(sent)),
                    _at(b, j + dj, len(sent)),
                    _at(a, i, len(source)),
                    _at(a, i + di, len(source)),
                )
            )
            i, j = i + di, j + dj
        return cls(tuple(edits))

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The submitted text's span for ``sent[start:end]``; a span touching an edit
        covers all of that edit's original words."""
        return self._position(start, at_end=False), max(
            self._position(start, at_end=False), self._position(end, at_end=True)
        )

    def to_source(self, marks: Iterable[Mark], source: str) -> list[Mark]:
        """``marks`` (offsets in the text sent) with offsets and text of ``source``.

        Word marks that land on the same words of ``source`` (the words of one
        alias) become one mark, from the first's start to the last's end.
        """
        out: list[Mark] = []
        for mark in marks:
            start, end = self.source_span(mark.char_start, mark.char_end)
            moved = replace(mark, char_start=start, char_end=end, text=source[start:end])
            last = out[-1] if out else None
            if (
                last is not None
                and last.kind is moved.kind
                and (last.char_start, last.char_end) == (start, end)
                and start != end
            ):
                out[-1] = replace(last, end_ms=max(last.end_ms, moved.end_ms))
                continue
            out.append(moved)
        return out

    def to_json(self) -> list[list[int]]:
        """The edits as ``[sent_start, sent_end, source_start, source_end]`` lists."""
        return [[e.sent_start, e.sent_end, e.source_start, e.source_end] for e in self.edits]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[int]]) -> OffsetMap:
        """A map from :meth:`to_json`'s lists; :class:`InvalidMarks` if they are not one."""
        try:
            return cls(tuple(Edit(*map(int, item)) for item in data))
        except (TypeError, ValueError) as exc:
            raise InvalidMarks(f"not an offset map: {data!r}") from exc

    def _position(self, pos: int, *, at_end: bool) -> int:
        # The last edit starting at or before pos (for an end: strictly before).
        i = (bisect.bisect_left if at_end else bisect.bisect_right)(self._starts, pos) - 1
        if i < 0:
            return pos
        edit = self.edits[i]
        inside = edit.sent_start < pos < edit.sent_end if at_end else pos < edit.sent_end
        if inside or (at_end and pos == edit.sent_end):
            return edit.source_end if at_end else edit.source_start
        return edit.source_end + (pos - edit.sent_end)


def _tokens(text: str) -> list[tuple[str, int]]:
    return [(m.group(), m.start()) for m in _TOKEN.finditer(text)]


def _at(tokens: list[tuple[str, int]], index: int, end: int) -> int:
    """The character offset where token ``index`` starts (``end`` past the last)."""
    return tokens[index][1] if index < len(tokens) else end


def _resync(a: list[tuple[str, int]], b: list[tuple[str, int]], i: int, j: int) -> tuple[int, int]:
    """Tokens to skip in ``a`` and ``b`` from ``i`` and ``j`` until they agree again:
    the pair with the smallest total, looked for near first, then further (up to
    :data:`RESYNC_WINDOW`); if none, the rest of both texts."""
    window = 16
    while True:
        found = _agreement(a, b, i, j, window)
        if found is not None:
            return found
        if window >= RESYNC_WINDOW:
            return len(a) - i, len(b) - j
        window *= 4


def _agreement(
    a: list[tuple[str, int]], b: list[tuple[str, int]], i: int, j: int, window: int
) -> tuple[int, int] | None:
    rest_a, rest_b = len(a) - i, len(b) - j
    # Agreeing only at the very end counts, when both ends are in sight.
    best = (rest_a, rest_b) if rest_a <= window and rest_b <= window else None
    seen: dict[tuple[str, ...], int] = {}
    for di in range(min(window, rest_a)):
        seen.setdefault(tuple(t for t, _ in a[i + di : i + di + RESYNC_TOKENS]), di)
    for dj in range(min(window, rest_b)):
        if best is not None and dj >= sum(best):
            break
        hit = seen.get(tuple(t for t, _ in b[j + dj : j + dj + RESYNC_TOKENS]))
        if hit is not None and (best is None or hit + dj < sum(best)):
            best = (hit, dj)
    return best
