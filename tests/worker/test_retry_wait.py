"""A job waiting out a retry's backoff: it holds no lease, and its retry runs on a free worker.

Real parts: Celery workers in subprocesses, local_tts with scripted faults, moto
S3, Redis.  The case from the fault trials: a worker whose threads are all busy
with long jobs must not sit on another job's due retry (nor on its lease) while
a second worker is free, and the job must not gather extra messages meanwhile.
Also here: messages of an earlier version, and messages a newer one replaced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, sentences
from worker.jobs.model import Job, JobRequest, JobStatus, estimate_billing, new_job_id
from worker.jobs.store import DueReason
from worker.queues import SYNTHESIZE, queue_names

LEASE = 4  # seconds: short, so a lease kept through the backoff would lapse in it
BACKOFF = 20  # retry_base_delay = retry_max_delay: the backoff is 10-20 s after jitter
RECEIVED = re.compile(r"Task shoal\.synthesize\[[^\]]+\] received")
DONE = re.compile(r"Task shoal\.synthesize\[[^\]]+\] (succeeded|retry)")


@pytest.fixture(scope="module")
def slow_tts() -> Iterator[LocalTTS]:
    """About a second of wall time per 50-character segment: jobs that keep a thread busy."""
    with LocalTTS(engine="tone", rtf=0.3, ttfb_ms=20) as server:
        yield server


def _wait_for(what: str, check: Callable[[], bool], timeout: float, st: Stack) -> float:
    """Poll ``check`` every 20 ms; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{st.logs()}")
        time.sleep(0.02)
    return time.monotonic()


def _job(st: Stack, job_id: str) -> Job:
    job = st.store.get(job_id)
    assert job is not None, job_id
    return job


def test_a_due_retry_starts_on_a_free_worker_while_its_own_is_busy(
    make_stack: Stacks, slow_tts: LocalTTS
) -> None:
    st = make_stack(
        slow_tts,
        SHOAL_JOB_LEASE_SECONDS=str(LEASE),
        SHOAL_RETRY_BASE_DELAY=str(BACKOFF),
        SHOAL_RETRY_MAX_DELAY=str(BACKOFF),
        SHOAL_JOB_PARALLEL_SEGMENTS="1",
        SHOAL_VISIBILITY_TIMEOUT="3600",  # redelivery by the broker plays no part
    )
    busy = st.start_worker(concurrency=2)
    # The short job's one segment is refused three times in a row: attempt 1 fails.
    slow_tts.set_faults(
        {"rules": [{"action": "reject", "status": 503, "session": n} for n in (1, 2, 3)]}
    )
    short = st.submit("A short job that fails once.", format="wav")
    failed_at = _wait_for("attempt 1 failed", lambda: _job(st, short.id).error is not None, 30, st)
    ended = re.compile(rf"job {short.id}: attempt ended after .*; retry in ([\d.]+)s")
    _wait_for(
        "the backoff logged", lambda: ended.search(busy.log_path.read_text()) is not None, 10, st
    )
    match = ended.search(busy.log_path.read_text())
    assert match is not None
    due = failed_at + float(match.group(1))
    # The attempt's message is done with, and whatever it queued has been taken by the
    # only worker there is, which had free threads then (as in the fault trials).
    _wait_for("message done", lambda: DONE.search(busy.log_path.read_text()) is not None, 10, st)
    time.sleep(1.0)

    # Two long jobs take both threads of the busy worker; then a free worker starts.
    long_jobs = [st.submit(sentences(40), format="wav") for _ in range(2)]
    _wait_for(
        "both long jobs running",
        lambda: all(_job(st, j.id).attempts == 1 for j in long_jobs),
        30,
        st,
    )
    free = st.start_worker(concurrency=1)
    assert time.monotonic() < due - 1, "the free worker was ready too late to show anything"

    # While it waits for its retry the job holds no lease (nor any other worker's thread).
    assert not st.redis.exists(st.keys.job_lease(short.id))
    started_at = _wait_for("attempt 2", lambda: _job(st, short.id).attempts >= 2, BACKOFF + 30, st)
    assert started_at - due <= 2.0, f"attempt 2 started {started_at - due:.1f}s after it was due"
    done = st.wait(short.id, timeout=30)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    assert f"job {short.id}: attempt 2 started" in free.log_path.read_text()
    for job in long_jobs:  # they have shown what they had to: stop them
        assert _job(st, job.id).status is JobStatus.RUNNING
        assert st.store.transition(job.id, JobStatus.CANCELED)
    for job in long_jobs:
        st.wait(job.id, timeout=30, until=[JobStatus.CANCELED])
    time.sleep(1.0)  # anything still queued for the short job would be taken by now

    logs = busy.log_path.read_text() + free.log_path.read_text()
    # Never re-queued by a reaper while it waited, and one message per attempt: the
    # short job's two, one each for the long jobs.
    assert "its worker is gone" not in logs
    assert "running elsewhere" not in logs
    assert len(RECEIVED.findall(logs)) == 4, logs[-6000:]


