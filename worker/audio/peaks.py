"""True peaks: how loud a signal gets *between* its samples, by 4x oversampling.

A player's reconstruction of the waveform can overshoot the samples it is
built from; ACX and lossy encoders care about that overshoot.  The points
1/4, 1/2 and 3/4 of the way between two samples are rebuilt with a
12-tap-per-phase windowed-sinc interpolator (after ITU-R BS.1770's true-peak
meter).  Only points next to a loud sample are evaluated: the loudness
:class:`~worker.audio.loudness.Meter` and the
:class:`~worker.audio.normalize.Limiter` both look within 6 dB of what they
already know to be loud.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from worker.audio.sinks import FloatBlock

#: Inter-sample peaks are looked for only near samples within this of the peak so far.
CANDIDATE_RATIO = 0.5  # −6 dB
#: A point between samples i and i+1 is built from i-5 … i+6: this many before and after.
LEFT, RIGHT = 5, 6
_TAPS = np.arange(-LEFT, RIGHT + 1)


def _interpolator() -> npt.NDArray[np.float32]:
    """Coefficients (12 taps x 3 phases) for the points 1/4, 1/2, 3/4 between two samples."""
    columns = []
    for frac in (0.25, 0.5, 0.75):
        t = _TAPS - frac
        h = np.sinc(t) * np.cos(np.pi * t / 13.0) ** 2  # window reaches zero at ±6.5
        columns.append(h / h.sum())
    return np.array(columns, dtype=np.float32).T


_INTERP = _interpolator()


def inter_sample_peaks(buf: FloatBlock, index: npt.NDArray[np.intp]) -> FloatBlock:
    """Largest |reconstruction| between ``buf[i]`` and ``buf[i+1]`` for each ``i`` in ``index``.

    Each ``i`` must have 5 samples before it and 6 after it (inclusive of i+1) in ``buf``.
    """
    if not index.size:
        return np.zeros(0, dtype=np.float32)
    windows = buf[index[:, None] + _TAPS]
    # einsum, not `@`: a BLAS call would wake OpenBLAS's thread pool for small
    # products, which then competes with FFmpeg's threads for the cores.
    return np.abs(np.einsum("nt,tp->np", windows, _INTERP)).max(axis=1)


def candidates(buf: FloatBlock, threshold: float) -> npt.NDArray[np.intp]:
    """Points between i and i+1 (with room for the taps) next to a sample at ``threshold``."""
    loud = np.abs(buf) >= threshold
    near = loud[:-1] | loud[1:]  # point i lies between samples i and i+1
    index = np.flatnonzero(near)
    return index[(index >= LEFT) & (index < buf.size - RIGHT)]
