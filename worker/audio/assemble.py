"""Join a job's segment PCM files into one complete output file, in bounded memory.

Each segment is a raw s16le mono file on disk (the checkpoint of one provider
session).  :func:`assemble` streams them block by block:

    segment files ─read─> fade edges ─> resampler ─> sink (wav/pcm by hand, else PyAV)
                                          ▲
                     silence between same-rate segments goes in here

* One ``av.AudioResampler`` is kept across consecutive segments of the same
  rate, silences between them included, so its filter state carries over
  and joins are continuous.  It is flushed only when the input rate changes
  and at the end.
* Segments are synthesised in separate sessions, so a join can jump.  An edge
  gets a 4 ms raised-cosine fade only where it would click: its sample is not
  near zero, and it meets silence (or the start or end), or meets the next
  segment with a step larger than the waveform's own steps there.  Fades
  change no sample counts.
* Head and tail silence, and silence where the rate changes, are written
  as exact zeros at the output rate.

Only a block of samples is in memory at a time, however long the job.

Every decision needs only the segment before and the head of the next one,
so segments can be fed one by one as they are synthesised
(:class:`Pipeline`'s ``start``/``feed``/``finish``); :mod:`worker.audio.stream`
does that on a thread of its own while later segments are still being made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from worker.audio.errors import CorruptAudio, OutputTooLarge
from worker.audio.formats import OutputFormat, format_info, validate_output
from worker.audio.sinks import (
    WAV_MAX_DATA_BYTES,
    FloatBlock,
    Sink,
    open_sink,
    replacing,
    wav_too_large_message,
)
from worker.digest import file_digest

FADE_MS = 4
#: Edge samples closer to zero than this (about -40 dBFS) need no fade.
NEAR_ZERO = 0.01
#: A join is smooth if its step is at most this many times the steps beside it.
JOIN_SLACK = 2.0


@dataclass(frozen=True, slots=True)
class SegmentAudio:
    """One synthesised segment, ready to assemble."""

    path: Path  # raw s16le mono PCM file on disk (the checkpoint of one segment)
    sample_rate: int
    silence_after_ms: int = 0  # e.g. paragraph pause inserted after this segment


@dataclass(frozen=True, slots=True)
class AssembledAudio:
    """The finished output file and what the job record says about it."""

    path: Path
    format: OutputFormat
    sample_rate: int
    duration_s: float  # samples written / sample_rate, encoder delay excluded
    bytes: int
    content_type: str
    sha256: str  # hex digest of the file's bytes


@dataclass(frozen=True, slots=True)
class _Plan:
    """A segment as measured before streaming it.

    ``head`` is its first two samples and ``tail`` its last two, in [-1, 1].
    """

    segment: SegmentAudio
    samples: int
    head: tuple[float, float] = (0.0, 0.0)
    tail: tuple[float, float] = (0.0, 0.0)


def assemble(
    segments: Sequence[SegmentAudio],
    out_path: Path,
    fmt: OutputFormat,
    sample_rate: int,
    *,
    bitrate_kbps: int | None = None,
    head_silence_ms: int = 0,
    tail_silence_ms: int = 0,
    block_samples: int = 32768,
) -> AssembledAudio:
    """Join ``segments`` in order into one ``fmt`` file at ``out_path``.

    ``bitrate_kbps`` defaults to the format's default (lossy formats only).
    Silence is inserted before the first segment, after each segment as it
    asks, and after the last.  Raises :class:`UnsupportedOutput` for a bad
    format, rate or bitrate, :class:`CorruptAudio` for a segment file that is
    missing or not whole s16 samples, :class:`OutputTooLarge` for a WAV over
    4 GiB (checked before writing) and :class:`EncodeError` if the encoder
    fails.  The file is written beside ``out_path`` and renamed into place,
    so ``out_path`` never holds a partial file; on error nothing is left.
    """
    info = format_info(fmt)
    validate_output(info.format, sample_rate, bitrate_kbps)
    if bitrate_kbps is None:
        bitrate_kbps = info.default_bitrate_kbps
    check_lengths(block_samples, head_silence_ms=head_silence_ms, tail_silence_ms=tail_silence_ms)
    plans = plan_segments(segments)
    if info.format is OutputFormat.WAV:
        needed = 2 * _estimate_samples(plans, sample_rate, head_silence_ms, tail_silence_ms)
        if needed > WAV_MAX_DATA_BYTES:
            raise OutputTooLarge(wav_too_large_message(needed))

    with replacing(out_path) as part:
        sink = open_sink(info.format, part, sample_rate, bitrate_kbps)
        try:
            written = Pipeline(sink, sample_rate, block_samples).run(
                plans, head_silence_ms, tail_silence_ms
            )
        except BaseException:
            sink.abort()
            raise
        sink.close()
    digest = file_digest(out_path)
    return AssembledAudio(
        path=out_path,
        format=info.format,
        sample_rate=sample_rate,
        duration_s=written / sample_rate,
        bytes=digest.size,
        content_type=info.content_type,
        sha256=digest.hexdigest(),
    )


def check_lengths(block_samples: int, **silences_ms: int) -> None:
    """``ValueError`` unless ``block_samples`` is positive and no silence is negative."""
    if block_samples < 1:
        raise ValueError(f"block_samples must be positive, not {block_samples}")
    for name, ms in silences_ms.items():
        if ms < 0:
            raise ValueError(f"{name} must not be negative, not {ms}")


def plan_segments(segments: Sequence[SegmentAudio]) -> list[_Plan]:
    """Measure each segment (size and edge samples only); :class:`Pipeline` decides fades."""
    return [measure_segment(seg) for seg in segments]


def _smooth(left: _Plan, right: _Plan) -> bool:
    """Whether the step across a join is no bigger than the signal's own steps there.

    A click is a step far larger than its neighbours; a continuous waveform
    cut in two steps across the cut about as much as on either side of it.
    """
    step = abs(right.head[0] - left.tail[1])
    local = max(abs(left.tail[1] - left.tail[0]), abs(right.head[1] - right.head[0]))
    return step <= NEAR_ZERO + JOIN_SLACK * local


def measure_segment(segment: SegmentAudio) -> _Plan:
    """A segment's size and edge samples, read from its file (which must be complete).

    Raises :class:`CorruptAudio` for a file that is missing or not whole s16 samples.
    """
    if segment.sample_rate <= 0:
        raise ValueError(f"{segment.path}: sample_rate must be positive")
    if segment.silence_after_ms < 0:
        raise ValueError(f"{segment.path}: silence_after_ms must not be negative")
    try:
        size = segment.path.stat().st_size
        if size % 2:
            raise CorruptAudio(f"{segment.path}: {size} bytes is not a whole number of samples")
        if not size:
            return _Plan(segment, 0)
        with segment.path.open("rb") as f:
            head = _samples(f.read(4))
            f.seek(max(0, size - 4))
            tail = _samples(f.read(4))
    except OSError as exc:
        raise CorruptAudio(f"{segment.path}: cannot read segment audio: {exc}") from exc
    return _Plan(segment, size // 2, (head[0], head[-1]), (tail[0], tail[-1]))


def _samples(raw: bytes) -> list[float]:
    return [v / 32768.0 for v in np.frombuffer(raw, dtype="<i2").tolist()]


def _estimate_samples(plans: Sequence[_Plan], rate: int, head_ms: int, tail_ms: int) -> int:
    """An upper bound on the samples the output will hold (for the WAV size check)."""
    total = ms_to_samples(head_ms + tail_ms, rate)
    for plan in plans:
        total += math.ceil(plan.samples * rate / plan.segment.sample_rate) + 64
        total += ms_to_samples(plan.segment.silence_after_ms, rate) + 1
    return total


def ms_to_samples(ms: int, rate: int) -> int:
    """``ms`` milliseconds as a whole number of samples at ``rate``."""
    return round(ms * rate / 1000)


class Pipeline:
    """Segment files in, output samples out, one block at a time, segment by segment.

    :meth:`start`, then :meth:`feed` each segment in order as it becomes
    available, then :meth:`finish`.  A segment's fades are decided here, as
    it arrives: its head against the tail of the segment before it.  Only
    the last few milliseconds of a segment (its fade-out region) wait for the
    next one, because whether they fade depends on that one's first samples;
    a pause owed after a segment waits too, because whether it goes through
    the resampler depends on the next segment's rate.  Everything else is
    written at once, so an encoder behind the sink works while later segments
    are still being synthesised.
    """

    def __init__(self, sink: Sink, rate: int, block: int) -> None:
        self._sink = sink
        self._rate = rate
        self._block = block
        self._written = 0
        self._resampler: _Resampler | None = None
        self._open: _Open | None = None  # a segment whose fade-out region is not written yet
        self._owed_ms = 0  # the pause after the last segment, not written yet

    @property
    def written(self) -> int:
        """Output samples written so far."""
        return self._written

    def run(self, plans: Sequence[_Plan], head_ms: int, tail_ms: int) -> int:
        """Write everything; return the number of output samples."""
        self.start(head_ms)
        for plan in plans:
            self.feed(plan)
        return self.finish(tail_ms)

    def start(self, head_ms: int) -> None:
        """Write the head silence."""
        self._output_silence(ms_to_samples(head_ms, self._rate))

    def feed(self, plan: _Plan) -> None:
        """Write the next segment (measured by :func:`measure_segment`), as far as is known."""
        rate = plan.segment.sample_rate
        fade_in = plan.samples > 0 and abs(plan.head[0]) > NEAR_ZERO
        if self._open is not None:
            if plan.samples:
                if _smooth(self._open.plan, plan):  # a continuous join: neither edge fades
                    self._open.fade_out = fade_in = False
                self._close_open()
            elif plan.segment.silence_after_ms or self._current_rate() != rate:
                self._close_open()
        self._pay_pause(following=rate)
        if self._resampler is None or self._resampler.in_rate != rate:
            self._flush()
            self._resampler = _Resampler(rate, self._rate, self._emit)
        if plan.samples:
            fade = min(max(1, rate * FADE_MS // 1000), plan.samples // 2)
            body = plan.samples - fade
            self._stream(plan, 0, body, _ramp(fade) if fade and fade_in else None, False)
            self._open = _Open(plan, fade, abs(plan.tail[1]) > NEAR_ZERO)
        if plan.segment.silence_after_ms:
            self._close_open()  # a pause follows: the edge meets silence
            self._owed_ms = plan.segment.silence_after_ms

    def finish(self, tail_ms: int) -> int:
        """Write what is left and the tail silence; return the number of output samples."""
        self._close_open()
        self._pay_pause(following=None)
        self._flush()
        self._output_silence(ms_to_samples(tail_ms, self._rate))
        return self._written

    def _current_rate(self) -> int | None:
        return self._resampler.in_rate if self._resampler is not None else None

    def _close_open(self) -> None:
        """Write the open segment's fade-out region, faded if it was decided so."""
        opened, self._open = self._open, None
        if opened is None or not opened.fade:
            return
        ramp = _ramp(opened.fade) if opened.fade_out else None
        n = opened.plan.samples
        self._stream(opened.plan, n - opened.fade, n, ramp, True)

    def _pay_pause(self, following: int | None) -> None:
        """The pause owed after the last segment: through the resampler if the next
        segment has the same rate (so its state runs on), else as exact zeros."""
        ms, self._owed_ms = self._owed_ms, 0
        if not ms:
            return
        if self._resampler is not None and following == self._resampler.in_rate:
            self._resampler_silence(self._resampler, ms_to_samples(ms, following))
        else:
            self._flush()
            self._output_silence(ms_to_samples(ms, self._rate))

    def _stream(
        self, plan: _Plan, start: int, stop: int, ramp: FloatBlock | None, at_end: bool
    ) -> None:
        """Samples ``start``..``stop`` of the segment, with a fade at its start or end."""
        assert self._resampler is not None
        n = plan.samples
        offset = start
        with plan.segment.path.open("rb") as f:
            f.seek(2 * start)
            while offset < stop:
                raw = f.read(min(self._block, stop - offset) * 2)
                if not raw or len(raw) % 2:
                    raise CorruptAudio(f"{plan.segment.path}: file changed while reading")
                block = np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(32768.0)
                if ramp is not None:
                    _apply_fades(block, offset, n, ramp, not at_end, at_end)
                self._resampler.push(block)
                offset += block.size

    def _resampler_silence(self, resampler: _Resampler, samples: int) -> None:
        while samples > 0:
            count = min(samples, self._block)
            resampler.push(np.zeros(count, dtype=np.float32))
            samples -= count

    def _output_silence(self, samples: int) -> None:
        while samples > 0:
            count = min(samples, self._block)
            self._emit(np.zeros(count, dtype=np.float32))
            samples -= count

    def _flush(self) -> None:
        if self._resampler is not None:
            self._resampler.flush()
            self._resampler = None

    def _emit(self, block: FloatBlock) -> None:
        self._sink.write(block)
        self._written += block.size


