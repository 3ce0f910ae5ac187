"""Loudness for audiobooks: measure it, and normalise and limit a stream of audio.

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
  peaks of a 4x oversampled reconstruction around the loudest samples (a
  12-tap-per-phase windowed-sinc interpolator, after ITU-R BS.1770's true-peak
  meter, evaluated only within 6 dB of the running peak).  Never below
  ``sample_peak_db``.
* ``sample_peak_db`` – the largest sample.
* ``noise_floor_db`` – the RMS of the quietest 500 ms window (ten 50 ms
  steps), where ACX Check looks for the noise floor.

Digital silence reads :data:`DB_FLOOR` (−120 dB) rather than −∞, so every
figure stays a JSON number.

:class:`Limiter` is a look-ahead peak limiter: it delays the stream by 10 ms,
lowers the gain smoothly before any sample (or inter-sample peak) that would
pass its ceiling, holds it for 20 ms and lets it back up; it adds and drops no
samples.  :func:`fit_gain` picks the gain that reaches the target RMS *after*
the limiter has taken its share.  :class:`RoomTone` is the low-level noise that
stands for room tone.  All of them take blocks and keep only a few
milliseconds of state, so memory is flat however long the book.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from worker.audio.errors import CorruptAudio
from worker.audio.sinks import FloatBlock

#: What digital silence (or no audio) reads, in dB, instead of −∞.
DB_FLOOR = -120.0
#: Loudest gain normalisation applies either way, so a near-silent chapter is not blown up.
MAX_GAIN_DB = 40.0
_FLOOR_STEP_S = 0.05  # noise-floor windows move in 50 ms steps...
_FLOOR_STEPS = 10  # ...and span ten of them (500 ms)
# Inter-sample peaks are looked for only near samples within this of the peak so far.
_CANDIDATE_RATIO = 0.5  # −6 dB
_TAPS = np.arange(-5, 7)  # a point between samples i and i+1 is built from i-5 … i+6
_LEFT, _RIGHT = 5, 6


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


def gain_for(rms_db: float, target: LoudnessTarget) -> float:
    """The gain in dB that brings ``rms_db`` to the target, within ±:data:`MAX_GAIN_DB`.

    Silence gets none: there is nothing to bring up.
    """
    if rms_db <= DB_FLOOR:
        return 0.0
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target.target_rms_db - rms_db))


def fit_gain(
    rms_db: float,
    peak_db: float,
    target: LoudnessTarget,
    limited_rms: Callable[[float], float],
    *,
    rounds: int = 2,
) -> float:
    """The gain in dB that brings audio to the target RMS *after* the limiter.

    Starts from :func:`gain_for`.  If that gain would push ``peak_db`` past
    the limiter's ceiling, the limiter will take energy out (a lot, for
    clicks on quiet speech), so ``limited_rms(gain_db)`` – the RMS of the
    audio run through the gain and a :class:`Limiter` – is asked at most
    ``rounds`` times and the gain corrected by what is missing.
    """
    gain = gain_for(rms_db, target)
    ceiling_db = to_db(target.ceiling)
    for _ in range(rounds):
        if peak_db + gain <= ceiling_db:
            break  # the limiter leaves it alone
        missing = target.target_rms_db - limited_rms(gain)
        if abs(missing) < 0.05:
            break
        gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain + missing))
    return gain


def _interpolator() -> npt.NDArray[np.float32]:
    """Coefficients (12 taps x 3 phases) for the points 1/4, 1/2, 3/4 between two samples."""
    columns = []
    for frac in (0.25, 0.5, 0.75):
        t = _TAPS - frac
        h = np.sinc(t) * np.cos(np.pi * t / 13.0) ** 2  # window reaches zero at ±6.5
        columns.append(h / h.sum())
    return np.array(columns, dtype=np.float32).T


_INTERP = _interpolator()


def _inter_sample_peaks(buf: FloatBlock, index: npt.NDArray[np.intp]) -> FloatBlock:
    """Largest |reconstruction| between ``buf[i]`` and ``buf[i+1]`` for each ``i`` in ``index``.

    Each ``i`` must have 5 samples before it and 6 after it (inclusive of i+1) in ``buf``.
    """
    if not index.size:
        return np.zeros(0, dtype=np.float32)
    windows = buf[index[:, None] + _TAPS]
    # einsum, not `@`: a BLAS call would wake OpenBLAS's thread pool for small
    # products, which then competes with FFmpeg's threads for the cores.
    return np.abs(np.einsum("nt,tp->np", windows, _INTERP)).max(axis=1)


def _candidates(buf: FloatBlock, threshold: float) -> npt.NDArray[np.intp]:
    """Points between i and i+1 (with room for the taps) next to a sample at ``threshold``."""
    loud = np.abs(buf) >= threshold
    near = loud[:-1] | loud[1:]  # point i lies between samples i and i+1
    index = np.flatnonzero(near)
    return index[(index >= _LEFT) & (index < buf.size - _RIGHT)]


class Meter:
    """RMS, peaks and noise floor of a stream of blocks at one rate."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self._sum_squares = 0.0
        self._sample_peak = 0.0
        self._true_peak = 0.0
        # The last samples seen, for the interpolator's left context (silence before the start).
        self._context = np.zeros(_LEFT, dtype=np.float32)
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
        self._context = np.concatenate((self._context, block))[-(_LEFT + _RIGHT) :]
        self._add_floor(block)

    def report(self) -> LoudnessReport:
        """The figures of everything added (call it once, at the end of the stream)."""
        # Points near the end see silence after it, as a player would.
        self._add_peaks(np.concatenate((self._context, np.zeros(_RIGHT, dtype=np.float32))))
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
        threshold = max(self._sample_peak, self._true_peak) * _CANDIDATE_RATIO
        if threshold <= 0:
            return
        peaks = _inter_sample_peaks(buf, _candidates(buf, threshold))
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


