"""Tests of build_audiobook(): real encoders, files read back with PyAV, mutagen and probe()."""

from __future__ import annotations

import fractions
import hashlib
import json
import math
import resource
import tracemalloc
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from worker.audio import (
    ACX,
    AudiobookResult,
    BookMeta,
    ChapterAudio,
    CorruptAudio,
    InvalidBook,
    OutputFormat,
    SegmentAudio,
    UnsupportedOutput,
    assemble,
    build_audiobook,
    chapter_from_file,
    measure_loudness,
    probe,
)

Samples = npt.NDArray[np.float64]
#: Markers and offsets must agree with the audio within this (the issue's bound).
TOLERANCE_S = 0.05


def speech(rate: int, seconds: float, rms_db: float, seed: int, *, clicks: int = 0) -> Samples:
    """Speech-like audio: a wandering voice (harmonics of 90–200 Hz under a
    syllable envelope) in words and pauses of digital silence, at ``rms_db``
    overall.  It starts and ends voiced, so where it starts can be heard.
    ``clicks`` adds that many full-scale one-sample spikes (a loud crest).
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 140 + 50 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    top = min(4000.0, rate * 0.45)
    voice = sum(np.sin(k * phase) / k for k in range(1, int(top // 200) + 1))
    syllables = 0.35 + 0.65 * np.sin(np.pi * rng.uniform(3.5, 5.0) * t) ** 2
    gate = np.ones(n)
    position = rng.uniform(0.8, 1.5)  # first pause after the first word
    while position < seconds - 0.8:
        pause = rng.uniform(0.2, 0.6)
        gate[round(position * rate) : round((position + pause) * rate)] = 0.0
        position += pause + rng.uniform(0.8, 2.0)
    x = voice * syllables * gate
    x *= 10 ** (rms_db / 20) / np.sqrt(np.mean(x * x))
    for where in rng.integers(rate // 10, n - rate // 10, clicks):
        x[where] = 0.999
    return np.clip(x, -1.0, 1.0)


def write_pcm(path: Path, samples: Samples) -> Path:
    path.write_bytes(np.round(samples * 32767).astype("<i2").tobytes())
    return path


def image(codec: str, pix_fmt: str) -> bytes:
    """A small real image, encoded by FFmpeg."""
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[..., 0] = 180
    pixels[8:40, 8:56, 1] = 255
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = 64, 48, pix_fmt
    context.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])


JPEG = image("mjpeg", "yuvj420p")
PNG = image("png", "rgb24")


@pytest.fixture(scope="module")
def chapters(tmp_path_factory: pytest.TempPathFactory) -> list[ChapterAudio]:
    """Three chapters at different rates and levels; the first in two segments with a pause."""
    d = tmp_path_factory.mktemp("chapters")
    a0 = write_pcm(d / "c0s0.pcm", speech(22050, 2.0, -32, 1))
    a1 = write_pcm(d / "c0s1.pcm", speech(22050, 2.5, -30, 2))
    b = write_pcm(d / "c1.pcm", speech(24000, 4.0, -14, 3, clicks=6))
    c = write_pcm(d / "c2.pcm", speech(44100, 3.0, -24, 4))
    return [
        ChapterAudio("Opening", (SegmentAudio(a0, 22050, 300), a1), 22050, 1200, "c/0.m4a"),
        ChapterAudio("The Middle — ünïcödé", (b,), 24000, 2400, "c/1.m4a"),
        ChapterAudio("The End", (c,), 44100, 1800, "c/2.m4a"),
    ]


#: Each fixture chapter's own audio, in seconds (the first includes its 300 ms pause).
AUDIO_S = (4.8, 4.0, 3.0)


def decode(path: Path) -> tuple[Samples, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.sample_rate)
        blocks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        return np.concatenate(blocks).astype(np.float64), stream.sample_rate


def level_db(x: Samples) -> float:
    return 10 * math.log10(max(float(np.mean(x * x)), 1e-20))


def check_timeline(result: AudiobookResult, silence_ms: tuple[int, int, int]) -> None:
    """The manifest's own arithmetic: starts, ends and the total."""
    head, gap, tail = (ms / 1000 for ms in silence_ms)
    chapters = result.chapters
    position = head
    for index, chapter in enumerate(chapters):
        assert chapter.index == index
        assert chapter.audio_start_s == pytest.approx(position, abs=1e-4)
        assert chapter.start_s == (0.0 if index == 0 else chapter.audio_start_s)
        assert chapter.end_s == pytest.approx(
            chapters[index + 1].start_s if index + 1 < len(chapters) else result.duration_s
        )
        position += chapter.duration_s + gap
    total = head + sum(c.duration_s for c in chapters) + gap * (len(chapters) - 1) + tail
    assert result.duration_s == pytest.approx(total, abs=1e-4)


