"""Takeover after a crash: a job whose worker got ``kill -9`` starts again within its
lease plus two seconds, on another worker.

Real parts: Celery workers in subprocesses, local_tts, moto S3, Redis.  The
broker's visibility timeout is an hour, so only a reaper brings the job back.
The job is killed several times over, each time on whichever worker runs it,
and every takeover is measured: from the kill, and from the moment the dead
worker's lease lapsed (Redis's own count-down, read just after the kill).  The
kills fall an eighth of a lease apart in phase, so a reaper that looked only
every half lease (as before) would be caught at the worst of its period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, WorkerProcess, sentences
from worker.jobs.model import JobStatus

log = logging.getLogger(__name__)

LEASE = 6.0  # SHOAL_JOB_LEASE_SECONDS: short, and long enough for half of it to show
KILLS = 4
SEGMENTS = 50


@pytest.fixture(scope="module")
def slow_tts() -> Iterator[LocalTTS]:
    """About a second of wall time per 50-character segment."""
    with LocalTTS(engine="tone", rtf=0.3, ttfb_ms=20) as server:
        yield server


def _start_workers(st: Stack, count: int) -> list[WorkerProcess]:
    """``count`` workers of one thread each, started side by side (start-up is slow)."""
    started = [
        WorkerProcess(st.env, st.workdir / f"worker-{len(st.workers) + i}.log", concurrency=1)
        for i in range(count)
    ]
    st.workers += started
    return [worker.wait_ready() for worker in started]


def _attempts(st: Stack, job_id: str) -> int:
    job = st.store.get(job_id)
    return job.attempts if job else 0


def _kill_the_runner(st: Stack, job_id: str, workers: list[WorkerProcess]) -> tuple[float, float]:
    """SIGKILL the worker holding the job's lease; returns when (monotonic), and when
    its lease lapses (Redis's count-down at that moment)."""
    owner = st.redis.get(st.keys.job_lease(job_id))
    assert owner is not None, st.logs()
    pid = int(owner.decode().split(":")[1])  # owners read "host:pid:random"
    victim = next(w for w in workers if w.proc.pid == pid)
    victim.kill()
    killed = time.monotonic()
    left = st.redis.pttl(st.keys.job_lease(job_id))
    assert left > 0, "the lease lapsed before the kill was measured"
    return killed, killed + left / 1000


def test_a_killed_workers_job_is_taken_over_within_lease_plus_two_seconds(
    make_stack: Stacks, slow_tts: LocalTTS, tmp_path: Path
) -> None:
    st = make_stack(
        slow_tts,
        SHOAL_JOB_LEASE_SECONDS=str(LEASE),
        SHOAL_VISIBILITY_TIMEOUT="3600",  # redelivery by the broker is no way back
        SHOAL_MAX_ATTEMPTS=str(KILLS + 2),
    )
    workers = _start_workers(st, KILLS + 1)
    job = st.submit(sentences(SEGMENTS), format="wav", sample_rate=24000)
    takeovers: list[tuple[float, float]] = []
    for attempt in range(1, KILLS + 1):
        # Let the attempt make some progress, then kill the worker running it.
        done_before = len(st.store.segments(job.id))
        deadline = time.monotonic() + 60
        while _attempts(st, job.id) < attempt or len(st.store.segments(job.id)) < done_before + 2:
            assert time.monotonic() < deadline, st.logs()
            time.sleep(0.02)
        time.sleep((attempt - 1) * LEASE / 8)
        killed, lapsed = _kill_the_runner(st, job.id, workers)
        while _attempts(st, job.id) == attempt:
            assert time.monotonic() < killed + 30, st.logs()
            time.sleep(0.01)
        started = time.monotonic()
        takeovers.append((started - killed, started - lapsed))
    log.info("takeovers (from the kill, from the lapse): %s", takeovers)

    done = st.wait(job.id, timeout=120)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts == KILLS + 1
    info = st.fetch_output(done, tmp_path / "out.wav")
    assert info.duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)
    assert done.progress.segments_done == SEGMENTS
    # Each within the lease plus 2 s of the kill; the reapers noticed each lapse
    # within a fraction of a second, and a free worker took the job at once.
    assert max(from_kill for from_kill, _ in takeovers) <= LEASE + 2.0, takeovers
    assert max(from_lapse for _, from_lapse in takeovers) <= 1.0, takeovers
    assert sum(from_lapse for _, from_lapse in takeovers) / KILLS <= 0.5, takeovers
