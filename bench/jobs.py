"""Submitting benchmark jobs and timing them from the job records.

Job timestamps (``started_at``, ``finished_at``) come from the Redis server's
clock; :class:`Clock` maps them onto this process's ``time.time()`` so a wall
time is "submitted here → marked succeeded there".  Waiting uses the status
indexes (one ``ZMSCORE`` per poll), not a read of every record, so polling
costs the machine next to nothing while the worker runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from tests.stack import Stack
from worker.jobs.model import TERMINAL, Job, JobStatus


@dataclass(frozen=True, slots=True)
class Clock:
    """Redis server time minus local ``time.time()``."""

    offset: float

    @classmethod
    def of(cls, client: redis.Redis) -> Clock:
        best: tuple[float, float] | None = None
        for _ in range(5):  # the tightest round trip gives the best estimate
            before = time.time()
            seconds, micros = client.time()
            after = time.time()
            guess = (after - before, seconds + micros / 1e6 - (before + after) / 2)
            if best is None or guess[0] < best[0]:
                best = guess
        assert best is not None
        return cls(best[1])

    def local(self, redis_time: float) -> float:
        return redis_time - self.offset


def wait_all(stack: Stack, job_ids: list[str], timeout: float, poll: float = 0.05) -> list[Job]:
    """Wait until every job is terminal; the records; raise unless all succeeded."""
    deadline = time.monotonic() + timeout
    indexes = [stack.keys.jobs_by_status(s.value) for s in TERMINAL]
    while True:
        finished = 0
        for index in indexes:
            scores = stack.redis.zmscore(index, job_ids)
            finished += sum(score is not None for score in scores)
        if finished >= len(job_ids):
            break
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-3000:] for w in stack.workers)
            raise TimeoutError(
                f"{len(job_ids) - finished} of {len(job_ids)} jobs unfinished "
                f"after {timeout:.0f}s\n{logs}"
            )
        time.sleep(poll)
    jobs = [stack.store.get(job_id) for job_id in job_ids]
    failed = [j for j in jobs if j is None or j.status is not JobStatus.SUCCEEDED]
    if failed:
        first = failed[0]
        why = first.error if first is not None else "record missing"
        raise RuntimeError(f"{len(failed)} of {len(jobs)} jobs did not succeed: {why}")
    return [j for j in jobs if j is not None]


@dataclass(frozen=True, slots=True)
class JobTiming:
    """One job's wall time and where it went (seconds, local clock)."""

    job: Job
    submitted_at: float  # time.time() just before the submit
    wall: float  # submit → succeeded
    pickup: float  # submit → running (queue and task start)
    synthesis: float  # running → every segment checkpointed
    finish: float  # last checkpoint → succeeded (assembly, upload, bookkeeping)

    @property
    def synthesized_at(self) -> float:
        """``time.time()`` when the last segment was checkpointed."""
        return self.submitted_at + self.pickup + self.synthesis


def timed_job(
    stack: Stack, text: str, clock: Clock, timeout: float, poll: float = 0.02, **request: Any
) -> JobTiming:
    """Submit one job, follow its progress, and time its phases."""
    # The figures measure synthesis: a repeated text must not come from the segment cache.
    request.setdefault("cache", False)
    t0 = time.time()
    submitted = stack.submit(text, **request)
    deadline = time.monotonic() + timeout
    synthesized: float | None = None
    while True:
        job = stack.store.get(submitted.id)
        if job is not None and job.status in TERMINAL:
            break
        progress = job.progress if job is not None else None
        if (
            synthesized is None
            and progress is not None
            and progress.segments_total
            and progress.segments_done == progress.segments_total
        ):
            synthesized = time.time()
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-3000:] for w in stack.workers)
            raise TimeoutError(f"job {submitted.id} unfinished after {timeout:.0f}s\n{logs}")
        time.sleep(poll)
    if job.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"job {job.id} {job.status}: {job.error}")
    assert job.started_at is not None and job.finished_at is not None
    started, finished = clock.local(job.started_at), clock.local(job.finished_at)
    synthesized = min(synthesized or finished, finished)
    return JobTiming(
        job=job,
        submitted_at=t0,
        wall=finished - t0,
        pickup=started - t0,
        synthesis=synthesized - started,
        finish=finished - synthesized,
    )
