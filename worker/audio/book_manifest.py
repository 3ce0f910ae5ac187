"""What a built audiobook is: its file, its chapters' places, its loudness, as a manifest.

:meth:`AudiobookResult.manifest` is the JSON document published beside the
book: title and author, format, duration, checksum, the silences used, each
chapter's title, marker span, audio start and duration, characters and own
file, and, when the book was normalised, the measured loudness of the
finished file (whole and per chapter) against the target.  Times are in
seconds (rounded to the microsecond), levels in dB (rounded to 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.audio.book_output import BookFormat
from worker.audio.loudness import LoudnessReport, LoudnessTarget


@dataclass(frozen=True, slots=True)
class ManifestChapter:
    """Where one chapter sits in the book (see the module docstring for the rules)."""

    index: int
    title: str
    start_s: float  # marker start: the chapter's audio start (0 for the first chapter)
    end_s: float  # marker end: the next chapter's start, or the end of the file
    audio_start_s: float  # where the chapter's own audio starts
    duration_s: float  # the chapter's own audio, without inserted silence
    chars: int
    file: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, times rounded to the microsecond."""
        return {
            "index": self.index,
            "title": self.title,
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
            "audio_start_s": round(self.audio_start_s, 6),
            "duration_s": round(self.duration_s, 6),
            "chars": self.chars,
            "file": self.file,
        }


@dataclass(frozen=True, slots=True)
class ChapterLoudness:
    """What normalisation did to one chapter, and what its audio measures in the file."""

    index: int
    input_rms_db: float
    input_peak_db: float
    gain_db: float
    output: LoudnessReport  # measured on the finished file, over the chapter's audio

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "index": self.index,
            "input_rms_db": round(self.input_rms_db, 2),
            "input_peak_db": round(self.input_peak_db, 2),
            "gain_db": round(self.gain_db, 2),
            **self.output.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class AudiobookResult:
    """The finished audiobook file and its manifest."""

    path: Path
    format: BookFormat
    duration_s: float
    bytes: int
    sha256: str
    content_type: str
    chapters: tuple[ManifestChapter, ...]
    loudness: LoudnessReport | None  # the finished file, measured; None without a target
    title: str
    author: str | None
    sample_rate: int
    bitrate_kbps: int
    silence_ms: tuple[int, int, int]  # (head, between chapters, tail) as built
    loudness_target: LoudnessTarget | None = None
    chapter_loudness: tuple[ChapterLoudness, ...] = field(default=())

    def manifest(self) -> dict[str, Any]:
        """The book's manifest, JSON-ready."""
        loudness: dict[str, Any] | None = None
        if self.loudness is not None and self.loudness_target is not None:
            problems = list(self.loudness.problems(self.loudness_target))
            loudness = {
                **self.loudness.to_dict(),
                "within_target": not problems,
                "problems": problems,
                "target": self.loudness_target.to_dict(),
                "chapters": [c.to_dict() for c in self.chapter_loudness],
            }
        head, gap, tail = self.silence_ms
        return {
            "title": self.title,
            "author": self.author,
            "format": self.format.value,
            "content_type": self.content_type,
            "sample_rate": self.sample_rate,
            "bitrate_kbps": self.bitrate_kbps,
            "duration_s": round(self.duration_s, 6),
            "bytes": self.bytes,
            "sha256": self.sha256,
            "silence_ms": {"head": head, "between_chapters": gap, "tail": tail},
            "chapters": [chapter.to_dict() for chapter in self.chapters],
            "loudness": loudness,
        }