class Limiter:
    """Look-ahead peak limiter; output is input delayed internally, sample for sample.

    The gain at each sample is at most ``ceiling / peak`` for every peak
    (sample or inter-sample) within the look-ahead and hold around it: a
    minimum over that window, smoothed by two moving averages of ``attack``
    samples.  Because the look-ahead covers both averages, the smoothed gain
    is never above what the peak needs, so no sample leaves above the ceiling.
    """

    def __init__(
        self,
        sample_rate: int,
        ceiling: float,
        emit: Callable[[FloatBlock], None],
        *,
        attack_ms: float = 5.0,
        hold_ms: float = 20.0,
    ) -> None:
        if not 0 < ceiling <= 1:
            raise ValueError("ceiling must be in (0, 1]")
        self._ceiling = ceiling
        self._emit = emit
        self._attack = max(1, round(sample_rate * attack_ms / 1000))
        self._hold = max(0, round(sample_rate * hold_ms / 1000))
        self._ahead = 2 * self._attack  # the two averages reach 2·attack − 2 samples back
        # Input before the output part (already emitted) and after it, plus interpolator taps.
        self._back = self._hold + 2 * self._attack + _LEFT + 2
        self._front = self._ahead + _RIGHT + 2
        self._history = np.zeros(self._back, dtype=np.float32)  # silence before the start
        self._pending: list[FloatBlock] = []
        self._pending_samples = 0
        self.limited_samples = 0  # how many samples got less than unity gain

    def push(self, block: FloatBlock) -> None:
        """Take the next input samples; emits what the look-ahead allows."""
        if not block.size:
            return
        self._pending.append(block)
        self._pending_samples += block.size
        if self._pending_samples >= self._front + 4096:
            self._process(final=False)

    def flush(self) -> None:
        """Emit everything still held (the stream has ended: silence follows)."""
        if self._pending_samples:
            self._process(final=True)

    def _process(self, *, final: bool) -> None:
        pending = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        count = pending.size if final else pending.size - self._front
        future = pending[count:]
        if final:
            future = np.zeros(self._front, dtype=np.float32)
        buf = np.concatenate((self._history, pending[:count], future[: self._front]))
        out = self._limit(buf, count)
        self._emit(out)
        self._history = np.concatenate((self._history, pending[:count]))[-self._back :]
        rest = pending[count:]
        self._pending = [rest] if rest.size else []
        self._pending_samples = rest.size

    def _limit(self, buf: FloatBlock, count: int) -> FloatBlock:
        """The ``count`` samples after the history in ``buf``, limited."""
        start = self._back
        part = buf[start : start + count]
        a = self._attack
        lo = start - 2 * a + 2 - self._hold  # first input position any output gain depends on
        hi = start + count + self._ahead  # one past the last
        envelope = np.abs(buf)
        index = _candidates(buf, self._ceiling * _CANDIDATE_RATIO)
        index = index[(index >= lo - 1) & (index < hi)]
        peaks = _inter_sample_peaks(buf, index)
        # A point between i and i+1 counts against both samples.
        np.maximum.at(envelope, index, peaks)
        np.maximum.at(envelope, index + 1, peaks)
        if float(envelope[lo:hi].max()) <= self._ceiling:
            return part.copy()
        with np.errstate(divide="ignore"):
            need = np.minimum(1.0, self._ceiling / envelope[lo:hi].astype(np.float64))
        held = _sliding_min(need, self._hold + self._ahead + 1)  # count + 2a − 2 values
        gain = _moving_mean(_moving_mean(held, a), a)  # count values
        gain[gain > 1.0 - 1e-9] = 1.0  # unity where the sums' rounding says 0.99999…
        self.limited_samples += int(np.count_nonzero(gain < 1.0))
        out = (part * gain).astype(np.float32)
        # Rounding aside the gain already keeps samples below the ceiling.
        np.clip(out, -self._ceiling, self._ceiling, out=out)
        return out


