"""Jobs end to end: a real Celery worker subprocess, local_tts, moto S3, Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.audio import probe
from worker.jobs.model import Job, JobRequest, JobStatus, estimate_billing, new_job_id
from worker.jobs.synth import keeps_staging

TEXT = (
    "The quick brown fox jumps over the lazy dog. It was not amused.\n\n"
    "A second paragraph follows, so that the job has more than one segment to stitch."
)


@pytest.fixture
def stack(make_stack: Stacks, tone_tts: LocalTTS) -> Stack:
    return make_stack(tone_tts)


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [
        ("wav", 24000),
        ("mp3", 44100),
        ("opus", 48000),
        ("flac", 16000),
        ("m4a", 44100),
        ("pcm", 22050),
    ],
)
def test_each_format_succeeds_with_a_valid_file(
    stack: Stack, fmt: str, rate: int, tmp_path: Path
) -> None:
    stack.start_worker()
    job = stack.submit(TEXT, format=fmt, sample_rate=rate)
    done = stack.wait(job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.output is not None and done.progress.segments_total >= 3
    assert done.progress.segments_done == done.progress.segments_total
    path = tmp_path / f"out.{fmt}"
    stack.storage.download_file(done.output.key, path)
    info = probe(path, raw_pcm_rate=rate if fmt == "pcm" else None)
    assert info.channels == 1
    assert info.sample_rate == (48000 if fmt == "opus" else rate)
    # The audio of all segments, at the output rate: within 1%.
    assert done.progress.audio_seconds > 1.0
    assert info.duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)
    assert done.output.duration_s == pytest.approx(info.duration_s, rel=0.01)
    head = stack.storage.head(done.output.key)
    assert head["content_type"] == done.output.content_type
    assert head["metadata"]["job-id"] == job.id
    # Staging is cleaned just after the job is marked succeeded.
    assert stack.storage.list_incomplete_uploads() == []
    deadline = time.monotonic() + 5
    while stack.staged(job.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.staged(job.id) == []


@pytest.mark.parametrize(
    ("segments", "batch", "staged"), [(1, False, False), (2, False, True), (1, True, True)]
)
def test_who_keeps_staging(segments: int, batch: bool, staged: bool) -> None:
    job = Job(
        id=new_job_id(),
        tenant="t1",
        request=JobRequest(text="Hello."),
        billing=estimate_billing("Hello.", 15.0),
        batch_id="batch_01" if batch else None,
    )
    assert keeps_staging(job, segments) is staged


def test_a_one_segment_job_stages_nothing(stack: Stack, tmp_path: Path) -> None:
    """A job of one segment goes from the spool into its output: no staging upload,
    no checkpoint record, nothing to delete.  A job of several stages each segment."""
    stack.start_worker()
    one = stack.submit("One short sentence.", format="mp3")
    several = stack.submit(TEXT, format="mp3")
    done = {job.id: stack.wait(job.id) for job in (one, several)}
    for job in done.values():
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.output is not None
    assert done[one.id].progress.segments_total == 1
    assert done[several.id].progress.segments_total >= 3
    log = stack.workers[0].log_path.read_text(errors="replace")
    assert f"/_staging/{several.id}/000000.pcm" in log  # its upload's line: the line exists
    assert f"/_staging/{one.id}/" not in log
    out = done[one.id].output
    assert out is not None
    path = tmp_path / "one.mp3"
    stack.storage.download_file(out.key, path)
    assert probe(path).duration_s == pytest.approx(done[one.id].progress.audio_seconds, rel=0.02)
