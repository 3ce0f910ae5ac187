"""Timings of spoken text: marks, their place in the final file, captions (pure).

A :class:`Mark` is one word or sentence: where it sounds (ms) and where it is
in the text (characters).  The provider's client gives marks relative to one
segment's audio and text; :mod:`~worker.timings.timeline` moves them to their
place in the assembled file, :mod:`~worker.timings.offsets` back to the text
as submitted, :mod:`~worker.timings.marks` makes them tidy (sentences from
words, no overlaps, nothing past the audio), and
:mod:`~worker.timings.captions` writes WebVTT, SRT and the JSON list.

Errors::

    TimingsError                 root of this package's errors
    ├── InvalidMarks             marks or a timeline that cannot be right (permanent)
    └── IncompleteTimings        the provider's timings miss part of the audio (retry)
"""

from worker.timings.captions import Cue, cues, to_json, to_srt, to_vtt
from worker.timings.marks import locate, sentence_spans, sentences, tidy
from worker.timings.model import (
    IncompleteTimings,
    InvalidMarks,
    Mark,
    MarkKind,
    TimingsError,
    marks_from_json,
)
from worker.timings.offsets import Edit, OffsetMap
from worker.timings.timeline import Timeline, TimelineBuilder

__all__ = [
    "Cue",
    "Edit",
    "IncompleteTimings",
    "InvalidMarks",
    "Mark",
    "MarkKind",
    "OffsetMap",
    "Timeline",
    "TimelineBuilder",
    "TimingsError",
    "cues",
    "locate",
    "marks_from_json",
    "sentence_spans",
    "sentences",
    "tidy",
    "to_json",
    "to_srt",
    "to_vtt",
]
