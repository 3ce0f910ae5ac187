"""Rendering a book's chapters: their PCM pieces to float blocks at the book's rate.

A chapter is rendered exactly as its own file was assembled (the same fades
at joins, the same resampler carried across segments: :mod:`assemble
<worker.audio.assemble>`'s own pipeline), so it sounds the same in the book.
Each chapter is rendered twice, and a loud one a few times more, because
nothing is kept in memory but a block:

* pass 1, :meth:`Renderer.measure`: count the chapter's output samples (the
  markers must be known before the MP4 header is written) and, when
  normalising, measure it; :meth:`Renderer.fit_gain` runs a chapter loud
  enough in its peaks to be limited through the limiter once or twice more to
  fit its gain;
* pass 2, :func:`play_book`: head, chapters (with their gains) and gaps, and
  tail, through room tone and the limiter, into the encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.audio.assemble import Pipeline, SegmentAudio, plan_segments
from worker.audio.book_layout import Layout
from worker.audio.errors import CorruptAudio
from worker.audio.loudness import LoudnessReport, LoudnessTarget, Meter
from worker.audio.normalize import Limiter, RoomTone, fit_gain
from worker.audio.sinks import FloatBlock, Sink


@dataclass(frozen=True, slots=True)
class ChapterAudio:
    """One chapter's audio: its PCM pieces (segments) in order, raw s16le mono.

    A piece given as a :class:`Path` is at ``sample_rate`` with nothing after
    it; a :class:`SegmentAudio` brings its own rate and pause (as the
    chapter's job assembled it, paragraph pauses included).
    """

    title: str
    pcm: tuple[Path | SegmentAudio, ...]
    sample_rate: int
    chars: int = 0
    file: str | None = None  # the chapter's own output key or name, echoed into the manifest


@dataclass(frozen=True, slots=True)
class Levels:
    """What pass 1 found in a chapter: its length, and its loudness if it was measured."""

    samples: int
    report: LoudnessReport | None


class Renderer:
    """A chapter's PCM pieces to float blocks at the output rate, as :func:`assemble` does."""

    def __init__(self, sample_rate: int, block_samples: int) -> None:
        self.sample_rate = sample_rate
        self.block_samples = block_samples

    def run(self, chapter: ChapterAudio, emit: Callable[[FloatBlock], None]) -> int:
        """Stream the chapter into ``emit``; return the number of samples."""
        segments = [
            piece if isinstance(piece, SegmentAudio) else SegmentAudio(piece, chapter.sample_rate)
            for piece in chapter.pcm
        ]
        return Pipeline(_Tap(emit), self.sample_rate, self.block_samples).run(
            plan_segments(segments), 0, 0
        )

    def measure(self, chapter: ChapterAudio, *, with_levels: bool) -> Levels:
        """Pass 1: count the chapter's output samples and, if asked, measure them."""
        if not with_levels:
            return Levels(self.run(chapter, lambda block: None), None)
        meter = Meter(self.sample_rate)
        samples = self.run(chapter, meter.add)
        return Levels(samples, meter.report())

    def fit_gain(
        self, chapter: ChapterAudio, report: LoudnessReport, target: LoudnessTarget
    ) -> float:
        """The chapter's gain to the target RMS, allowing for what the limiter will take."""

        def limited_rms(gain_db: float) -> float:
            meter = Meter(self.sample_rate)
            limiter = Limiter(self.sample_rate, target.ceiling, meter.add)
            factor = np.float32(10 ** (gain_db / 20))
            self.run(chapter, lambda block: limiter.push(block * factor))
            limiter.flush()
            return meter.report().rms_db

        return fit_gain(report.rms_db, report.peak_db, target, limited_rms)


class _Tap:
    """A :class:`~worker.audio.sinks.Sink` that hands blocks to a function."""

    def __init__(self, emit: Callable[[FloatBlock], None]) -> None:
        self._emit = emit

    def write(self, block: FloatBlock) -> None:
        self._emit(block)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def play_book(
    render: Renderer,
    chapters: Sequence[ChapterAudio],
    layout: Layout,
    gains: Sequence[float],
    loudness: LoudnessTarget | None,
    sink: Sink,
) -> None:
    """Pass 2: head, chapters (with gain) and gaps, tail → limiter → ``sink``.

    Raises :class:`CorruptAudio` if a chapter renders to another length than
    in pass 1 (its files changed while the book was built).
    """
    rate = render.sample_rate
    limiter = Limiter(rate, loudness.ceiling, sink.write) if loudness else None
    push = limiter.push if limiter else sink.write
    tone = RoomTone(loudness.room_tone_db) if loudness else None
    block = render.block_samples

    def silence(samples: int) -> None:
        while samples > 0:
            count = min(samples, block)
            push(tone.take(count) if tone else np.zeros(count, dtype=np.float32))
            samples -= count

    silence(layout.head)
    for index, chapter in enumerate(chapters):
        if index:
            silence(layout.gap)
        if tone is not None:
            # Gain, then room tone under the speech too: one steady noise floor, no digital
            # silence in the chapter's own pauses.
            count = render.run(chapter, _gain_and_tone(gains[index], tone, push))
        else:
            count = render.run(chapter, push)
        if count != layout.counts[index]:
            raise CorruptAudio(
                f"chapter {index + 1}: its audio changed while the book was built "
                f"({layout.counts[index]} samples, then {count})"
            )
    silence(layout.tail)
    if limiter:
        limiter.flush()


def _gain_and_tone(
    gain_db: float, tone: RoomTone, push: Callable[[FloatBlock], None]
) -> Callable[[FloatBlock], None]:
    factor = np.float32(10 ** (gain_db / 20))

    def emit(block: FloatBlock) -> None:
        push(block * factor + tone.take(block.size))

    return emit