@dataclass(slots=True)
class _Open:
    """A segment written but for its last ``fade`` samples, whose fade waits for the next."""

    plan: _Plan
    fade: int
    fade_out: bool


class _Resampler:
    """One input rate to the output rate, with state carried across pushes."""

    def __init__(self, in_rate: int, out_rate: int, emit: Callable[[FloatBlock], None]) -> None:
        self.in_rate = in_rate
        self._emit = emit
        self._time_base = Fraction(1, in_rate)
        self._pts = 0
        # Same rate: nothing to do, and PyAV's passthrough would hand back None on flush.
        self._av = (
            None
            if in_rate == out_rate
            else av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        )

    def push(self, block: FloatBlock) -> None:
        if self._av is None:
            self._emit(block)
            return
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += block.size
        self._drain(self._av.resample(frame))

    def flush(self) -> None:
        if self._av is not None:
            self._drain(self._av.resample(None))

    def _drain(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            self._emit(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))


def _ramp(length: int) -> FloatBlock:
    """Raised-cosine gains rising from near 0 to near 1 over ``length`` samples."""
    k = np.arange(length, dtype=np.float64) + 0.5
    return (0.5 - 0.5 * np.cos(np.pi * k / length)).astype(np.float32)


def _apply_fades(
    block: FloatBlock, offset: int, total: int, ramp: FloatBlock, fade_in: bool, fade_out: bool
) -> None:
    """Fade the parts of ``block`` (samples offset.. of a segment of ``total``) at its edges."""
    fade = ramp.size
    end = offset + block.size
    if fade_in and offset < fade:
        stop = min(fade, end)
        block[: stop - offset] *= ramp[offset:stop]
    if fade_out and end > total - fade:
        start = max(total - fade, offset)
        # Sample j of the segment gets ramp[total - 1 - j].
        block[start - offset :] *= ramp[total - end : total - start][::-1]
