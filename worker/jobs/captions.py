"""A job's captions: its segments' word marks placed in the final file, as files.

A job that asked for ``timestamps`` has, with each segment's checkpoint, the
word marks its provider session returned (ms into the segment's audio,
characters of the segment's text; :mod:`worker.jobs.synth`).  Once the output
is assembled:

1. :func:`job_timeline` says where each segment's first sample landed in the
   output: after the head silence, the segments before it and every pause
   (paragraph silence, ``<break>``), at the output rate.  The assembler writes
   exactly those samples (:mod:`worker.audio.assemble`), and the encoders'
   priming is declared in the files and removed by decoders, so a player's
   time is the file's (``tests/worker/test_timings.py`` measures it).
2. :func:`caption_marks` places the words there, finds the sentences over
   the whole text (a segment may end mid-sentence), maps characters back to
   the text as submitted (before lexicons; tags are left out of every mark's
   text) and tidies them: no overlaps, nothing past the audio.
3. :func:`caption_files` writes WebVTT, SRT and the JSON list;
   :func:`upload_captions` puts them beside the output.

Everything but the upload is pure, and the same checkpoints give the same
captions: a segment rendered again after a crash keeps the marks it was
checkpointed with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath

from worker.audio import SegmentAudio
from worker.digest import sha256_bytes
from worker.jobs.checkpoints import SegmentCheckpoint
from worker.jobs.markup import Run, parse_markup
from worker.jobs.model import CaptionFormat, Captions, Job, TimestampLevel
from worker.jobs.text import Segment
from worker.storage.client import Storage
from worker.timings import (
    Mark,
    OffsetMap,
    Timeline,
    TimelineBuilder,
    cues,
    sentences,
    tidy,
    to_json,
    to_srt,
    to_vtt,
)

_SPACES = re.compile(r"\s+")


def job_timeline(parts: Sequence[SegmentAudio], out_rate: int, head_ms: int = 0) -> Timeline:
    """Where each of ``parts`` (every segment, in order, as assembled) starts and how
    long it is in the output at ``out_rate``.

    Positions are kept as exact times and rounded once, so a long job gathers
    no rounding error; a segment at another rate than the output is resampled
    to the same length.
    """
    builder = TimelineBuilder(out_rate)
    at = head_ms / 1000
    for index, part in enumerate(parts):
        seconds = part.path.stat().st_size / 2 / part.sample_rate
        first = round(at * out_rate)
        builder.segment(index, first, round((at + seconds) * out_rate) - first)
        at += seconds + part.silence_after_ms / 1000
    return builder.build(round(at * out_rate))


def caption_marks(
    job: Job,
    segments: Sequence[Segment],
    checkpoints: Mapping[int, SegmentCheckpoint],
    timeline: Timeline,
) -> list[Mark]:
    """The job's marks in the final file, with characters of the text as submitted."""
    text = job.request.text
    words: list[Mark] = []
    for position, seg in enumerate(segments):
        checkpoint = checkpoints.get(seg.index)
        if checkpoint is not None and checkpoint.marks:
            placed = timeline.place(position, checkpoint.marks)
            words += [m.moved(seg.start) for m in placed]
    found = sentences(blank_tags(text), words)
    if job.request.timestamps is TimestampLevel.WORD:
        found += words
    source = job.request.source_text
    if source is not None and source != text:
        found = OffsetMap.between(source, text).to_source(found, source)
    shown = source if source is not None else text
    spoken = [replace(m, text=_spoken(shown[m.char_start : m.char_end])) for m in found]
    return tidy([m for m in spoken if m.text], timeline.duration_ms)


def blank_tags(text: str) -> str:
    """``text`` with each ``<break>`` and ``<voice>`` tag written as spaces: every other
    character stays where it was, and no tag is ever part of a sentence."""
    try:
        parts = parse_markup(text)
    except ValueError:  # malformed tags were refused at submission
        return text
    pieces = [p.text if isinstance(p, Run) else " " * p.length for p in parts]
    return "".join(pieces)


def _spoken(piece: str) -> str:
    return _SPACES.sub(" ", blank_tags(piece)).strip()


def caption_files(marks: Sequence[Mark]) -> dict[CaptionFormat, str]:
    """The captions of ``marks`` (tidied) in every format: sentences as cues."""
    shown = cues(marks)
    return {
        CaptionFormat.VTT: to_vtt(shown),
        CaptionFormat.SRT: to_srt(shown),
        CaptionFormat.JSON: to_json(marks),
    }


def upload_captions(
    storage: Storage, job: Job, output_key: str, files: Mapping[CaptionFormat, str]
) -> list[Captions]:
    """Upload ``files`` beside the output (``<output key>.vtt`` …); what the record lists."""
    stem = str(PurePosixPath(output_key).with_suffix(""))
    out = []
    for fmt, body in files.items():
        data = body.encode()
        key = f"{stem}.{fmt.value}"
        storage.put_bytes(
            key,
            data,
            content_type=f"{fmt.content_type}; charset=utf-8",
            metadata={"job-id": job.id},
        )
        out.append(
            Captions(
                url=storage.url(key),
                key=key,
                bytes=len(data),
                sha256=sha256_bytes(data),
                format=fmt,
                content_type=fmt.content_type,
            )
        )
    return out
