"""Each worker thread keeps one event loop, async Redis client and governor for
every attempt it runs (worker/jobs/loops.py), and no task of one attempt is
left on that loop for the next one: jobs run in this process by a real
:class:`~worker.jobs.runner.JobRunner` on real Redis, moto S3 and local_tts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, sentences
from worker.jobs.loops import ThreadLoops
from worker.jobs.model import Job, JobRequest, JobStatus, estimate_billing, new_job_id
from worker.jobs.runner import JobRunner
from worker.keys import Keys
from worker.settings import Settings


@pytest.fixture
def slow_tts() -> Iterator[LocalTTS]:
    """Half real time: a few segments take long enough to cancel the job midway."""
    with LocalTTS(engine="tone", rtf=0.5, ttfb_ms=10) as server:
        yield server


def _create(stack: Stack, text: str) -> Job:
    job = Job(
        id=new_job_id(),
        tenant="t1",
        request=JobRequest(text=text, cache=False),
        billing=estimate_billing(text, stack.settings.price_per_million_bytes_usd),
    )
    stack.store.create(job)
    return job


def test_attempts_share_the_threads_loop_and_leave_no_task(
    make_stack: Stacks, tone_tts: LocalTTS
) -> None:
    stack = make_stack(tone_tts)
    runner = JobRunner(stack.settings, stack.storage, sender=stack.celery)
    try:
        first = _create(stack, sentences(3))
        assert runner.run(first.id).status is JobStatus.SUCCEEDED
        here = runner.loops.current()
        assert asyncio.all_tasks(here.loop) == set()
        second = _create(stack, "One more sentence.")
        assert runner.run(second.id).status is JobStatus.SUCCEEDED
        assert runner.loops.current() is here  # the same loop, client and governor
        assert asyncio.all_tasks(here.loop) == set()
        assert tone_tts.stats()["sessions_started"] == 4

        # Another thread gets a loop of its own.
        theirs: list[object] = []
        other = _create(stack, "A sentence from another thread.")
        thread = threading.Thread(
            target=lambda: theirs.extend([runner.run(other.id), runner.loops.current()])
        )
        thread.start()
        thread.join(30)
        assert theirs[0].status is JobStatus.SUCCEEDED  # type: ignore[attr-defined]
        assert theirs[1] is not here
    finally:
        runner.close()
    assert here.loop.is_closed()


def test_a_canceled_attempt_leaves_no_task_and_the_loop_works_on(
    make_stack: Stacks, slow_tts: LocalTTS
) -> None:
    stack = make_stack(slow_tts, SHOAL_JOB_PARALLEL_SEGMENTS="2")
    runner = JobRunner(stack.settings, stack.storage, sender=stack.celery)
    try:
        job = _create(stack, sentences(8))  # some 25 s of synthesis at this pace

        def cancel_soon() -> None:
            time.sleep(1.0)
            stack.store.transition(job.id, JobStatus.CANCELED)

        canceler = threading.Thread(target=cancel_soon)
        canceler.start()
        started = time.monotonic()
        assert runner.run(job.id).status is JobStatus.CANCELED
        canceler.join()
        assert time.monotonic() - started < 10
        here = runner.loops.current()
        assert asyncio.all_tasks(here.loop) == set()
        # Nothing of the canceled attempt holds a slot or breaks the next one.
        holders = stack.keys.governor_holders("provider")
        assert stack.redis.zcount(holders, "(0", "+inf") == 0  # no lease; the peak stays
        after = _create(stack, "After the cancel.")
        assert runner.run(after.id).status is JobStatus.SUCCEEDED
        assert runner.loops.current() is here
        assert asyncio.all_tasks(here.loop) == set()
    finally:
        runner.close()


def test_leftover_tasks_finish_or_are_canceled() -> None:
    loops = ThreadLoops(Settings(redis_url="redis://127.0.0.1:1/0"), Keys("loops-test"))
    finished: list[str] = []
    left: list[asyncio.Future[None]] = []

    async def quick() -> None:
        await asyncio.sleep(0.05)
        finished.append("quick")

    async def attempt() -> str:
        left.append(asyncio.ensure_future(quick()))  # a release in flight: gets to finish
        left.append(asyncio.ensure_future(asyncio.sleep(3600)))  # a leak: canceled
        return "done"

    try:
        assert loops.run(attempt()) == "done"
        assert finished == ["quick"]
        assert left[0].done() and not left[0].cancelled() and left[1].cancelled()
        assert asyncio.all_tasks(loops.current().loop) == set()
    finally:
        loops.close()
