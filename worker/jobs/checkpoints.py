"""A job's finished segments as it records them: :class:`SegmentCheckpoint`.

A checkpoint says where a segment's PCM is kept (staging, or the segment
cache) and what it holds, so a later attempt synthesises only what is missing
and never stitches in audio cut from another version of the text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from worker.jobs.store import JobStore
from worker.jobs.text import Segment
from worker.timings import Mark, marks_from_json


def segment_digest(text: str) -> str:
    """A short fingerprint of a segment's text, kept in its checkpoint."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SegmentCheckpoint:
    """A finished segment: where its PCM is kept and what it holds."""

    index: int
    key: str  # staging object, or the segment cache's object (worker.jobs.cache)
    bytes: int
    sample_rate: int
    chars: int
    digest: str = ""  # of the segment's text; "" in checkpoints written before it existed
    cached: bool = False  # served from the segment cache: no provider session
    utf8_bytes: int = 0  # of the text sent to the provider, or served from the cache
    # Word marks of a job that asked for timings: ms into this segment's audio,
    # characters of its text.  Kept so a later attempt's captions are the same.
    marks: tuple[Mark, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.bytes / 2 / self.sample_rate

    def matches(self, segment: Segment, sample_rate: int) -> bool:
        """Whether this checkpoint holds ``segment``'s audio at ``sample_rate``.

        A worker configured with another segment length cuts the same text
        differently; its checkpoints must not be stitched into this job's audio.
        """
        same_text = segment_digest(segment.text) == self.digest if self.digest else True
        return (
            same_text
            and self.index == segment.index
            and self.chars == len(segment.text)
            and self.sample_rate == sample_rate
        )

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "key": self.key,
            "bytes": self.bytes,
            "sample_rate": self.sample_rate,
            "chars": self.chars,
            "digest": self.digest,
            "cached": self.cached,
            "utf8_bytes": self.utf8_bytes,
        } | ({"marks": [m.to_json() for m in self.marks]} if self.marks else {})

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SegmentCheckpoint:
        return cls(
            index=int(data["index"]),  # type: ignore[call-overload]
            key=str(data["key"]),
            bytes=int(data["bytes"]),  # type: ignore[call-overload]
            sample_rate=int(data["sample_rate"]),  # type: ignore[call-overload]
            chars=int(data["chars"]),  # type: ignore[call-overload]
            digest=str(data.get("digest", "")),
            cached=bool(data.get("cached", False)),
            utf8_bytes=int(data.get("utf8_bytes", 0)),  # type: ignore[call-overload]
            marks=tuple(marks_from_json(data.get("marks", ()))),  # type: ignore[arg-type]
        )


def stored_checkpoints(
    store: JobStore, job_id: str, segments: list[Segment], sample_rate: int
) -> dict[int, SegmentCheckpoint]:
    """The job's finished segments that belong to this cut of its text, by index."""
    stored = store.segments(job_id)
    out = {}
    for seg in segments:
        raw = stored.get(seg.index)
        cp = SegmentCheckpoint.from_json(raw) if raw is not None else None
        if cp is not None and cp.matches(seg, sample_rate):
            out[seg.index] = cp
    return out
