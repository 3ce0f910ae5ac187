"""Bringing audio to a loudness target: the gain, the peak limiter, and room tone.

Chapters are normalised one gain each: :func:`fit_gain` picks the gain that
reaches the target RMS *after* the limiter has taken its share (a chapter
with loud clicks loses energy to it).  :class:`Limiter` is a look-ahead peak
limiter: it delays the stream by 10 ms, lowers the gain smoothly before any
sample (or inter-sample peak, :mod:`~worker.audio.peaks`) that would pass its
ceiling, holds it for 20 ms and lets it back up; it adds and drops no
samples.  :class:`RoomTone` is the low-level noise that stands for room tone.
All of them take blocks and keep only a few milliseconds of state, so memory
is flat however long the book.  The figures they aim at are a
:class:`~worker.audio.loudness.LoudnessTarget`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from worker.audio.loudness import DB_FLOOR, LoudnessTarget, to_db
from worker.audio.peaks import CANDIDATE_RATIO, LEFT, RIGHT, candidates, inter_sample_peaks
from worker.audio.sinks import FloatBlock

#: Loudest gain normalisation applies either way, so a near-silent chapter is not blown up.
MAX_GAIN_DB = 40.0


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
        self._back = self._hold + 2 * self._attack + LEFT + 2
        self._front = self._ahead + RIGHT + 2
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
        index = candidates(buf, self._ceiling * CANDIDATE_RATIO)
        index = index[(index >= lo - 1) & (index < hi)]
        peaks = inter_sample_peaks(buf, index)
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
