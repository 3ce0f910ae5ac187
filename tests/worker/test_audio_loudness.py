"""Tests of the loudness meter, limiter and room tone: pure numpy, plus real files to measure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from worker.audio import ACX, LoudnessTarget, OutputFormat, SegmentAudio, assemble
from worker.audio.loudness import DB_FLOOR, Meter, measure_loudness, to_db
from worker.audio.normalize import MAX_GAIN_DB, Limiter, RoomTone, fit_gain, gain_for

Floats = npt.NDArray[np.float32]
RATE = 22050


def tone(seconds: float, amplitude: float, freq: float = 440.0, rate: int = RATE) -> Floats:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def meter_of(x: Floats, block: int = 4096, rate: int = RATE) -> Meter:
    meter = Meter(rate)
    for i in range(0, x.size, block):
        meter.add(x[i : i + block])
    return meter


def limit(x: Floats, ceiling: float, block: int, rate: int = RATE) -> Floats:
    out: list[Floats] = []
    limiter = Limiter(rate, ceiling, out.append)
    for i in range(0, x.size, block):
        limiter.push(x[i : i + block])
    limiter.flush()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def test_full_scale_sine_reads_minus_3_rms_and_0_peak() -> None:
    report = meter_of(tone(2.0, 1.0, 1000.0)).report()
    assert report.rms_db == pytest.approx(-3.01, abs=0.01)  # square wave = 0 dB, as ACX Check
    assert report.sample_peak_db == pytest.approx(0.0, abs=0.01)
    assert report.peak_db == pytest.approx(0.0, abs=0.05)
    assert report.noise_floor_db == pytest.approx(-3.01, abs=0.01)
    assert report.duration_s == pytest.approx(2.0)


def test_true_peak_finds_peaks_between_samples() -> None:
    # A sine at a quarter of the rate, 45° off: every sample sits at 0.707 of the real peak.
    n = np.arange(48000)
    x = np.sin(np.pi / 2 * n + np.pi / 4).astype(np.float32)
    report = meter_of(x, rate=48000).report()
    assert report.sample_peak_db == pytest.approx(-3.01, abs=0.01)
    assert report.peak_db == pytest.approx(0.0, abs=0.2)


def test_noise_floor_is_the_quietest_half_second() -> None:
    quiet = (RoomTone(-65.0, seed=3).take(RATE)).astype(np.float32)
    x = np.concatenate((tone(1.0, 0.5), quiet, tone(1.0, 0.5)))
    report = meter_of(x, block=1000).report()
    assert report.noise_floor_db == pytest.approx(-65.0, abs=0.3)
    assert report.rms_db == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)) - 1.76, abs=0.05)


def test_silence_and_nothing_read_the_floor() -> None:
    assert Meter(RATE).report().rms_db == DB_FLOOR
    report = meter_of(np.zeros(RATE, dtype=np.float32)).report()
    assert (report.rms_db, report.peak_db, report.noise_floor_db) == (DB_FLOOR,) * 3
    short = meter_of(tone(0.1, 0.1)).report()  # under one noise-floor window: all of it
    assert short.noise_floor_db == pytest.approx(short.rms_db, abs=0.2)
    assert to_db(0.0) == DB_FLOOR and to_db(1.0) == 0.0


def test_block_size_does_not_change_the_figures() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(RATE) * 0.1).astype(np.float32)
    x[1000] = 0.9
    reports = [meter_of(x, block=b).report() for b in (3, 7, 1103, 100_000)]
    for report in reports[1:]:
        assert report.rms_db == pytest.approx(reports[0].rms_db, abs=1e-6)
        assert report.peak_db == pytest.approx(reports[0].peak_db, abs=1e-6)
        assert report.noise_floor_db == pytest.approx(reports[0].noise_floor_db, abs=1e-6)


@pytest.mark.parametrize("block", [1, 333, 4096, 50_000])
def test_limiter_keeps_length_and_ceiling(block: int) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(2 * RATE) * 0.08).astype(np.float32)
    x[::3001] = 1.8  # clicks far above full scale, every 136 ms
    ceiling = 10 ** (-4 / 20)
    y = limit(x, ceiling, block)
    assert y.size == x.size  # no samples added or dropped, whatever the blocks
    report = meter_of(y).report()
    assert report.sample_peak_db <= -4.0 + 1e-4
    assert report.peak_db <= -3.9  # inter-sample peaks are limited too
    # Only around the peaks does the gain drop: most of the signal is untouched.
    assert np.mean(np.isclose(y, x)) > 0.5


def test_limiter_output_does_not_depend_on_block_size() -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(RATE) * 0.4).astype(np.float32)
    reference = limit(x, 0.5, 32768)
    for block in (1, 129, 5000):
        np.testing.assert_allclose(limit(x, 0.5, block), reference, atol=1e-6)


def test_limiter_leaves_quiet_audio_bit_exact() -> None:
    x = tone(3.0, 0.3)
    assert np.array_equal(limit(x, 0.5, 1000), x)


def test_limiter_gain_is_smooth() -> None:
    # One loud burst: the gain ramps down before it and back after, no jumps.
    x = np.full(RATE, 0.2, dtype=np.float32)
    x[RATE // 2 : RATE // 2 + 200] = 1.0
    gain = limit(x, 0.5, 4096) / x
    # The step's reconstruction overshoots 1.0, and the true-peak limiter allows for it.
    assert 0.4 < gain.min() <= 0.5
    assert np.abs(np.diff(gain)).max() < 0.02  # ~5 ms ramps, not a step
    assert gain[RATE // 2 - 1] < 0.6  # already down before the burst (look-ahead)


def test_room_tone_level_and_repeatability() -> None:
    noise = RoomTone(-70.0, seed=7).take(5 * RATE)
    assert to_db(float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))) == pytest.approx(
        -70.0, abs=0.1
    )
    assert np.array_equal(noise, RoomTone(-70.0, seed=7).take(5 * RATE))
    assert np.count_nonzero(noise) == noise.size  # never digital silence


def test_gain_for_target_is_bounded() -> None:
    assert gain_for(-30.0, ACX) == pytest.approx(10.0)
    assert gain_for(-10.0, ACX) == pytest.approx(-10.0)
    assert gain_for(-100.0, ACX) == MAX_GAIN_DB
    assert gain_for(DB_FLOOR, ACX) == 0.0


def test_target_validation_and_problems() -> None:
    with pytest.raises(ValueError):
        LoudnessTarget(target_rms_db=-30.0)
    with pytest.raises(ValueError):
        LoudnessTarget(room_tone_db=-50.0)
    with pytest.raises(ValueError):
        LoudnessTarget(peak_db_max=1.0)
    assert ACX.ceiling == pytest.approx(10 ** (-4 / 20))
    report = meter_of(tone(2.0, 1.0)).report()
    problems = report.problems(ACX)
    assert len(problems) == 3 and "RMS" in problems[0] and "peak" in problems[1]


def test_measure_loudness_of_files_and_spans(tmp_path: Path) -> None:
    x = np.concatenate((tone(1.0, 0.1), np.zeros(RATE, dtype=np.float32), tone(1.0, 0.4)))
    pcm = tmp_path / "x.pcm"
    pcm.write_bytes(np.round(x * 32767).astype("<i2").tobytes())
    wav = assemble([SegmentAudio(pcm, RATE)], tmp_path / "x.wav", OutputFormat.WAV, RATE)
    report = measure_loudness(wav.path, spans=[(0.0, 1.0), (2.0, 3.0)])
    written = np.frombuffer(wav.path.read_bytes()[44:], dtype="<i2")
    expected = meter_of(written.astype(np.float32) / 32768).report()
    assert report.rms_db == pytest.approx(expected.rms_db, abs=1e-3)
    assert report.duration_s == pytest.approx(3.0)
    first, last = report.sections
    assert first.rms_db == pytest.approx(20 * math.log10(0.1 / math.sqrt(2)), abs=0.01)
    # (assemble fades the file's last 4 ms)
    assert last.rms_db == pytest.approx(20 * math.log10(0.4 / math.sqrt(2)), abs=0.03)
    assert report.noise_floor_db == DB_FLOOR
    # A lossy file measures the same within the codec's error.
    m4a = assemble([SegmentAudio(pcm, RATE)], tmp_path / "x.m4a", OutputFormat.M4A, RATE)
    lossy = measure_loudness(m4a.path)
    assert lossy.duration_s == pytest.approx(3.0, abs=0.001)
    assert lossy.rms_db == pytest.approx(report.rms_db, abs=0.1)


def test_fit_gain_makes_up_what_the_limiter_takes() -> None:
    # Quiet speech-like tone with loud clicks: the plain gain would limit the clicks
    # and the time around them, leaving the RMS short of the target.
    x = tone(5.0, 0.02, 180.0)
    x[::4000] = 0.99
    before = meter_of(x).report()
    calls: list[float] = []

    def limited_rms(gain_db: float) -> float:
        calls.append(gain_db)
        scaled = (x * np.float32(10 ** (gain_db / 20))).astype(np.float32)
        return meter_of(limit(scaled, ACX.ceiling, 32768)).report().rms_db

    plain = gain_for(before.rms_db, ACX)
    assert limited_rms(plain) < ACX.target_rms_db - 0.5
    gain = fit_gain(before.rms_db, before.peak_db, ACX, limited_rms)
    assert gain > plain
    assert limited_rms(gain) == pytest.approx(ACX.target_rms_db, abs=0.2)
    assert len(calls) <= 2 + 2  # two rounds at most, plus the two asked here
    # Audio the limiter will not touch is never simulated.
    calls.clear()
    assert fit_gain(-30.0, -20.0, ACX, limited_rms) == pytest.approx(10.0)
    assert calls == []
