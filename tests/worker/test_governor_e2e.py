"""The provider governor across processes, counted by the provider itself.

Two Celery worker processes, a governor limit of 3 and 20 queued jobs: local_tts
(which counts its open sessions) must never see more than 3 at once, and while
work waits the slots must not sit idle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.jobs.model import JobStatus

LIMIT = 3
JOBS = 20


@pytest.fixture
def slow_tts() -> Iterator[LocalTTS]:
    # Each session takes ~1 s, so the limit, not the provider, sets the pace.
    with LocalTTS(engine="tone", rtf=0.25, ttfb_ms=50) as server:
        yield server


@pytest.fixture
def stack(make_stack: Stacks, slow_tts: LocalTTS) -> Stack:
    return make_stack(slow_tts, SHOAL_PROVIDER_SLOTS=str(LIMIT), SHOAL_JOB_PARALLEL_SEGMENTS="2")


def test_limit_holds_across_two_worker_processes(stack: Stack, slow_tts: LocalTTS) -> None:
    stack.start_worker(concurrency=4)
    stack.start_worker(concurrency=4)
    slow_tts.reset()
    jobs = [
        stack.submit(f"Job number {i} says a sentence of modest length here.") for i in range(JOBS)
    ]

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(slow_tts.stats()["sessions_active"])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        done = [stack.wait(job.id, timeout=120) for job in jobs]
    finally:
        stop.set()
        sampler.join()
    assert all(j.status is JobStatus.SUCCEEDED for j in done), [j.error for j in done]
    stats = slow_tts.stats()
    assert stats["sessions_peak"] <= LIMIT, stats["sessions_peak"]
    assert max(samples) <= LIMIT
    assert len([s for s in stats["sessions"] if s["end"] == "stop"]) >= JOBS
    # Slots are not left idle while work waits: over the busy middle of the run
    # (all jobs queued far more work than the limit), the mean is close to it.
    busy = samples[len(samples) // 5 : len(samples) * 3 // 5]
    assert busy and sum(busy) / len(busy) >= LIMIT * 0.7, busy
