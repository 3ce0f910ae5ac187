"""Crash tests of jobs: ``kill -9`` a real Celery worker mid-job and let another finish it.

The broker's visibility timeout is left at an hour, so the only way back for a
killed worker's job is the reaper of a live worker, which re-queues running
jobs whose lease lapsed (``SHOAL_JOB_LEASE_SECONDS``, 3 s here).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, sentences
from worker.jobs.model import (
    ErrorCode,
    Job,
    JobError,
    JobRequest,
    JobStatus,
    estimate_billing,
    new_job_id,
)

SEGMENTS = 20


@pytest.fixture(scope="module")
def slow_tts() -> Iterator[LocalTTS]:
    """About a second of wall time per 50-character segment."""
    with LocalTTS(engine="tone", rtf=0.3, ttfb_ms=20) as server:
        yield server


@pytest.fixture
def stack(make_stack: Stacks, slow_tts: LocalTTS) -> Stack:
    return make_stack(
        slow_tts,
        SHOAL_JOB_LEASE_SECONDS="3",
        SHOAL_VISIBILITY_TIMEOUT="3600",  # redelivery by the broker is no way back
    )


def _segments_done(st: Stack, job_id: str) -> int:
    return len(st.store.segments(job_id))


def _attempts(st: Stack, job_id: str) -> int:
    job = st.store.get(job_id)
    return job.attempts if job else 0


def _wait(st: Stack, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, st.logs()
        time.sleep(0.05)


def test_killed_worker_job_is_finished_by_another(stack: Stack, tmp_path: Path) -> None:
    first = stack.start_worker(concurrency=1)
    job = stack.submit(sentences(SEGMENTS), format="wav", sample_rate=24000)
    deadline = time.monotonic() + 60
    while _segments_done(stack, job.id) < 5:
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)
    first.kill()
    killed_at = time.monotonic()
    checkpointed = _segments_done(stack, job.id)
    assert checkpointed < SEGMENTS, "the job finished before the kill"
    running = stack.store.get(job.id)
    assert running is not None and running.status is JobStatus.RUNNING

    second = stack.start_worker(concurrency=1)
    done = stack.wait(job.id, timeout=90)
    assert done.status is JobStatus.SUCCEEDED, done.error
    # Back within a lease or two after the kill, not after the visibility timeout.
    assert time.monotonic() - killed_at < 40
    assert "its worker is gone; re-queued" in second.log_path.read_text()
    assert done.attempts == 2

    assert done.output is not None
    assert done.progress.segments_done == done.progress.segments_total == SEGMENTS
    info = stack.fetch_output(done, tmp_path / "out.wav")
    assert info.duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)
    # Complete: every segment's audio is in it (tone audio is ~65 ms a character).
    assert info.duration_s > SEGMENTS * 3.0

    # Sessions the kill cut off before their text arrived synthesised nothing: skip them.
    sessions = [s for s in stack.tts.wait_idle()["sessions"] if s["text"].strip()]
    by_text = Counter(s["text"].strip() for s in sessions)
    finished = Counter(s["text"].strip() for s in sessions if s["end"] == "stop")
    assert len(finished) == SEGMENTS
    # Only what was in flight at the kill was streamed again.
    assert max(by_text.values()) <= 2, by_text
    assert sum(by_text.values()) - SEGMENTS <= 3  # at most the parallel segments in flight
    deadline = time.monotonic() + 5  # staging is cleaned just after the job succeeded
    while stack.staged(job.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.staged(job.id) == []
    assert stack.storage.list_incomplete_uploads() == []


def test_stalled_worker_yields_to_the_one_that_took_over(stack: Stack, tmp_path: Path) -> None:
    """SIGSTOP a worker past its lease, let another take the job, then SIGCONT the first:
    it must notice, stop, and leave the job (and the other worker's files) alone."""
    first = stack.start_worker(concurrency=1)
    job = stack.submit(sentences(SEGMENTS), format="wav", sample_rate=24000)
    _wait(stack, lambda: _segments_done(stack, job.id) >= 3, 60)
    os.killpg(first.proc.pid, signal.SIGSTOP)
    try:
        stack.start_worker(concurrency=1)
        taken = _segments_done(stack, job.id)
        # The second worker's attempt is under way and has finished a few segments.
        _wait(stack, lambda: _attempts(stack, job.id) == 2, 30)
        _wait(stack, lambda: _segments_done(stack, job.id) >= taken + 3, 60)
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    done = stack.wait(job.id, timeout=90)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    info = stack.fetch_output(done, tmp_path / "out.wav")
    assert info.duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)
    assert info.duration_s > SEGMENTS * 3.0
    _wait(stack, lambda: "lease lost; another worker carries on" in first.log(), 15)
    _wait(stack, lambda: stack.staged(job.id) == [], 5)
    assert stack.storage.list_incomplete_uploads() == []
    sessions = [s for s in stack.tts.wait_idle()["sessions"] if s["text"].strip()]
    by_text = Counter(s["text"].strip() for s in sessions)
    assert len(by_text) == SEGMENTS and max(by_text.values()) <= 2, by_text
    # The stalled worker opened no session after it woke up: only its stalled ones.
    assert sum(by_text.values()) - SEGMENTS <= 3


def test_job_that_keeps_losing_its_worker_gives_up(stack: Stack) -> None:
    """A job whose every attempt ended with its worker (a crash loop) is not re-queued for ever."""
    settings = stack.settings
    text = "Short text."
    job = Job(
        id=new_job_id(),
        tenant="t1",
        request=JobRequest(text=text, format="wav"),
        billing=estimate_billing(text, settings.price_per_million_bytes_usd),
    )
    stack.store.create(job)
    # As if five workers had started it and died: running, no lease, attempts used up.
    assert stack.store.transition(job.id, JobStatus.RUNNING)
    for _ in range(settings.max_attempts):
        stack.store.start_attempt(job.id, settings.max_attempts)
    stack.store.record_error(
        job.id, JobError(code=ErrorCode.PROVIDER_UNAVAILABLE, message="boom", retryable=True)
    )
    worker = stack.start_worker(concurrency=1)
    done = stack.wait(job.id, timeout=30)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert done.error.message == f"gave up after {settings.max_attempts} attempts: boom"
    assert done.attempts == settings.max_attempts
    assert "its worker is gone; re-queued" in worker.log_path.read_text()
    assert stack.tts.stats()["sessions_started"] == 0
