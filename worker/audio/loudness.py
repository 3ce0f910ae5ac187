"""Loudness for audiobooks: the target, and measuring a stream or a file against it.

ACX (Audible's audiobook submission rules) asks of every file: RMS between
−23 and −18 dB, peaks at or below −3 dB, a noise floor at or below −60 dB,
and room tone at the head (0.5–1 s) and tail (1–5 s).

What :class:`Meter` and :func:`measure_loudness` measure, on the mono signal,
unweighted (ACX requires no A-weighting and no gating), in dB relative to full
scale where a full-scale square wave reads 0 dB and a full-scale sine −3.01 dB
(as Audacity's ACX Check reads it):

* ``rms_db`` – 10·log10(mean(x²)) over everything measured, pauses and room
  tone included: ACX measures the whole file.
* ``peak_db`` – a true-ish peak: the larger of the sample peak and the
  peaks of a 4x oversampled reconstruction around the loudest samples
  (:mod:`~worker.audio.peaks`, evaluated only within 6 dB of the running
  peak).  Never below ``sample_peak_db``.
* ``sample_peak_db`` – the largest sample.
* ``noise_floor_db`` – the RMS of the quietest 500 ms window (ten 50 ms
  steps), where ACX Check looks for the noise floor.

Digital silence reads :data:`DB_FLOOR` (−120 dB) rather than −∞, so every
figure stays a JSON number.  The :class:`Meter` takes blocks and keeps only a
few milliseconds of state, so memory is flat however long the book.
Bringing audio to the target is :mod:`~worker.audio.normalize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from worker.audio.decode import first_audio_stream, mono_blocks, open_audio
from worker.audio.errors import CorruptAudio
from worker.audio.peaks import CANDIDATE_RATIO, LEFT, RIGHT, candidates, inter_sample_peaks
from worker.audio.sinks import FloatBlock

#: What digital silence (or no audio) reads, in dB, instead of −∞.
DB_FLOOR = -120.0
_FLOOR_STEP_S = 0.05  # noise-floor windows move in 50 ms steps...
_FLOOR_STEPS = 10  # ...and span ten of them (500 ms)


@dataclass(frozen=True, slots=True)
class LoudnessTarget:
    """What a normalised book must measure, and how to get it there (defaults: ACX)."""

    rms_db_min: float = -23.0
    rms_db_max: float = -18.0
    target_rms_db: float = -20.0  # each chapter's RMS is brought here
    peak_db_max: float = -3.0
    noise_floor_db_max: float = -60.0
    # Least room tone at the (head, tail): longer configured silence is kept.
    room_tone_ms: tuple[int, int] = (500, 1000)
    # Level of the noise inserted as room tone (RMS); ACX rejects pure digital silence.
    room_tone_db: float = -70.0
    # The limiter's ceiling sits this far below peak_db_max: lossy encoders overshoot peaks.
    codec_headroom_db: float = 1.0

    def __post_init__(self) -> None:
        if not self.rms_db_min <= self.target_rms_db <= self.rms_db_max:
            raise ValueError("target_rms_db must lie between rms_db_min and rms_db_max")
        if self.peak_db_max > 0 or self.peak_db_max <= self.target_rms_db:
            raise ValueError("peak_db_max must be at most 0 dBFS and above target_rms_db")
        if self.codec_headroom_db < 0:
            raise ValueError("codec_headroom_db must not be negative")
        if self.room_tone_db >= self.noise_floor_db_max:
            raise ValueError("room_tone_db must lie below noise_floor_db_max")
        if len(self.room_tone_ms) != 2 or min(self.room_tone_ms) < 0:
            raise ValueError("room_tone_ms is (head, tail), both at least 0")

    @property
    def ceiling(self) -> float:
        """The limiter's ceiling as a linear amplitude."""
        return float(10 ** ((self.peak_db_max - self.codec_headroom_db) / 20))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "rms_db_min": self.rms_db_min,
            "rms_db_max": self.rms_db_max,
            "target_rms_db": self.target_rms_db,
            "peak_db_max": self.peak_db_max,
            "noise_floor_db_max": self.noise_floor_db_max,
            "room_tone_ms": list(self.room_tone_ms),
            "room_tone_db": self.room_tone_db,
        }


#: Audible's ACX audiobook submission rules.
ACX = LoudnessTarget()


@dataclass(frozen=True, slots=True)
class LoudnessReport:
    """Measured figures of a file or a part of one (see the module docstring)."""

    rms_db: float
    peak_db: float  # true-ish peak, >= sample_peak_db
    noise_floor_db: float
    duration_s: float
    sample_peak_db: float
    sections: tuple[LoudnessReport, ...] = field(default=())  # the spans asked for, in order

    def problems(self, target: LoudnessTarget) -> tuple[str, ...]:
        """What falls outside ``target`` (empty when everything is within it)."""
        found = []
        if not target.rms_db_min <= self.rms_db <= target.rms_db_max:
            found.append(
                f"RMS {self.rms_db:.1f} dB is outside "
                f"{target.rms_db_min:g}..{target.rms_db_max:g} dB"
            )
        if self.peak_db > target.peak_db_max:
            found.append(f"peak {self.peak_db:.1f} dB is above {target.peak_db_max:g} dB")
        if self.noise_floor_db > target.noise_floor_db_max:
            found.append(
                f"noise floor {self.noise_floor_db:.1f} dB is above "
                f"{target.noise_floor_db_max:g} dB"
            )
        return tuple(found)

    def to_dict(self) -> dict[str, float]:
        """JSON-ready figures, rounded to 0.01 dB and 1 ms."""
        return {
            "rms_db": round(self.rms_db, 2),
            "peak_db": round(self.peak_db, 2),
            "sample_peak_db": round(self.sample_peak_db, 2),
            "noise_floor_db": round(self.noise_floor_db, 2),
            "duration_s": round(self.duration_s, 3),
        }