def check_audio_starts(path: Path, result: AudiobookResult) -> None:
    """Each chapter's speech begins where the manifest says (silence before, voice after)."""
    x, rate = decode(path)
    for chapter in result.chapters:
        start = round(chapter.audio_start_s * rate)
        before = x[max(0, start - round(0.25 * rate)) : start - round(TOLERANCE_S * rate)]
        after = x[start + round(TOLERANCE_S * rate) : start + round(0.2 * rate)]
        assert level_db(before) < -55, chapter.title
        assert level_db(after) > -45, chapter.title


def test_m4b_chapters_metadata_cover_and_timing(
    chapters: list[ChapterAudio], tmp_path: Path
) -> None:
    meta = BookMeta("A Book of Tests", "Ada Author", JPEG, "image/jpeg")
    out = tmp_path / "book.m4b"
    result = build_audiobook(chapters, out, "m4b", meta, sample_rate=44100)

    assert result.path == out and out.exists() and not list(tmp_path.glob("*.part"))
    assert (result.format, result.content_type) == ("m4b", "audio/mp4")
    assert result.bytes == out.stat().st_size
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.loudness is None
    for chapter, seconds in zip(result.chapters, AUDIO_S, strict=True):
        assert chapter.duration_s == pytest.approx(seconds, abs=0.002)
    check_timeline(result, (500, 1000, 1000))

    info = probe(out)  # decodes cleanly, AAC, duration as built
    assert info.codec == "aac" and info.sample_rate == 44100 and info.channels == 1
    assert info.duration_s == pytest.approx(result.duration_s, abs=TOLERANCE_S)

    with av.open(str(out)) as container:
        read = container.chapters()
        tags = container.metadata
        pictures = [
            s for s in container.streams.video if s.disposition & s.disposition.attached_pic
        ]
        cover = bytes(next(container.demux(pictures[0]))) if pictures else b""
    assert [c["metadata"]["title"] for c in read] == [c.title for c in result.chapters]
    for marker, chapter in zip(read, result.chapters, strict=True):
        assert float(marker["start"] * marker["time_base"]) == pytest.approx(
            chapter.start_s, abs=TOLERANCE_S
        )
        assert float(marker["end"] * marker["time_base"]) == pytest.approx(
            chapter.end_s, abs=TOLERANCE_S
        )
    assert tags["title"] == tags["album"] == "A Book of Tests"
    assert tags["artist"] == tags["album_artist"] == "Ada Author"
    assert tags["genre"] == "Audiobook"
    assert tags["major_brand"].strip() == "M4B"
    assert cover == JPEG

    # Other readers: mutagen sees the iTunes tags, the cover and the Nero chapters.
    mp4 = MP4(out)
    assert mp4.tags is not None
    assert mp4.tags["©nam"] == ["A Book of Tests"] and mp4.tags["©ART"] == ["Ada Author"]
    assert bytes(mp4.tags["covr"][0]) == JPEG
    assert mp4.chapters is not None
    assert [c.title for c in mp4.chapters] == [c.title for c in result.chapters]
    assert [c.start for c in mp4.chapters] == pytest.approx(
        [c.start_s for c in result.chapters], abs=TOLERANCE_S
    )

    check_audio_starts(out, result)


