"""Tests of assemble() and probe(): real encoders, real files in tmp_path, no mocks."""

from __future__ import annotations

import hashlib
import os
import resource
import struct
import tracemalloc
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from worker.audio import (
    AssembledAudio,
    CorruptAudio,
    OutputFormat,
    OutputTooLarge,
    SegmentAudio,
    UnsupportedOutput,
    assemble,
    format_info,
    probe,
)

Samples = npt.NDArray[np.float64]


def write_pcm(path: Path, samples: Samples) -> Path:
    """Float samples in [-1, 1] to an s16le segment file."""
    path.write_bytes(np.round(samples * 32767).astype("<i2").tobytes())
    return path


def sine(rate: int, seconds: float, freq: float = 440.0, *, start: float = 0.0) -> Samples:
    """A 0.5-amplitude sine; ``start`` continues one that began ``start`` seconds earlier."""
    t = (np.arange(round(seconds * rate)) + round(start * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def chirp(rate: int, seconds: float, f0: float = 200.0, f1: float = 2000.0) -> Samples:
    t = np.arange(round(seconds * rate)) / rate
    return 0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))


def decode(path: Path) -> tuple[Samples, int]:
    """All samples of a file's first audio stream, as floats, and its rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float64).reshape(-1) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    data = np.concatenate(frames)
    return (data / 32768 if np.abs(data).max() > 2 else data), rate


def rms(x: Samples) -> float:
    return float(np.sqrt(np.mean(x * x)))


def opus_input_rate(path: Path) -> int:
    """The original rate an Ogg Opus file records in its OpusHead (it decodes at 48 kHz)."""
    with av.open(str(path)) as container:
        extradata = container.streams.audio[0].codec_context.extradata
    assert extradata is not None and extradata[:8] == b"OpusHead"
    return int(struct.unpack_from("<I", extradata, 12)[0])


@pytest.fixture
def mixed_segments(tmp_path: Path) -> list[SegmentAudio]:
    """Three segments at different provider rates, with a paragraph pause after the second."""
    seg = tmp_path / "segments"
    seg.mkdir()
    return [
        SegmentAudio(write_pcm(seg / "s0.pcm", chirp(24000, 1.2)), 24000),
        SegmentAudio(write_pcm(seg / "s1.pcm", sine(16000, 0.8, 330)), 16000, 300),
        SegmentAudio(write_pcm(seg / "s2.pcm", chirp(44100, 1.0, 500, 3000)), 44100),
    ]


MIXED_SECONDS = 1.2 + 0.8 + 0.3 + 1.0
RATES = {
    OutputFormat.WAV: (22050, 48000),
    OutputFormat.PCM: (8000, 44100),
    OutputFormat.FLAC: (16000, 44100),
    OutputFormat.MP3: (22050, 44100),
    OutputFormat.OPUS: (12000, 48000),
    OutputFormat.M4A: (16000, 48000),
}
CASES = [(fmt, rate) for fmt, rates in RATES.items() for rate in rates]


@pytest.mark.parametrize(("fmt", "rate"), CASES, ids=[f"{f.value}-{r}" for f, r in CASES])
def test_every_format_decodes_cleanly_with_the_right_rate_and_duration(
    tmp_path: Path, mixed_segments: list[SegmentAudio], fmt: OutputFormat, rate: int
) -> None:
    out = tmp_path / f"out{format_info(fmt).extension}"
    result = assemble(mixed_segments, out, fmt, rate, head_silence_ms=100, tail_silence_ms=150)
    expected = MIXED_SECONDS + 0.1 + 0.15

    assert result == AssembledAudio(
        path=out,
        format=fmt,
        sample_rate=rate,
        duration_s=result.duration_s,
        bytes=out.stat().st_size,
        content_type=format_info(fmt).content_type,
        sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
    )
    assert result.duration_s == pytest.approx(expected, rel=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, "segments"]  # no .part
    info = probe(out, raw_pcm_rate=rate if fmt is OutputFormat.PCM else None)
    assert info.channels == 1
    assert info.duration_s == pytest.approx(expected, rel=0.01)
    if fmt is OutputFormat.OPUS:
        assert (info.format_name, info.codec, info.sample_rate) == ("ogg", "opus", 48000)
        assert opus_input_rate(out) == rate
    else:
        assert info.sample_rate == rate
        codec = {"wav": "pcm_s16le", "pcm": "pcm_s16le", "m4a": "aac"}.get(fmt, fmt.value)
        assert info.codec == codec


def test_lossless_output_is_sample_exact_and_untouched(tmp_path: Path) -> None:
    # Segments at the output rate, quiet edges: no resampling, no fades, so
    # the output is the input bytes with the silences between them.
    a, b = sine(24000, 0.5, 50), sine(24000, 0.25, 40)  # edges within 0.01 of zero
    segments = [
        SegmentAudio(write_pcm(tmp_path / "a.pcm", a), 24000, silence_after_ms=250),
        SegmentAudio(write_pcm(tmp_path / "b.pcm", b), 24000),
    ]
    wav = assemble(segments, tmp_path / "o.wav", OutputFormat.WAV, 24000, head_silence_ms=10)
    flac = assemble(segments, tmp_path / "o.flac", OutputFormat.FLAC, 24000, head_silence_ms=10)
    pcm_a, pcm_b = (tmp_path / "a.pcm").read_bytes(), (tmp_path / "b.pcm").read_bytes()
    expected = bytes(480) + pcm_a + bytes(12000) + pcm_b
    assert wav.path.read_bytes()[44:] == expected
    decoded, _ = decode(flac.path)
    assert np.round(decoded * 32768).astype("<i2").tobytes() == expected


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.FLAC])
def test_silences_are_where_they_belong(tmp_path: Path, fmt: OutputFormat) -> None:
    segments = [
        SegmentAudio(write_pcm(tmp_path / "a.pcm", sine(24000, 1.0)), 24000, 400),
        SegmentAudio(write_pcm(tmp_path / "b.pcm", sine(24000, 1.0, 660)), 24000),
        # Rate change after a pause: silence then goes in at the output rate.
        SegmentAudio(write_pcm(tmp_path / "c.pcm", sine(16000, 0.5, 880)), 16000, 300),
    ]
    segments[1] = SegmentAudio(segments[1].path, 24000, 200)
    out = assemble(
        segments, tmp_path / f"o.{fmt}", fmt, 44100, head_silence_ms=250, tail_silence_ms=350
    )
    x, rate = decode(out.path)
    assert rate == 44100

    def window(start: float, end: float) -> float:
        return rms(x[round(start * rate) : round(end * rate)])

    # Boundaries: 0.25 | 1.25 | 1.65 | 2.65 | 2.85 | 3.35 | 3.65 | 4.0 (end)
    edge = 0.01  # keep clear of fades and resampler ringing
    for start, end in [(0.0, 0.25), (1.25, 1.65), (2.65, 2.85), (3.35, 4.0)]:
        assert window(start + edge, end - edge) < 1e-3, (start, end)
    for start, end in [(0.25, 1.25), (1.65, 2.65), (2.85, 3.35)]:
        assert window(start + edge, end - edge) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert len(x) == pytest.approx(4.0 * rate, abs=4)
    assert window(0.0, 0.25) == 0.0  # head silence is digital zero


@pytest.mark.parametrize(
    ("rate_a", "rate_b", "out_rate"),
    [(24000, 24000, 24000), (24000, 24000, 44100), (16000, 24000, 48000)],
)
def test_continuous_sine_split_in_two_joins_without_a_click(
    tmp_path: Path, rate_a: int, rate_b: int, out_rate: int
) -> None:
    split, freq = 0.5123, 440.0  # a cut mid-wave, far from a zero crossing
    segments = [
        SegmentAudio(write_pcm(tmp_path / "a.pcm", sine(rate_a, split, freq)), rate_a),
        SegmentAudio(write_pcm(tmp_path / "b.pcm", sine(rate_b, 0.5, freq, start=split)), rate_b),
    ]
    out = assemble(segments, tmp_path / "o.wav", OutputFormat.WAV, out_rate)
    x, _ = decode(out.path)
    join = round(split * out_rate)
    natural = 0.5 * 2 * np.pi * freq / out_rate  # the sine's largest step per sample
    around = x[join - 100 : join + 100]
    assert np.abs(np.diff(around)).max() < 1.5 * natural
    if rate_a == rate_b:
        # One resampler carried across the join: the waveform is simply continuous.
        ideal = sine(out_rate, len(x) / out_rate, freq)
        assert np.abs(around - ideal[join - 100 : join + 100]).max() < 2e-3


def test_discontinuous_join_is_faded_not_clicked(tmp_path: Path) -> None:
    freq, rate = 440.0, 24000
    a = sine(rate, 0.5123, freq)
    b = -sine(rate, 0.5, freq, start=0.5123)  # jumps to the opposite side of the wave
    segments = [
        SegmentAudio(write_pcm(tmp_path / "a.pcm", a), rate),
        SegmentAudio(write_pcm(tmp_path / "b.pcm", b), rate),
    ]
    assert abs(a[-1] - b[0]) > 0.5  # a click waiting to happen
    out = assemble(segments, tmp_path / "o.wav", OutputFormat.WAV, rate)
    x, _ = decode(out.path)
    join = len(a)
    assert len(x) == len(a) + len(b)  # fades change no durations
    assert np.abs(np.diff(x[join - 200 : join + 200])).max() < 1.5 * 0.5 * 2 * np.pi * freq / rate
    assert abs(x[join - 1]) < 0.05 and abs(x[join]) < 0.05


def test_edges_next_to_silence_are_faded(tmp_path: Path) -> None:
    # A square-ish segment starting and ending at full level would click against silence.
    seg = write_pcm(tmp_path / "a.pcm", np.full(2400, 0.6))
    out = assemble(
        [SegmentAudio(seg, 24000)],
        tmp_path / "o.wav",
        OutputFormat.WAV,
        24000,
        head_silence_ms=10,
        tail_silence_ms=10,
    )
    x, _ = decode(out.path)
    assert np.abs(np.diff(x)).max() < 0.6 / 20
    assert x[240 + 1200] == pytest.approx(0.6, abs=1e-3)  # the middle is untouched


def test_wav_header_sizes_are_correct(tmp_path: Path, mixed_segments: list[SegmentAudio]) -> None:
    out = assemble(mixed_segments, tmp_path / "o.wav", OutputFormat.WAV, 22050)
    data = out.path.read_bytes()
    riff, riff_size, wave = struct.unpack_from("<4sI4s", data, 0)
    fmt_id, fmt_size, tag, channels, rate, byte_rate, align, bits = struct.unpack_from(
        "<4sIHHIIHH", data, 12
    )
    data_id, data_size = struct.unpack_from("<4sI", data, 36)
    assert (riff, wave, fmt_id, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == len(data) - 8
    assert data_size == len(data) - 44
    header = (fmt_size, tag, channels, rate, byte_rate, align, bits)
    assert header == (16, 1, 1, 22050, 44100, 2, 16)
    assert data_size // 2 == round(out.duration_s * 22050)


def test_wav_over_4_gib_is_refused_before_writing(tmp_path: Path) -> None:
    # A sparse 2.2 GB segment at 8 kHz doubles to 4.4 GB at 16 kHz.
    seg = tmp_path / "big.pcm"
    with seg.open("wb") as f:
        f.truncate(2_200_000_000)
    out = tmp_path / "o.wav"
    with pytest.raises(OutputTooLarge, match="at most 4294967258 bytes") as info:
        assemble([SegmentAudio(seg, 8000)], out, OutputFormat.WAV, 16000)
    assert "flac" in str(info.value)
    assert not out.exists()


def test_m4a_has_its_moov_atom_first(tmp_path: Path, mixed_segments: list[SegmentAudio]) -> None:
    out = assemble(mixed_segments, tmp_path / "o.m4a", OutputFormat.M4A, 44100)
    data, atoms, pos = out.path.read_bytes(), [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        atoms.append(kind)
        pos += size
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    assert atoms[0] == b"ftyp" and data[8:12] == b"M4A "


def test_mp3_is_cbr_at_the_requested_bitrate(
    tmp_path: Path, mixed_segments: list[SegmentAudio]
) -> None:
    out = assemble(mixed_segments, tmp_path / "o.mp3", OutputFormat.MP3, 44100, bitrate_kbps=192)
    with av.open(str(out.path)) as container:
        sizes = {p.size for p in container.demux(audio=0) if p.size}
        assert container.streams.audio[0].bit_rate == 192_000
    # CBR 192 kbps at 44.1 kHz: 1152 * 192000 / 8 / 44100 = 626.9 bytes, +1 with padding.
    assert sizes <= {626, 627}


def test_same_input_gives_the_same_bytes(
    tmp_path: Path, mixed_segments: list[SegmentAudio]
) -> None:
    first = assemble(mixed_segments, tmp_path / "1.opus", OutputFormat.OPUS, 48000)
    second = assemble(mixed_segments, tmp_path / "2.opus", OutputFormat.OPUS, 48000)
    assert first.sha256 == second.sha256


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.M4A, OutputFormat.MP3])
def test_silence_only_output(tmp_path: Path, fmt: OutputFormat) -> None:
    empty = tmp_path / "empty.pcm"
    empty.write_bytes(b"")
    segments = [SegmentAudio(empty, 24000, 500)]
    out = assemble(segments, tmp_path / f"o.{fmt}", fmt, 44100, head_silence_ms=500)
    assert out.duration_s == pytest.approx(1.0)
    assert probe(out.path).duration_s == pytest.approx(1.0, rel=0.01)


def test_bad_segment_files_are_refused_and_leave_no_output(tmp_path: Path) -> None:
    odd = tmp_path / "odd.pcm"
    odd.write_bytes(b"\x00\x01\x02")
    out = tmp_path / "o.mp3"
    with pytest.raises(CorruptAudio, match="whole number of samples"):
        assemble([SegmentAudio(odd, 24000)], out, OutputFormat.MP3, 44100)
    with pytest.raises(CorruptAudio, match="cannot read"):
        assemble([SegmentAudio(tmp_path / "missing.pcm", 24000)], out, OutputFormat.MP3, 44100)
    assert not out.exists()


def test_bad_output_choices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOutput, match="sample_rate"):
        assemble([], tmp_path / "o.opus", OutputFormat.OPUS, 44100)
    with pytest.raises(UnsupportedOutput, match="bitrate_kbps"):
        assemble([], tmp_path / "o.mp3", OutputFormat.MP3, 44100, bitrate_kbps=100)


def test_ten_minutes_of_segments_assemble_in_flat_memory(tmp_path: Path) -> None:
    rate, seconds, count = 8000, 10.0, 60  # 60 segments, 10 minutes in all
    tone = sine(rate, seconds, 300)
    segments = [
        SegmentAudio(write_pcm(tmp_path / f"s{i:02}.pcm", tone), rate, 200 if i % 5 == 4 else 0)
        for i in range(count)
    ]
    whole_audio_bytes = count * seconds * rate * 4  # float32: what holding it all would cost
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        out = assemble(segments, tmp_path / "book.flac", OutputFormat.FLAC, rate)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert out.duration_s == pytest.approx(count * seconds + 12 * 0.2, rel=1e-6)
    assert peak < whole_audio_bytes / 4  # Python-side allocations: a few blocks, not the audio
    assert rss_growth < 50 * 2**20
    assert probe(out.path).duration_s == pytest.approx(out.duration_s, rel=1e-6)


def test_probe_reports_damage(tmp_path: Path, mixed_segments: list[SegmentAudio]) -> None:
    flac = assemble(mixed_segments, tmp_path / "o.flac", OutputFormat.FLAC, 44100).path
    data = bytearray(flac.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 400, 7):
        data[i] ^= 0x5A
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CorruptAudio, match=r"damaged\.flac"):
        probe(damaged)

    for fmt in (OutputFormat.MP3, OutputFormat.OPUS):
        path = assemble(mixed_segments, tmp_path / f"o.{fmt}", fmt, 48000).path
        whole = path.read_bytes()
        cut = tmp_path / f"cut.{fmt}"
        cut.write_bytes(whole[: len(whole) * 2 // 3])
        with pytest.raises(CorruptAudio, match="truncated"):
            probe(cut)

    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(CorruptAudio):
        probe(text)


def test_probe_counts_a_placeholder_wav_as_broken(tmp_path: Path) -> None:
    # What a provider streams is not a finished file: its sizes are placeholders.
    header = b"RIFF" + struct.pack("<I", 0xFFFFFF24) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 24000, 48000, 2, 16)
    header += b"data" + struct.pack("<I", 0xFFFFFF00)
    path = tmp_path / "stream.wav"
    path.write_bytes(header + bytes(48000))
    with pytest.raises(CorruptAudio, match="placeholder sizes"):
        probe(path)


def test_block_size_does_not_change_the_output(
    tmp_path: Path, mixed_segments: list[SegmentAudio]
) -> None:
    small = assemble(mixed_segments, tmp_path / "a.wav", OutputFormat.WAV, 48000, block_samples=333)
    large = assemble(mixed_segments, tmp_path / "b.wav", OutputFormat.WAV, 48000)
    assert small.sha256 == large.sha256
    assert os.path.getsize(small.path) == os.path.getsize(large.path)
