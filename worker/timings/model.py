"""The :class:`Mark` value and this package's errors (tree in :mod:`worker.timings`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class TimingsError(Exception):
    """Root of the timings errors."""


class InvalidMarks(TimingsError):
    """Marks or a timeline that cannot be right: a bug or bad stored data, not worth a retry."""


class IncompleteTimings(TimingsError):
    """The provider's timings leave part of the audio without words: retried like a
    truncated segment."""


class MarkKind(StrEnum):
    """What a mark times."""

    SENTENCE = "sentence"  # a sentence (or a heading, a line): what a caption shows
    WORD = "word"  # one word as the provider aligned it


@dataclass(frozen=True, slots=True)
class Mark:
    """One timed piece of text.

    ``start_ms``/``end_ms`` are positions in some audio (a segment's, or the
    final file's); ``char_start``/``char_end`` index some text (the text sent,
    the job's text, or the text as submitted), ``text[char_start:char_end]``
    being ``text`` when the mark was made.
    """

    kind: MarkKind
    start_ms: int
    end_ms: int
    text: str
    char_start: int
    char_end: int

    def __post_init__(self) -> None:
        if self.start_ms < 0 or self.end_ms < self.start_ms:
            raise InvalidMarks(f"mark {self.text!r}: times {self.start_ms}..{self.end_ms} ms")
        if self.char_start < 0 or self.char_end < self.char_start:
            raise InvalidMarks(f"mark {self.text!r}: characters {self.char_start}..{self.char_end}")

    def shifted(self, ms: int) -> Mark:
        """The mark ``ms`` later in the audio."""
        return replace(self, start_ms=self.start_ms + ms, end_ms=self.end_ms + ms)

    def moved(self, chars: int) -> Mark:
        """The mark ``chars`` further on in the text (a segment's offset in its job's text)."""
        return replace(self, char_start=self.char_start + chars, char_end=self.char_end + chars)

    def to_json(self) -> dict[str, Any]:
        """The mark as the captions' JSON list shows it."""
        return {
            "type": self.kind.value,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "char_start": self.char_start,
            "char_end": self.char_end,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mark:
        """A mark from :meth:`to_json`'s shape; :class:`InvalidMarks` if it is not one."""
        try:
            return cls(
                MarkKind(data["type"]),
                int(data["start_ms"]),
                int(data["end_ms"]),
                str(data["text"]),
                int(data["char_start"]),
                int(data["char_end"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMarks(f"not a mark: {data!r}") from exc


def marks_from_json(items: Iterable[dict[str, Any]]) -> list[Mark]:
    """Marks from a JSON list (a checkpoint's, or the captions' JSON)."""
    return [Mark.from_json(item) for item in items]
