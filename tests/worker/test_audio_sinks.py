"""Encoder options: bit-exact always, LAME's fast mode where the bit budget allows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worker.audio import OutputFormat, probe
from worker.audio.sinks import MP3_FAST_QUALITY, codec_options, open_sink

FAST = {"flags": "+bitexact", "compression_level": str(MP3_FAST_QUALITY)}


@pytest.mark.parametrize(
    ("rate", "kbps"), [(44100, 128), (48000, 128), (44100, 320), (24000, 64), (16000, 64)]
)
def test_mp3_with_bits_to_spare_runs_lame_fast(rate: int, kbps: int) -> None:
    assert codec_options("libmp3lame", rate, kbps) == FAST


@pytest.mark.parametrize(("rate", "kbps"), [(44100, 64), (48000, 64), (32000, 64)])
def test_mp3_short_of_bits_keeps_lame_default(rate: int, kbps: int) -> None:
    assert codec_options("libmp3lame", rate, kbps) == {"flags": "+bitexact"}


@pytest.mark.parametrize("codec", ["aac", "libopus", "flac"])
def test_other_encoders_are_only_bit_exact(codec: str) -> None:
    assert codec_options(codec, 44100, 320) == {"flags": "+bitexact"}


@pytest.mark.parametrize("kbps", [64, 128])
def test_mp3_is_the_same_bytes_each_time(tmp_path: Path, kbps: int) -> None:
    rate = 44100
    t = np.arange(rate * 2) / rate
    block = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    files = []
    for name in ("a.mp3", "b.mp3"):
        path = tmp_path / name
        sink = open_sink(OutputFormat.MP3, path, rate, kbps)
        for start in range(0, block.size, 32768):
            sink.write(block[start : start + 32768])
        sink.close()
        files.append(path)
    assert files[0].read_bytes() == files[1].read_bytes()
    assert probe(files[0]).duration_s == pytest.approx(2.0, abs=0.03)
