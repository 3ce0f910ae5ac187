"""The speech level of a segment, and bringing a segment to a level (pure but for the file).

A job whose text switches voice (``<voice>`` passages) must not jump in
loudness where the voice changes: two cloned voices easily differ by 6 dB.
Each segment of such a job is brought to the same *speech level* before it is
assembled, so every voice sits at the same loudness.

The speech level is the RMS of the segment's speech, not of its pauses: the
RMS (dB full scale) over the 50 ms windows that are loud enough to be speech —
above :data:`ABSOLUTE_GATE_DB`, and within :data:`RELATIVE_GATE_DB` of the
loudest window (gating in the spirit of ITU-R BS.1770, unweighted).  Measured
that way, a sentence with a long pause reads as loud as one without, and the
level of a segment raised by *g* dB is *g* dB higher, so one pass of matching
lands on the target.

The gain is capped (:data:`MAX_GAIN_DB` either way) so a whisper is not blown
up into noise, and lowered where it would push a sample past
:data:`PEAK_CEILING_DB`: matching never clips.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: The speech level every segment of a job with ``<voice>`` passages is brought to,
#: so the voices sound equally loud: ACX's target RMS.
PASSAGE_LEVEL_DB = -20.0
#: Windows quieter than this are never speech (digital silence, a faint hiss).
ABSOLUTE_GATE_DB = -70.0
#: Windows this far below the loudest one are pauses and breaths, not speech.
RELATIVE_GATE_DB = -30.0
#: The most a segment is raised or lowered.
MAX_GAIN_DB = 15.0
#: No sample of a matched segment goes above this.
PEAK_CEILING_DB = -1.0
_WINDOW_S = 0.05


def speech_level_db(samples: npt.NDArray[np.int16], sample_rate: int) -> float | None:
    """The speech level of 16-bit ``samples``, in dB full scale; None when nothing
    in them is loud enough to be speech."""
    x = samples.astype(np.float64) / 32768.0
    step = max(1, round(sample_rate * _WINDOW_S))
    whole = x.size // step * step
    if not whole:
        return None
    energy = (x[:whole].reshape(-1, step) ** 2).mean(axis=1)
    loud = energy[energy > 10 ** (ABSOLUTE_GATE_DB / 10)]
    if not loud.size:
        return None
    relative = loud.max() * 10 ** (RELATIVE_GATE_DB / 10)
    speech = loud[loud >= relative]
    return 10 * math.log10(float(speech.mean()))


def matching_gain_db(samples: npt.NDArray[np.int16], sample_rate: int, target_db: float) -> float:
    """The gain (dB) that brings ``samples`` to ``target_db`` without clipping; 0 for silence."""
    level = speech_level_db(samples, sample_rate)
    if level is None:
        return 0.0
    gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target_db - level))
    peak = int(np.abs(samples.astype(np.int32)).max())
    if peak:
        headroom = PEAK_CEILING_DB - 20 * math.log10(peak / 32768.0)
        gain = min(gain, headroom)
    return gain


def match_level(path: Path, sample_rate: int, target_db: float) -> float:
    """Bring the 16-bit mono PCM file at ``path`` to ``target_db``, in place; the gain applied.

    A segment is seconds of audio (a few MB at most), so it is read whole.
    """
    samples = np.fromfile(path, dtype="<i2")
    gain = matching_gain_db(samples, sample_rate, target_db)
    if abs(gain) < 0.01:
        return 0.0
    scaled = np.rint(samples.astype(np.float64) * 10 ** (gain / 20))
    np.clip(scaled, -32768, 32767).astype("<i2").tofile(path)
    return gain
