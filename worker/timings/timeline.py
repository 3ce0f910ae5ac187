"""Where each segment's audio lands in the final file, and its marks with it.

The assembler knows, for every segment, the output sample at which the
segment's first sample is written: after the head silence, the segments
before it, their paragraph silence and ``<break>`` silence, at the output
rate.  It fills a :class:`TimelineBuilder` as it writes and gets a
:class:`Timeline`; :meth:`Timeline.place` then turns a segment's marks
(milliseconds from the start of that segment's audio) into positions in the
file.

``encoder_delay`` is the number of samples a player hears before the file's
first sample.  For shoal's own outputs it is 0: the MP3 encoder's 1105
samples of priming are declared in the LAME header, the M4A (AAC) encoder's
1024 in the MP4 edit list, Opus's 312 (at 48 kHz) in the OpusHead pre-skip,
and decoders remove them (tests/worker/test_timings.py measures it).  It is
kept as a field for a decoder or format that does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from worker.timings.model import InvalidMarks, Mark


@dataclass(frozen=True, slots=True)
class Timeline:
    """Each segment's first sample and length in the output, at ``sample_rate``."""

    sample_rate: int
    starts: tuple[int, ...]  # output sample where segment i's sample 0 is written
    lengths: tuple[int, ...]  # samples of segment i in the output
    total_samples: int  # the whole output, silences included
    encoder_delay: int = 0  # samples a player hears before the output's first sample

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or len(self.starts) != len(self.lengths):
            raise InvalidMarks(f"a timeline needs a rate and one length per start: {self}")
        for i, (start, length) in enumerate(zip(self.starts, self.lengths, strict=True)):
            if start < 0 or length < 0 or start + length > self.total_samples:
                raise InvalidMarks(
                    f"segment {i} at {start}+{length} samples is outside the output "
                    f"of {self.total_samples}"
                )

    @property
    def duration_ms(self) -> int:
        """The audio a player hears, in whole milliseconds (rounded down)."""
        return (self.total_samples + self.encoder_delay) * 1000 // self.sample_rate

    def start_ms(self, index: int) -> float:
        """Where segment ``index`` starts, in ms from the start of what a player hears."""
        return (self.starts[index] + self.encoder_delay) * 1000 / self.sample_rate

    def place(self, index: int, marks: Iterable[Mark]) -> list[Mark]:
        """Segment ``index``'s marks (ms from its own start) as positions in the file.

        A mark is first held within the segment's own audio, so a provider's
        time past its audio cannot spill into the next segment.
        """
        if not 0 <= index < len(self.starts):
            raise InvalidMarks(f"no segment {index} in a timeline of {len(self.starts)}")
        base = self.start_ms(index)
        length_ms = self.lengths[index] * 1000 // self.sample_rate
        out = []
        for mark in marks:
            start = min(mark.start_ms, length_ms)
            end = max(start, min(mark.end_ms, length_ms))
            out.append(replace(mark, start_ms=round(base + start), end_ms=round(base + end)))
        return out

    def place_all(self, marks: Mapping[int, Sequence[Mark]]) -> list[Mark]:
        """Every segment's marks placed, in segment order."""
        return [m for index in sorted(marks) for m in self.place(index, marks[index])]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy (to keep with a job's output)."""
        return {
            "sample_rate": self.sample_rate,
            "starts": list(self.starts),
            "lengths": list(self.lengths),
            "total_samples": self.total_samples,
            "encoder_delay": self.encoder_delay,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Timeline:
        """The timeline :meth:`to_json` wrote; :class:`InvalidMarks` if it is not one."""
        try:
            return cls(
                int(data["sample_rate"]),
                tuple(int(x) for x in data["starts"]),
                tuple(int(x) for x in data["lengths"]),
                int(data["total_samples"]),
                int(data.get("encoder_delay", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMarks(f"not a timeline: {data!r}") from exc


class TimelineBuilder:
    """Filled by the assembler as it writes, segment by segment."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._segments: dict[int, tuple[int, int]] = {}

    def segment(self, index: int, first_sample: int, samples: int) -> None:
        """Segment ``index`` was written from output sample ``first_sample``, ``samples`` long."""
        if index in self._segments:
            raise InvalidMarks(f"segment {index} placed twice")
        self._segments[index] = (first_sample, samples)

    def build(self, total_samples: int, encoder_delay: int = 0) -> Timeline:
        """The timeline, once every segment 0..n-1 has been placed."""
        count = len(self._segments)
        missing = [i for i in range(count) if i not in self._segments]
        if missing:
            raise InvalidMarks(f"segments {missing} were never placed")
        starts = tuple(self._segments[i][0] for i in range(count))
        lengths = tuple(self._segments[i][1] for i in range(count))
        return Timeline(self.sample_rate, starts, lengths, total_samples, encoder_delay)
