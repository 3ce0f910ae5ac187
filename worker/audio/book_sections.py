"""An M4B joined from chapters encoded one by one: a re-render encodes only what changed.

:func:`~worker.audio.book.build_audiobook` encodes a whole book in one pass,
so a book whose one chapter changed is encoded again from the first second to
the last.  Here each chapter is encoded on its own as a *section* — the
silence before it, its audio (through its gain, room tone and the limiter, as
the one-pass build renders it), and the silence after it — and the book is
the sections' AAC packets copied one after another into the MP4, with no
encoder: a section kept from an earlier build is used as it is.

Joining AAC streams encoded apart is exact here because of three rules:

* a section is a whole number of AAC frames (:data:`FRAME` samples), the
  silence after its chapter padded by up to one frame;
* the encoder's first packet (its priming: the frame before the first
  sample) is dropped from every section, so packet *k* of a section decodes
  to its samples ``[(k-1)·FRAME, k·FRAME)`` and the book's timeline is the
  sections' lengths added up, to the sample;
* a join falls in silence at least :data:`GUARD` samples long on both sides
  (:func:`sectionable` says whether the silences allow it), so the frames a
  decoder overlaps across it hold silence (or room tone at −70 dB) on both
  sides and no click can come of it.

So a chapter's marker and audio start where the layout says, as in the
one-pass build; the gap between two chapters is ``chapter_silence_ms`` plus
the previous section's padding (under 24 ms at 44.1 kHz).  MP3 books keep
the one-pass build (an MP3 encoder's delay is not a whole frame).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from worker.audio.assemble import ms_to_samples
from worker.audio.book import AudiobookResult, BookMeta, BookRequest, finish_book
from worker.audio.book_layout import Layout
from worker.audio.book_output import BookFormat, BookRemuxer, BookTags
from worker.audio.book_render import ChapterAudio, Renderer, play_book
from worker.audio.decode import open_audio
from worker.audio.errors import CorruptAudio, EncodeError, InvalidBook
from worker.audio.sinks import AvStreamSink, replacing

#: Samples of one AAC-LC frame: what one packet decodes to.
FRAME = 1024
#: Least silence on each side of a join: the frames a decoder overlaps across it.
GUARD = 2 * FRAME
#: The section file's container: ADTS, AAC packets with nothing around them.
SECTION_SUFFIX = ".aac"


@dataclass(frozen=True, slots=True)
class Section:
    """One chapter encoded on its own; everything the join needs but the file itself."""

    lead: int  # samples of silence before the chapter's audio
    samples: int  # the chapter's own audio
    total: int  # lead + samples + the silence after; a whole number of frames
    gain_db: float = 0.0
    levels: tuple[float, float] | None = None  # its RMS and peak dB before its gain, if normalising

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the sidecar a kept section is stored with)."""
        levels = None
        if self.levels is not None:
            levels = {"rms_db": self.levels[0], "peak_db": self.levels[1]}
        return {
            "lead": self.lead,
            "samples": self.samples,
            "total": self.total,
            "gain_db": self.gain_db,
            "levels": levels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        """Back from :meth:`to_dict`; ``ValueError`` if it does not add up."""
        try:
            lead, samples, total = int(data["lead"]), int(data["samples"]), int(data["total"])
            gain = float(data["gain_db"])
            raw = data["levels"]
            levels = None if raw is None else (float(raw["rms_db"]), float(raw["peak_db"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a section record: {exc}") from exc
        if min(lead, samples) < 0 or total < lead + samples or total % FRAME:
            raise ValueError("not a section record: its lengths do not add up")
        return cls(lead, samples, total, gain, levels)


@dataclass(frozen=True, slots=True)
class SectionedChapter:
    """A chapter of the book being joined: its section file and what the manifest says of it
    (its title is the request's: :attr:`BookRequest.titles`)."""

    path: Path
    section: Section
    chars: int = 0
    file: str | None = None


def sectionable(asked: BookRequest) -> bool:
    """Whether a book can be joined from sections: M4B, with silence enough at each join."""
    head, gap, _ = (ms_to_samples(ms, asked.sample_rate) for ms in asked.silence_ms)
    return asked.format is BookFormat.M4B and head >= GUARD and gap // 2 >= GUARD


def render_section(
    chapter: ChapterAudio,
    index: int,
    count: int,
    asked: BookRequest,
    out_path: Path,
    *,
    block_samples: int = 32768,
) -> Section:
    """Encode chapter ``index`` of ``count`` as its section of the book ``asked`` describes.

    The first section starts with the book's head silence, the last ends with
    its tail; between two chapters the gap is split, half after one and half
    before the next.  Raises :class:`InvalidBook` for a chapter without audio,
    :class:`CorruptAudio` for PCM that is missing or changes meanwhile, and
    :class:`EncodeError`; on error nothing is left at ``out_path``.
    """
    rate = asked.sample_rate
    render = Renderer(rate, block_samples)
    loudness = asked.loudness
    level = render.measure(chapter, with_levels=loudness is not None)
    if not level.samples:
        raise InvalidBook(f"chapter {index + 1} ({asked.titles[index]!r}) has no audio")
    gain = 0.0
    if loudness is not None and level.report is not None:
        gain = render.fit_gain(chapter, level.report, loudness)
    head, gap, tail = (ms_to_samples(ms, rate) for ms in asked.silence_ms)
    lead = head if index == 0 else gap - gap // 2
    trail = tail if index == count - 1 else gap // 2
    trail += -(lead + level.samples + trail) % FRAME
    layout = Layout.of([level.samples], lead, 0, trail)
    with replacing(out_path) as part:
        encoder = _SectionEncoder(part, rate, asked.bitrate_kbps)
        try:
            play_book(render, [chapter], layout, [gain], loudness, encoder)
        except BaseException:
            encoder.abort()
            raise
        encoder.close()
    levels = (level.report.rms_db, level.report.peak_db) if level.report else None
    return Section(lead, level.samples, layout.total, gain, levels)


def join_sections(
    chapters: Sequence[SectionedChapter], asked: BookRequest, meta: BookMeta, out_path: Path
) -> AudiobookResult:
    """Copy the sections' packets into one M4B at ``out_path``, tagged, with markers.

    ``asked`` is the request the sections were rendered for.  With a
    loudness target the finished file is measured, as the one-pass build
    measures it.  Raises :class:`CorruptAudio` if a section file does not
    hold the frames its record says; the file is written beside
    ``out_path`` and renamed into place, and on error nothing is left.
    """
    started = time.monotonic()
    rate = asked.sample_rate
    layout = _layout(chapters, asked)
    with replacing(out_path) as part:
        with open_audio(chapters[0].path) as first:
            markers = layout.markers(asked.titles)
            tags = BookTags(meta.title, meta.author, meta.genre, markers, asked.cover)
            muxer = BookRemuxer(part, first.streams.audio[0], rate, tags)
        try:
            for index, chapter in enumerate(chapters):
                _copy_packets(index, chapter, muxer)
        except BaseException:
            muxer.abort()
            raise
        muxer.close()
    levels = [chapter.section.levels for chapter in chapters]
    gains = [chapter.section.gain_db for chapter in chapters]
    return finish_book(out_path, asked, meta, layout, chapters, levels, gains, started)


def _layout(chapters: Sequence[SectionedChapter], asked: BookRequest) -> Layout:
    """Where every chapter sits: the sections end to end."""
    starts, position = [], 0
    for chapter in chapters:
        starts.append(position + chapter.section.lead)
        position += chapter.section.total
    head, gap, tail = (ms_to_samples(ms, asked.sample_rate) for ms in asked.silence_ms)
    counts = tuple(chapter.section.samples for chapter in chapters)
    return Layout(counts, tuple(starts), head, gap, tail, position)


def _copy_packets(index: int, chapter: SectionedChapter, muxer: BookRemuxer) -> None:
    """Every packet of the section but its first (the priming), checked against its record."""
    frames = chapter.section.total // FRAME
    copied = 0
    name = f"chapter {index + 1}'s section"
    try:
        with open_audio(chapter.path) as container:
            packets = (p for p in container.demux(container.streams.audio[0]) if p.size)
            next(packets, None)
            for packet in packets:
                if copied == frames:
                    break  # the encoder's flush: past the section's last sample
                muxer.mux(packet, FRAME)
                copied += 1
    except av.FFmpegError as exc:
        raise CorruptAudio(f"{name} does not read: {exc}") from exc
    if copied != frames:
        raise CorruptAudio(f"{name} holds {copied} frames, not {frames}")


class _SectionEncoder(AvStreamSink):
    """Float blocks in, AAC-LC in ADTS out, with the book's encoder settings."""

    def __init__(self, path: Path, sample_rate: int, bitrate_kbps: int) -> None:
        self._sample_format = "flt"
        try:
            self._open(path, "adts", {}, "aac", sample_rate, bitrate_kbps)
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot start the section encoder: {exc}") from exc
