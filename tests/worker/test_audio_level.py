"""Pure tests of speech levels: segments of different loudness come out at one level."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worker.audio.level import (
    MAX_GAIN_DB,
    PEAK_CEILING_DB,
    match_level,
    matching_gain_db,
    speech_level_db,
)

RATE = 16_000


def speech(amplitude: float, seconds: float = 2.0, pause_s: float = 0.0) -> np.ndarray:
    """A syllable-like tone (4 Hz envelope) of peak ``amplitude``, with a pause in the middle."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    tone = amplitude * 32767 * envelope * np.sin(2 * np.pi * 200 * t)
    half = len(tone) // 2
    gap = np.zeros(int(pause_s * RATE))
    return np.concatenate((tone[:half], gap, tone[half:])).astype("<i2")


def test_the_level_ignores_pauses() -> None:
    plain = speech_level_db(speech(0.3), RATE)
    paused = speech_level_db(speech(0.3, pause_s=3.0), RATE)
    assert plain is not None and paused is not None
    assert abs(plain - paused) < 0.5


def test_silence_has_no_level_and_is_left_alone(tmp_path: Path) -> None:
    silent = np.zeros(RATE, dtype="<i2")
    assert speech_level_db(silent, RATE) is None
    path = tmp_path / "silent.pcm"
    silent.tofile(path)
    assert match_level(path, RATE, -20.0) == 0.0
    assert not np.fromfile(path, dtype="<i2").any()


def test_a_quiet_and_a_loud_voice_come_out_at_one_level(tmp_path: Path) -> None:
    levels = []
    for amplitude in (0.05, 0.6):
        path = tmp_path / f"{amplitude}.pcm"
        speech(amplitude).tofile(path)
        match_level(path, RATE, -20.0)
        level = speech_level_db(np.fromfile(path, dtype="<i2"), RATE)
        assert level is not None
        levels.append(level)
    assert all(abs(level - -20.0) < 0.2 for level in levels), levels


def test_matching_never_clips_nor_goes_past_its_cap() -> None:
    # Peaks far above the speech level: raising to the target would clip.
    spiky = speech(0.02)
    spiky[100] = 30_000
    gain = matching_gain_db(spiky, RATE, -20.0)
    peak_after = 30_000 * 10 ** (gain / 20) / 32768
    assert 20 * np.log10(peak_after) <= PEAK_CEILING_DB + 1e-9
    whisper = speech(0.0005)
    assert matching_gain_db(whisper, RATE, 0.0) <= MAX_GAIN_DB