def _sliding_min(x: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    """Minimum of every ``width`` consecutive values (van Herk/Gil-Werman, O(n))."""
    if width <= 1:
        return x.copy()
    n = x.size
    padded = np.concatenate((x, np.full((-n) % width, np.inf))).reshape(-1, width)
    prefix = np.minimum.accumulate(padded, axis=1).reshape(-1)
    suffix = np.minimum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    m = n - width + 1
    return np.minimum(suffix[:m], prefix[width - 1 : width - 1 + m])


def _moving_mean(x: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    sums = np.cumsum(np.concatenate(([0.0], x)))
    return (sums[width:] - sums[:-width]) / width


class RoomTone:
    """Low-level white noise standing in for room tone; the same seed gives the same noise.

    Gaussian noise at ``level_db`` RMS (peaks about 14 dB higher, still far
    below speech): inaudible under a player's noise, well under ACX's −60 dB
    noise floor, and not the digital silence ACX rejects.
    """

    def __init__(self, level_db: float, seed: int = 0) -> None:
        self._sigma = 10 ** (level_db / 20)
        self._rng = np.random.default_rng(seed)

    def take(self, samples: int) -> FloatBlock:
        """The next ``samples`` samples of noise."""
        return (self._rng.standard_normal(samples) * self._sigma).astype(np.float32)


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
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError) as exc:
        raise CorruptAudio(f"{name}: cannot open as audio: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise CorruptAudio(f"{name}: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        limit = None
        if stream.duration is not None and stream.time_base is not None and rate:
            limit = round(float(stream.duration * stream.time_base) * rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        meter = Meter(rate)
        bounds = [(round(a * rate), round(b * rate)) for a, b in spans]
        sections = [Meter(rate) for _ in bounds]
        batch = _Batch(lambda block: _measure_block(block, meter, sections, bounds, limit))
        try:
            for frame in container.decode(stream):
                batch.add(resampler.resample(frame))
            batch.add(resampler.resample(None))
            batch.flush()
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


class _Batch:
    """Decoded frames (about a thousand samples each) gathered into blocks worth measuring."""

    def __init__(self, emit: Callable[[FloatBlock], None], samples: int = 32768) -> None:
        self._emit = emit
        self._target = samples
        self._blocks: list[FloatBlock] = []
        self._samples = 0

    def add(self, frames: Sequence[av.AudioFrame]) -> None:
        for frame in frames:
            block = np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
            self._blocks.append(block)
            self._samples += block.size
            if self._samples >= self._target:
                self.flush()

    def flush(self) -> None:
        if self._blocks:
            self._emit(np.concatenate(self._blocks))
            self._blocks, self._samples = [], 0


def _measure_block(
    block: FloatBlock,
    meter: Meter,
    sections: Sequence[Meter],
    bounds: Sequence[tuple[int, int]],
    limit: int | None,
) -> None:
    start = meter.samples
    if limit is not None:
        block = block[: max(0, limit - start)]
    meter.add(block)
    end = start + block.size
    for section, (lo, hi) in zip(sections, bounds, strict=True):
        if lo < end and hi > start:
            section.add(block[max(lo, start) - start : min(hi, end) - start])
