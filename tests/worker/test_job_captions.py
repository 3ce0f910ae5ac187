"""Pure tests of a job's captions: the timeline of its segments, marks placed and mapped
back to the submitted text (through lexicons and tags), and the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worker.audio import SegmentAudio
from worker.jobs.captions import blank_tags, caption_files, caption_marks, job_timeline
from worker.jobs.checkpoints import SegmentCheckpoint
from worker.jobs.markup import job_segments
from worker.jobs.model import Billing, CaptionFormat, Job, JobRequest, TimestampLevel
from worker.timings import Mark, MarkKind

RATE = 16_000
BILLING = Billing(utf8_bytes=1, estimated_cost_usd=0.0)


def pcm(tmp_path: Path, name: str, seconds: float, rate: int = RATE) -> Path:
    path = tmp_path / name
    np.zeros(round(seconds * rate), dtype="<i2").tofile(path)
    return path


def test_the_timeline_counts_head_silence_pauses_and_other_rates(tmp_path: Path) -> None:
    parts = [
        SegmentAudio(pcm(tmp_path, "a", 1.0), RATE, 500),
        SegmentAudio(pcm(tmp_path, "b", 2.0, 24_000), 24_000, 1500),
        SegmentAudio(pcm(tmp_path, "c", 0.25), RATE, 0),
    ]
    timeline = job_timeline(parts, 48_000, head_ms=250)
    assert timeline.starts == (12_000, 84_000, 252_000)
    assert timeline.lengths == (48_000, 96_000, 12_000)
    assert timeline.total_samples == 264_000
    assert timeline.start_ms(2) == 5250.0


def word(text: str, source: str, start_ms: int, end_ms: int) -> Mark:
    at = source.index(text)
    return Mark(MarkKind.WORD, start_ms, end_ms, text, at, at + len(text))


def test_marks_are_placed_in_the_file_and_mapped_to_the_submitted_text(tmp_path: Path) -> None:
    submitted = 'Hermione waved. <break time="1s"/>Ron laughed loudly.'
    sent = 'Her-my-oh-nee waved. <break time="1s"/>Ron laughed loudly.'
    job = Job(
        id="job_x",
        tenant="t",
        request=JobRequest(text=sent, source_text=submitted, timestamps=TimestampLevel.WORD),
        billing=BILLING,
    )
    segments = job_segments(sent, 300)
    assert [s.text for s in segments] == ["Her-my-oh-nee waved. ", "Ron laughed loudly."]
    first, second = segments
    checkpoints = {
        0: SegmentCheckpoint(
            0,
            "k0",
            32_000,
            RATE,
            len(first.text),
            marks=(word("Her-my-oh-nee", first.text, 0, 600), word("waved", first.text, 600, 900)),
        ),
        1: SegmentCheckpoint(
            1,
            "k1",
            32_000,
            RATE,
            len(second.text),
            marks=(
                word("Ron", second.text, 100, 300),
                word("laughed", second.text, 300, 700),
                word("loudly", second.text, 700, 1200),
            ),
        ),
    }
    parts = [
        SegmentAudio(pcm(tmp_path, "0", 1.0), RATE, 1000),
        SegmentAudio(pcm(tmp_path, "1", 2.0), RATE, 0),
    ]
    marks = caption_marks(job, segments, checkpoints, job_timeline(parts, RATE))
    sentences = [(m.text, m.start_ms, m.end_ms) for m in marks if m.kind is MarkKind.SENTENCE]
    assert sentences == [("Hermione waved.", 0, 900), ("Ron laughed loudly.", 2100, 3200)]
    words = [(m.text, m.start_ms, m.char_start) for m in marks if m.kind is MarkKind.WORD]
    assert words == [
        ("Hermione", 0, 0),
        ("waved", 600, 9),
        ("Ron", 2100, submitted.index("Ron")),
        ("laughed", 2300, submitted.index("laughed")),
        ("loudly", 2700, submitted.index("loudly")),
    ]
    for m in marks:
        assert submitted[m.char_start : m.char_end].startswith(m.text.split()[0])

    files = caption_files(marks)
    assert files[CaptionFormat.VTT] == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nHermione waved.\n"
        "\n00:00:02.100 --> 00:00:03.200\nRon laughed loudly.\n"
    )
    assert "1\n00:00:00,000 --> 00:00:00,900\nHermione waved.\n" in files[CaptionFormat.SRT]
    assert '"type":"word"' in files[CaptionFormat.JSON].replace(" ", "")


def test_sentence_timings_leave_words_out_and_tags_out_of_sentences(tmp_path: Path) -> None:
    text = 'One two <break time="500ms"/>three.'
    request = JobRequest(text=text, timestamps=TimestampLevel.SENTENCE)
    job = Job(id="j", tenant="t", request=request, billing=BILLING)
    segments = job_segments(text, 300)
    marks_of = {
        0: (word("One", segments[0].text, 0, 200), word("two", segments[0].text, 200, 400)),
        1: (word("three", segments[1].text, 0, 300),),
    }
    checkpoints = {
        s.index: SegmentCheckpoint(s.index, "k", 16_000, RATE, len(s.text), marks=marks_of[s.index])
        for s in segments
    }
    parts = [SegmentAudio(pcm(tmp_path, str(s.index), 0.5), RATE, s.break_ms) for s in segments]
    marks = caption_marks(job, segments, checkpoints, job_timeline(parts, RATE))
    assert [(m.kind, m.text, m.start_ms, m.end_ms) for m in marks] == [
        (MarkKind.SENTENCE, "One two three.", 0, 1300)
    ]
    assert blank_tags(text) == "One two " + " " * len('<break time="500ms"/>') + "three."