def to_db(amplitude: float) -> float:
    """An amplitude (RMS or peak, full scale 1.0) in dB, never below :data:`DB_FLOOR`."""
    if amplitude <= 0:
        return DB_FLOOR
    return max(DB_FLOOR, 20 * math.log10(amplitude))


class Meter:
    """RMS, peaks and noise floor of a stream of blocks at one rate."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self._sum_squares = 0.0
        self._sample_peak = 0.0
        self._true_peak = 0.0
        # The last samples seen, for the interpolator's left context (silence before the start).
        self._context = np.zeros(LEFT, dtype=np.float32)
        self._step = max(1, round(sample_rate * _FLOOR_STEP_S))
        self._floor_carry = np.zeros(0, dtype=np.float32)
        self._recent_steps = np.zeros(0, dtype=np.float64)  # energies of the last 9 steps
        self._quietest: float | None = None  # least energy of ten consecutive steps
        self._step_energy = 0.0  # all whole steps so far, for streams under 500 ms
        self._steps = 0

    def add(self, block: FloatBlock) -> None:
        """Measure ``block`` (float32 samples in [-1, 1]) as the next part of the stream."""
        if not block.size:
            return
        self._sum_squares += float(np.square(block, dtype=np.float64).sum())
        self.samples += block.size
        self._sample_peak = max(self._sample_peak, float(np.abs(block).max()))
        self._add_peaks(np.concatenate((self._context, block)))
        self._context = np.concatenate((self._context, block))[-(LEFT + RIGHT) :]
        self._add_floor(block)

    def report(self) -> LoudnessReport:
        """The figures of everything added (call it once, at the end of the stream)."""
        # Points near the end see silence after it, as a player would.
        self._add_peaks(np.concatenate((self._context, np.zeros(RIGHT, dtype=np.float32))))
        mean_square = self._sum_squares / self.samples if self.samples else 0.0
        if self._quietest is not None:
            floor = self._quietest / (_FLOOR_STEPS * self._step)
        else:  # shorter than one window: all of it
            energy = self._step_energy + float(np.square(self._floor_carry, dtype=np.float64).sum())
            floor = energy / self.samples if self.samples else 0.0
        return LoudnessReport(
            rms_db=to_db(math.sqrt(mean_square)),
            peak_db=to_db(max(self._true_peak, self._sample_peak)),
            noise_floor_db=to_db(math.sqrt(floor)),
            duration_s=self.samples / self.sample_rate,
            sample_peak_db=to_db(self._sample_peak),
        )

    def _add_peaks(self, buf: FloatBlock) -> None:
        threshold = max(self._sample_peak, self._true_peak) * CANDIDATE_RATIO
        if threshold <= 0:
            return
        peaks = inter_sample_peaks(buf, candidates(buf, threshold))
        if peaks.size:
            self._true_peak = max(self._true_peak, float(peaks.max()))

    def _add_floor(self, block: FloatBlock) -> None:
        data = np.concatenate((self._floor_carry, block)).astype(np.float64)
        whole = data.size // self._step * self._step
        self._floor_carry = data[whole:].astype(np.float32)
        if not whole:
            return
        energies = (data[:whole].reshape(-1, self._step) ** 2).sum(axis=1)
        self._step_energy += float(energies.sum())
        self._steps += energies.size
        steps = np.concatenate((self._recent_steps, energies))
        if steps.size >= _FLOOR_STEPS:
            sums = np.cumsum(np.concatenate(([0.0], steps)))
            windows = sums[_FLOOR_STEPS:] - sums[:-_FLOOR_STEPS]
            least = float(windows.min())
            self._quietest = least if self._quietest is None else min(self._quietest, least)
        self._recent_steps = steps[-(_FLOOR_STEPS - 1) :]


def measure_loudness(
    path: Path | str, *, spans: Sequence[tuple[float, float]] = ()
) -> LoudnessReport:
    """Decode ``path`` whole (any format FFmpeg reads) and measure it.

    ``spans`` are (start_s, end_s) parts of the file to measure as well, e.g.
    each chapter; their reports come back as ``sections`` in the same order.
    Multi-channel audio is mixed to mono first.  Decoded audio past the
    length the container declares (AAC end padding) is not counted.  Raises
    :class:`CorruptAudio` if the file cannot be opened or decoded.
    """
    name = Path(path).name
    with open_audio(path) as container:
        stream = first_audio_stream(container, name)
        rate = stream.codec_context.sample_rate
        meter = Meter(rate)
        bounds = [(round(a * rate), round(b * rate)) for a, b in spans]
        sections = [Meter(rate) for _ in bounds]
        try:
            for block in mono_blocks(container, stream):
                _measure_block(block, meter, sections, bounds)
        except av.FFmpegError as exc:
            raise CorruptAudio(f"{name}: decoding failed: {exc}") from exc
    report = meter.report()
    return LoudnessReport(
        report.rms_db,
        report.peak_db,
        report.noise_floor_db,
        report.duration_s,
        report.sample_peak_db,
        tuple(section.report() for section in sections),
    )


def _measure_block(
    block: FloatBlock, meter: Meter, sections: Sequence[Meter], bounds: Sequence[tuple[int, int]]
) -> None:
    """Add ``block`` to the whole file's meter and to the sections it overlaps."""
    start = meter.samples
    meter.add(block)
    end = start + block.size
    for section, (lo, hi) in zip(sections, bounds, strict=True):
        if lo < end and hi > start:
            section.add(block[max(lo, start) - start : min(hi, end) - start])