def test_mp3_id3_chapters(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    meta = BookMeta("Another Book", "Bo Writer", PNG)  # cover type sniffed
    out = tmp_path / "book.mp3"
    silence = (700, 1500, 2000)
    result = build_audiobook(
        chapters,
        out,
        "mp3",
        meta,
        sample_rate=22050,
        bitrate_kbps=64,
        head_silence_ms=silence[0],
        chapter_silence_ms=silence[1],
        tail_silence_ms=silence[2],
    )
    assert (result.content_type, result.bitrate_kbps, result.silence_ms) == (
        "audio/mpeg",
        64,
        silence,
    )
    check_timeline(result, silence)
    info = probe(out)
    assert info.codec == "mp3"
    assert info.duration_s == pytest.approx(result.duration_s, abs=TOLERANCE_S)

    tag = ID3(out)
    assert tag.version[:2] == (2, 4)
    assert str(tag["TIT2"]) == str(tag["TALB"]) == "Another Book"
    assert str(tag["TPE1"]) == "Bo Writer" and str(tag["TCON"]) == "Audiobook"
    (picture,) = tag.getall("APIC")
    assert picture.mime == "image/png" and picture.type == 3 and picture.data == PNG
    (toc,) = tag.getall("CTOC")
    ids = [f"ch{i}" for i in range(len(chapters))]
    assert toc.child_element_ids == ids
    assert toc.flags & 0x03 == 0x03  # top level, ordered
    frames = {frame.element_id: frame for frame in tag.getall("CHAP")}
    assert sorted(frames) == ids
    for element_id, chapter in zip(ids, result.chapters, strict=True):
        frame = frames[element_id]
        assert str(frame.sub_frames["TIT2"]) == chapter.title
        assert frame.start_time == round(chapter.start_s * 1000)
        assert frame.end_time == round(chapter.end_s * 1000)

    with av.open(str(out)) as container:  # FFmpeg reads ID3 chapters too
        read = container.chapters()
    assert [c["metadata"]["title"] for c in read] == [c.title for c in result.chapters]
    check_audio_starts(out, result)


def test_manifest_is_json_and_complete(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    result = build_audiobook(
        chapters[1:], tmp_path / "b.m4b", "m4b", BookMeta("T"), sample_rate=22050
    )
    manifest = json.loads(json.dumps(result.manifest()))
    assert manifest["title"] == "T" and manifest["author"] is None
    assert manifest["duration_s"] == pytest.approx(result.duration_s)
    assert manifest["silence_ms"] == {"head": 500, "between_chapters": 1000, "tail": 1000}
    assert manifest["loudness"] is None
    first, second = manifest["chapters"]
    assert first == {
        "index": 0,
        "title": "The Middle — ünïcödé",
        "start_s": 0.0,
        "end_s": pytest.approx(5.5, abs=0.001),
        "audio_start_s": 0.5,
        "duration_s": pytest.approx(4.0, abs=0.001),
        "chars": 2400,
        "file": "c/1.m4a",
    }
    assert second["start_s"] == second["audio_start_s"] == pytest.approx(5.5, abs=0.001)


@pytest.mark.parametrize("fmt", ["m4b", "mp3"])
@pytest.mark.parametrize(
    ("level", "base", "clicks"),
    [("quiet", -42.0, 0), ("loud", -11.0, 20), ("quiet with clicks", -36.0, 20)],
)
def test_loudness_normalised_book_meets_acx(
    fmt: str, level: str, base: float, clicks: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever the input level, the book measures inside ACX's ranges.

    Quiet speech with full-scale clicks is the hard case: its gain pushes the
    clicks 15 dB over the ceiling, and the limiter's cut must be made up.
    """
    d = tmp_path_factory.mktemp(f"{level}-{fmt}".replace(" ", "-"))
    rates = (22050, 24000, 16000)
    chapters = [
        ChapterAudio(
            f"Chapter {i + 1}",
            (write_pcm(d / f"{i}.pcm", speech(rate, 5.0, base + 3 * i, 10 + i, clicks=clicks)),),
            rate,
        )
        for i, rate in enumerate(rates)
    ]
    result = build_audiobook(
        chapters, d / f"book.{fmt}", fmt, BookMeta("Loud"), sample_rate=22050, loudness=ACX
    )
    report = result.loudness
    assert report is not None
    assert -23.0 <= report.rms_db <= -18.0
    assert report.peak_db <= -3.0
    assert report.noise_floor_db <= -60.0
    assert report.noise_floor_db > -80.0  # room tone, not digital silence
    assert report.problems(ACX) == ()
    for chapter in result.chapter_loudness:  # each chapter on its own meets it too
        assert chapter.output.rms_db == pytest.approx(ACX.target_rms_db, abs=0.6)
        assert chapter.output.peak_db <= -3.0
        # The plain gain to the target, or more where the limiter takes some back.
        assert chapter.gain_db >= -20.0 - chapter.input_rms_db - 0.01
        if not clicks:
            assert chapter.gain_db == pytest.approx(-20.0 - chapter.input_rms_db, abs=0.01)
    # The manifest reports the finished file, as measured again from scratch.
    again = measure_loudness(result.path)
    manifest = result.manifest()["loudness"]
    assert manifest["rms_db"] == pytest.approx(again.rms_db, abs=0.01)
    assert manifest["peak_db"] == pytest.approx(again.peak_db, abs=0.01)
    assert manifest["within_target"] is True and len(manifest["chapters"]) == 3
    assert probe(result.path).duration_s == pytest.approx(result.duration_s, abs=TOLERANCE_S)


def test_loudness_extends_short_silence_to_room_tone(
    chapters: list[ChapterAudio], tmp_path: Path
) -> None:
    result = build_audiobook(
        chapters[2:],
        tmp_path / "b.m4b",
        "m4b",
        BookMeta("T"),
        sample_rate=22050,
        head_silence_ms=0,
        tail_silence_ms=200,
        loudness=ACX,
    )
    assert result.silence_ms == (500, 1000, 1000)
    assert result.chapters[0].audio_start_s == pytest.approx(0.5)


def test_same_input_same_bytes(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    build = [
        build_audiobook(
            chapters[:2], tmp_path / f"{i}.m4b", "m4b", BookMeta("T", cover=PNG), loudness=ACX
        )
        for i in range(2)
    ]
    assert build[0].sha256 == build[1].sha256


def test_chapters_from_output_files(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    """The secondary path: decode each chapter's own m4a/mp3 back to PCM."""
    decoded = []
    for index, (chapter, fmt) in enumerate(zip(chapters, ("m4a", "mp3", "flac"), strict=False)):
        segments = [
            p if isinstance(p, SegmentAudio) else SegmentAudio(p, chapter.sample_rate)
            for p in chapter.pcm
        ]
        own = assemble(segments, tmp_path / f"{index}.{fmt}", OutputFormat(fmt), 24000)
        decoded.append(
            chapter_from_file(
                chapter.title, own.path, tmp_path / f"{index}.pcm", file=own.path.name
            )
        )
        assert decoded[-1].sample_rate == 24000
    result = build_audiobook(decoded, tmp_path / "b.mp3", "mp3", BookMeta("T"), sample_rate=24000)
    for chapter, seconds in zip(result.chapters, AUDIO_S, strict=True):
        assert chapter.duration_s == pytest.approx(seconds, abs=0.01)
    assert [c.file for c in result.chapters] == ["0.m4a", "1.mp3", "2.flac"]
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(CorruptAudio):
        chapter_from_file("x", bad, tmp_path / "bad.pcm")


def test_refuses_bad_books(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    out = tmp_path / "b.m4b"
    meta = BookMeta("T")
    with pytest.raises(InvalidBook, match="at least one chapter"):
        build_audiobook([], out, "m4b", meta)
    empty = tmp_path / "empty.pcm"
    empty.write_bytes(b"")
    with pytest.raises(InvalidBook, match="chapter 2"):
        build_audiobook([chapters[0], ChapterAudio("Void", (empty,), 22050)], out, "m4b", meta)
    with pytest.raises(InvalidBook, match="no audio"):
        build_audiobook([ChapterAudio("None", (), 22050)], out, "mp3", meta)
    with pytest.raises(CorruptAudio):
        build_audiobook([ChapterAudio("Gone", (tmp_path / "gone.pcm",), 22050)], out, "m4b", meta)
    with pytest.raises(InvalidBook, match="cover"):
        build_audiobook(chapters, out, "m4b", BookMeta("T", cover=b"GIF89a..."))
    with pytest.raises(InvalidBook, match="declared image/png"):
        build_audiobook(chapters, out, "m4b", BookMeta("T", cover=JPEG, cover_type="image/png"))
    with pytest.raises(InvalidBook, match="does not decode"):
        build_audiobook(chapters, out, "mp3", BookMeta("T", cover=JPEG[:40]))
    with pytest.raises(InvalidBook, match="title"):
        build_audiobook(chapters, out, "m4b", BookMeta("  "))
    with pytest.raises(UnsupportedOutput) as bad_format:
        build_audiobook(chapters, out, "wav", meta)
    assert bad_format.value.field == "format"
    with pytest.raises(UnsupportedOutput) as bad_rate:
        build_audiobook(chapters, out, "m4b", meta, sample_rate=8000)
    assert bad_rate.value.field == "sample_rate"
    with pytest.raises(ValueError, match="chapter_silence_ms"):
        build_audiobook(chapters, out, "m4b", meta, chapter_silence_ms=-1)
    assert not list(tmp_path.glob("b.m4b*"))  # nothing left behind


def test_untitled_chapters_get_numbers(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    untitled = [ChapterAudio(" ", c.pcm, c.sample_rate) for c in chapters[1:]]
    result = build_audiobook(untitled, tmp_path / "b.mp3", "mp3", BookMeta("T"), sample_rate=22050)
    assert [c.title for c in result.chapters] == ["Chapter 1", "Chapter 2"]


@pytest.mark.slow
def test_memory_stays_flat_for_a_long_book(tmp_path: Path) -> None:
    """A 10-minute normalised book peaks at the same memory as a 1-minute one.

    (60 minutes would show the same and take a minute of encoding; memory does
    not depend on the length, so ten make the point.)
    """
    rate = 22050
    piece = write_pcm(tmp_path / "minute.pcm", speech(rate, 60.0, -26, 99))

    def build(minutes: int) -> tuple[int, int]:
        book = [ChapterAudio(f"Part {i + 1}", (piece,), rate) for i in range(minutes)]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tracemalloc.start()
        try:
            result = build_audiobook(
                book,
                tmp_path / f"{minutes}.mp3",
                "mp3",
                BookMeta("Long"),
                sample_rate=rate,
                bitrate_kbps=64,
                loudness=ACX,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
        assert result.duration_s == pytest.approx(minutes * 61 + 0.5, abs=0.01)
        assert result.loudness is not None and result.loudness.problems(ACX) == ()
        return peak, rss_growth

    short, _ = build(1)
    long, rss_growth = build(10)
    whole_book = 10 * 60 * rate * 4  # float32: what holding the book would cost (53 MB)
    assert long < whole_book / 10  # a few blocks of samples, not the book
    assert long < short + 2**20  # and no more for ten times the audio
    assert rss_growth < 50 * 2**20
