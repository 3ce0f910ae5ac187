"""StreamingAssembly: the same output as assemble(), encoded while segments still arrive."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.worker.test_audio_assemble import chirp, decode, sine, write_pcm
from worker.audio import (
    AssemblyAborted,
    CorruptAudio,
    OutputFormat,
    SegmentAudio,
    StreamingAssembly,
    assemble,
    probe,
)


@pytest.fixture
def segments(tmp_path: Path) -> list[SegmentAudio]:
    """Six segments: continuous joins, a jump, a pause, an empty one, a rate change."""
    folder = tmp_path / "segments"
    folder.mkdir()
    rate = 24000
    parts = [
        SegmentAudio(write_pcm(folder / "0.pcm", sine(rate, 0.5)), rate),
        SegmentAudio(write_pcm(folder / "1.pcm", sine(rate, 0.4, start=0.5)), rate),
        SegmentAudio(write_pcm(folder / "2.pcm", chirp(rate, 0.6)), rate, 250),
        SegmentAudio(write_pcm(folder / "3.pcm", np.zeros(0)), rate),
        SegmentAudio(write_pcm(folder / "4.pcm", sine(rate, 0.3, 660)), rate, 120),
        SegmentAudio(write_pcm(folder / "5.pcm", chirp(16000, 0.5, 300, 900)), 16000),
    ]
    return parts


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.FLAC, OutputFormat.MP3])
def test_out_of_order_arrival_gives_the_same_file_as_assemble(
    tmp_path: Path, segments: list[SegmentAudio], fmt: OutputFormat
) -> None:
    whole = assemble(
        segments,
        tmp_path / f"whole.{fmt.value}",
        fmt,
        22050,
        head_silence_ms=40,
        tail_silence_ms=60,
    )
    streamed = StreamingAssembly(
        len(segments),
        tmp_path / f"streamed.{fmt.value}",
        fmt,
        22050,
        head_silence_ms=40,
        tail_silence_ms=60,
        block_samples=1000,
    )
    for index in (4, 1, 0, 5, 3, 2):
        streamed.add(index, segments[index])
    result = streamed.finish(timeout=30)
    assert result.sha256 == whole.sha256
    assert result.duration_s == whole.duration_s
    assert probe(result.path).duration_s == pytest.approx(whole.duration_s, rel=0.01)


def test_segments_are_encoded_before_the_last_one_arrives(
    tmp_path: Path, segments: list[SegmentAudio]
) -> None:
    encoded: list[int] = []
    assembly = StreamingAssembly(
        len(segments), tmp_path / "o.mp3", OutputFormat.MP3, 22050, on_encoded=encoded.append
    )
    for index in range(len(segments) - 1):
        assembly.add(index, segments[index])
    # Everything before the last segment is written while it is still "being synthesised".
    _wait_for(lambda: assembly.encoded == len(segments) - 1)
    assert not (tmp_path / "o.mp3").exists()  # not finished: only the part file
    assert (tmp_path / "o.mp3.part").exists()
    assembly.add(len(segments) - 1, segments[-1])
    result = assembly.finish(timeout=30)
    assert encoded == list(range(1, len(segments) + 1))
    samples, rate = decode(result.path)
    assert rate == 22050
    assert len(samples) / rate == pytest.approx(result.duration_s, rel=0.01)


def test_abort_stops_the_thread_and_leaves_nothing(
    tmp_path: Path, segments: list[SegmentAudio]
) -> None:
    assembly = StreamingAssembly(len(segments), tmp_path / "o.wav", OutputFormat.WAV, 24000)
    assembly.add(0, segments[0])
    _wait_for(lambda: assembly.encoded == 1)
    assembly.abort()
    assert not list(tmp_path.glob("o.wav*"))
    with pytest.raises(AssemblyAborted):
        assembly.finish(timeout=5)


def test_a_corrupt_segment_is_raised_by_finish(
    tmp_path: Path, segments: list[SegmentAudio]
) -> None:
    bad = tmp_path / "bad.pcm"
    bad.write_bytes(b"\x01\x02\x03")  # not whole samples
    assembly = StreamingAssembly(2, tmp_path / "o.flac", OutputFormat.FLAC, 24000)
    assembly.add(1, segments[1])
    assembly.add(0, SegmentAudio(bad, 24000))
    with pytest.raises(CorruptAudio, match="whole number of samples"):
        assembly.finish(timeout=30)
    assert not list(tmp_path.glob("o.flac*"))


def test_missing_and_repeated_segments_are_refused(
    tmp_path: Path, segments: list[SegmentAudio]
) -> None:
    assembly = StreamingAssembly(3, tmp_path / "o.wav", OutputFormat.WAV, 24000)
    assembly.add(0, segments[0])
    with pytest.raises(ValueError, match="added already"):
        assembly.add(0, segments[0])
    with pytest.raises(ValueError, match="not one of"):
        assembly.add(3, segments[3])
    with pytest.raises(ValueError, match=r"\[1, 2\] were never added"):
        assembly.finish(timeout=5)
    assembly.abort()