def _running_job(st: Stack, text: str = "Short text, said once.") -> Job:
    """A job as a worker that began an attempt left it: running, attempt 1 counted."""
    job = Job(
        id=new_job_id(),
        tenant="t1",
        request=JobRequest(text=text, format="wav"),
        billing=estimate_billing(text, st.settings.price_per_million_bytes_usd),
    )
    st.store.create(job)
    assert st.store.transition(job.id, JobStatus.RUNNING)
    st.store.start_attempt(job.id, max_attempts=5)
    return job


def _send(st: Stack, job_id: str, token: str | None, countdown: float | None = None) -> None:
    """A ``shoal.synthesize`` message sent by name, as any version sends it."""
    kwargs: dict[str, str] = {"job_id": job_id}
    if token is not None:
        kwargs["token"] = token
    queue = queue_names(st.settings)["jobs"]
    st.celery.send_task(SYNTHESIZE, kwargs=kwargs, queue=queue, countdown=countdown)


def test_a_retry_queued_by_an_earlier_version_still_runs(
    make_stack: Stacks, tone_tts: LocalTTS
) -> None:
    """Before, a retry was a countdown message carrying the lease owner, which kept the
    lease through the backoff; such a message, still queued at the upgrade, runs once."""
    st = make_stack(tone_tts, SHOAL_JOB_LEASE_SECONDS=str(LEASE))
    job = _running_job(st)
    owner = "old-host:4242:0123456789ab"
    st.redis.set(st.keys.job_lease(job.id), owner, px=20_000)  # kept through the backoff
    worker = st.start_worker(concurrency=1)
    _send(st, job.id, owner, countdown=1.0)
    done = st.wait(job.id, timeout=30)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    _wait_for("lease given up", lambda: not st.redis.exists(st.keys.job_lease(job.id)), 5, st)
    log = worker.log_path.read_text()
    assert "running elsewhere" not in log and "its worker is gone" not in log
    assert len(RECEIVED.findall(log)) == 1


def test_a_replaced_message_is_dropped_unrun(make_stack: Stacks, tone_tts: LocalTTS) -> None:
    """Once a reaper queued a job with a token, older messages of it (the API's first, a
    redelivery, an earlier re-queue) are dropped without touching the provider."""
    st = make_stack(tone_tts, SHOAL_JOB_LEASE_SECONDS=str(LEASE))
    job = _running_job(st)
    # Its worker died without a trace: due at once, and one reaper claims it.
    st.redis.zadd(st.keys.jobs_leased(), {job.id: 0})
    assert st.store.claim_due(job.id, "old-token", pickup=3600) is DueReason.LAPSED
    st.redis.zadd(st.keys.jobs_due(), {job.id: 0})
    assert st.store.claim_due(job.id, "new-token", pickup=3600) is DueReason.DUE
    worker = st.start_worker(concurrency=1)
    _send(st, job.id, None)
    _send(st, job.id, "old-token")
    dropped = f"job {job.id}: a newer message replaced this one; dropped"
    _wait_for("two dropped", lambda: worker.log_path.read_text().count(dropped) == 2, 20, st)
    assert tone_tts.stats()["sessions_started"] == 0
    assert _job(st, job.id).attempts == 1
    _send(st, job.id, "new-token")
    done = st.wait(job.id, timeout=30)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
