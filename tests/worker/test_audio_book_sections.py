"""Tests of an M4B joined from sections: real AAC encodes, books read back with PyAV and mutagen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import av
import pytest
from mutagen.mp4 import MP4

from tests.worker.test_audio_book import (
    JPEG,
    TOLERANCE_S,
    check_audio_starts,
    decode,
    level_db,
    speech,
    write_pcm,
)
from worker.audio import (
    ACX,
    BookMeta,
    ChapterAudio,
    CorruptAudio,
    SegmentAudio,
    build_audiobook,
    probe,
)
from worker.audio.book import BookRequest, check_book
from worker.audio.book_sections import (
    FRAME,
    Section,
    SectionedChapter,
    join_sections,
    render_section,
    sectionable,
)
from worker.audio.loudness import LoudnessTarget

META = BookMeta("Sections", "Ada Author", JPEG, "image/jpeg")


def check_joined_timeline(
    chapters: list[dict[str, Any]], total_s: float, silence_s: tuple[float, float, float], rate: int
) -> None:
    """A joined book's manifest arithmetic: head as asked, and each silence after a chapter
    the asked one plus under one frame of padding (sections are whole frames)."""
    head, gap, tail = silence_s
    frame = FRAME / rate
    assert chapters[0]["audio_start_s"] == pytest.approx(head, abs=1e-6)
    ends = [c["audio_start_s"] + c["duration_s"] for c in chapters]
    for end, after in zip(ends, chapters[1:], strict=False):
        assert gap - 1e-6 <= after["audio_start_s"] - end < gap + frame
    assert tail - 1e-6 <= total_s - ends[-1] < tail + frame


@pytest.fixture(scope="module")
def chapters(tmp_path_factory: pytest.TempPathFactory) -> list[ChapterAudio]:
    d = tmp_path_factory.mktemp("section-chapters")
    a0 = write_pcm(d / "c0s0.pcm", speech(22050, 2.0, -26, 1))
    a1 = write_pcm(d / "c0s1.pcm", speech(22050, 2.5, -24, 2))
    b = write_pcm(d / "c1.pcm", speech(24000, 3.0, -20, 3))
    c = write_pcm(d / "c2.pcm", speech(44100, 2.5, -22, 4))
    return [
        ChapterAudio("Opening", (SegmentAudio(a0, 22050, 300), a1), 22050, 1200, "c/0.mp3"),
        ChapterAudio("Middle", (b,), 24000, 900, "c/1.mp3"),
        ChapterAudio("End", (c,), 44100, 700, "c/2.mp3"),
    ]


def asked(
    chapters: list[ChapterAudio],
    *,
    fmt: str = "m4b",
    silence_ms: tuple[int, int, int] = (500, 1000, 1000),
    loudness: LoudnessTarget | None = None,
) -> BookRequest:
    titles = [c.title for c in chapters]
    return check_book(titles, fmt, META, 44100, None, silence_ms, loudness, 32768)


def sectioned(
    chapters: list[ChapterAudio], folder: Path, loudness: LoudnessTarget | None = None
) -> tuple[list[SectionedChapter], Path]:
    request = asked(chapters, loudness=loudness)
    folder.mkdir(exist_ok=True)
    made = []
    for index, chapter in enumerate(chapters):
        path = folder / f"{index}.aac"
        section = render_section(chapter, index, len(chapters), request, path)
        made.append(SectionedChapter(path, section, chapter.chars, chapter.file))
    return made, folder / "book.m4b"


def test_a_joined_book_is_timed_tagged_and_sounds_as_the_one_pass_book(
    chapters: list[ChapterAudio], tmp_path: Path
) -> None:
    parts, out = sectioned(chapters, tmp_path / "s")
    result = join_sections(parts, asked(chapters), META, out)
    whole = build_audiobook(chapters, tmp_path / "whole.m4b", "m4b", META)

    # Every section is whole frames, and the book is exactly their frames end to end.
    assert all(p.section.total % FRAME == 0 for p in parts)
    x, rate = decode(out)
    assert len(x) == sum(p.section.total for p in parts) == round(result.duration_s * rate)
    assert probe(out).duration_s == pytest.approx(result.duration_s, abs=TOLERANCE_S)
    # The chapters keep their lengths; each gap is the asked one plus under a frame.
    for mine, theirs in zip(result.chapters, whole.chapters, strict=True):
        assert mine.duration_s == pytest.approx(theirs.duration_s, abs=1e-6)
        assert mine.audio_start_s - theirs.audio_start_s < len(chapters) * FRAME / rate
    assert result.chapters[0].audio_start_s == pytest.approx(0.5, abs=1e-6)
    for before, after in zip(result.chapters, result.chapters[1:], strict=False):
        gap = after.audio_start_s - before.audio_start_s - before.duration_s
        assert 1.0 <= gap < 1.0 + FRAME / rate
    check_audio_starts(out, result)

    # Each chapter's audio is the one-pass book's, up to the codec.
    y, _ = decode(whole.path)
    for mine, theirs in zip(result.chapters, whole.chapters, strict=True):
        a = x[round(mine.audio_start_s * rate) :][: round(mine.duration_s * rate)]
        b = y[round(theirs.audio_start_s * rate) :][: round(theirs.duration_s * rate)]
        assert level_db(a) == pytest.approx(level_db(b), abs=0.3)
        assert level_db(a - b) < level_db(b) - 15  # the same signal, codec noise apart

    # Markers, tags and cover, as other players read them.
    mp4 = MP4(out)
    assert mp4.tags is not None and mp4.chapters is not None
    assert mp4.tags["©nam"] == ["Sections"] and bytes(mp4.tags["covr"][0]) == JPEG
    assert [c.title for c in mp4.chapters] == ["Opening", "Middle", "End"]
    assert [c.start for c in mp4.chapters] == pytest.approx(
        [c.start_s for c in result.chapters], abs=TOLERANCE_S
    )
    assert result.manifest()["chapters"][1]["file"] == "c/1.mp3"


def test_a_changed_chapter_changes_only_its_own_section(
    chapters: list[ChapterAudio], tmp_path: Path
) -> None:
    parts, out = sectioned(chapters, tmp_path / "s")
    first = join_sections(parts, asked(chapters), META, out)
    x, rate = decode(out)

    longer = tmp_path / "longer.pcm"
    write_pcm(longer, speech(24000, 3.7, -20, 9))
    edited = [chapters[0], dataclasses.replace(chapters[1], pcm=(longer,)), chapters[2]]
    request = asked(edited)
    redone = render_section(edited[1], 1, 3, request, tmp_path / "redone.aac")
    parts[1] = dataclasses.replace(parts[1], path=tmp_path / "redone.aac", section=redone)
    again = join_sections(parts, request, META, tmp_path / "again.m4b")
    y, _ = decode(again.path)

    assert again.chapters[1].duration_s == pytest.approx(3.7, abs=0.002)
    check_audio_starts(again.path, again)
    # The untouched chapters are the very same AAC frames, only moved ...
    was, now = packets(first.path), packets(again.path)
    head, tail = parts[0].section.total // FRAME, parts[2].section.total // FRAME
    assert now[:head] == was[:head] and now[-tail:] == was[-tail:]
    assert now[head:-tail] != was[head:-tail]
    # ... and decode to the same sound (the decoder's noise substitution apart).
    for index in (0, 2):
        a_chapter, b_chapter = first.chapters[index], again.chapters[index]
        a = x[round(a_chapter.audio_start_s * rate) :][: round(a_chapter.duration_s * rate)]
        b = y[round(b_chapter.audio_start_s * rate) :][: round(b_chapter.duration_s * rate)]
        assert level_db(a - b) < level_db(a) - 50, index


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_a_normalised_joined_book_meets_acx(chapters: list[ChapterAudio], tmp_path: Path) -> None:
    request = asked(chapters, loudness=ACX)
    parts, out = sectioned(chapters, tmp_path / "s", loudness=ACX)
    result = join_sections(parts, request, META, out)
    assert result.loudness is not None and result.loudness.problems(ACX) == ()
    assert result.loudness.noise_floor_db > -80.0  # room tone at the joins, not digital silence
    assert [round(c.gain_db, 2) for c in result.chapter_loudness] == [
        round(p.section.gain_db, 2) for p in parts
    ]
    for chapter in result.chapter_loudness:
        assert chapter.output.rms_db == pytest.approx(ACX.target_rms_db, abs=0.6)


def test_only_m4b_with_silence_at_the_joins_is_joined(chapters: list[ChapterAudio]) -> None:
    assert sectionable(asked(chapters))
    assert not sectionable(asked(chapters, fmt="mp3"))
    assert not sectionable(asked(chapters, silence_ms=(500, 80, 1000)))  # under 2 frames a side
    assert not sectionable(asked(chapters, silence_ms=(20, 1000, 1000)))


def test_a_section_that_does_not_hold_its_frames_is_refused(
    chapters: list[ChapterAudio], tmp_path: Path
) -> None:
    parts, out = sectioned(chapters[:2], tmp_path / "s")
    data = parts[1].path.read_bytes()
    parts[1].path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptAudio, match="chapter 2's section holds"):
        join_sections(parts, asked(chapters[:2]), META, out)
    assert not out.exists() and not list(out.parent.glob("*.part"))


def test_section_records_round_trip_and_refuse_what_does_not_add_up() -> None:
    section = Section(22050, 100_000, 147 * FRAME, -1.5, (-24.0, -3.5))
    assert Section.from_dict(section.to_dict()) == section
    assert Section.from_dict(Section(10, 20, FRAME).to_dict()) == Section(10, 20, FRAME)
    for bad in ({}, {**section.to_dict(), "total": 1000}, {**section.to_dict(), "lead": "x"}):
        with pytest.raises(ValueError, match="not a section record"):
            Section.from_dict(bad)
