"""The batch reaper, in process on real Redis: ends nobody acted on, dead builds, old records.

:func:`worker.batches.lifecycle.reap_batches` is what every worker's reaper
thread runs; here it is called directly, with a clock of the test's choosing,
and the messages it queues are read off the broker's lists.  The same end to
end, with a real worker and the API, is ``tests/api/test_batch_reaper.py``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from worker.batches.lifecycle import reap_batches
from worker.batches.model import AssemblyState, Batch, BatchItem, BookInfo, new_batch_id
from worker.batches.store import BatchStore
from worker.celery import create_app
from worker.jobs.model import Job, JobRequest, JobStatus, estimate_billing, new_job_id
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.queues import ASSEMBLE_BATCH, DELIVER_CALLBACK, queue_names
from worker.settings import Settings
from worker.storage.client import Storage

LEASE = 5.0


class Env:
    """Stores, a producer and settings under the test's key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys, storage: Storage, sender: Celery) -> None:
        self.settings = Settings(key_prefix=keys.prefix, job_lease_seconds=LEASE)
        self.redis = client
        self.keys = keys
        self.store = JobStore(client, keys, self.settings.job_ttl_seconds)
        self.batches = BatchStore(client, keys, self.settings.job_ttl_seconds)
        self.storage = storage
        self.sender = sender

    def batch(self, ends: list[JobStatus], callback_url: str | None = None) -> Batch:
        """A stored batch whose items' jobs are in ``ends``, as if their workers had
        recorded the end and died before telling the batch."""
        jobs = []
        batch_id = new_batch_id()
        for _ in ends:
            text = "A short chapter."
            jobs.append(
                Job(
                    id=new_job_id(),
                    tenant="t1",
                    request=JobRequest(text=text),
                    billing=estimate_billing(text, 15.0),
                    batch_id=batch_id,
                )
            )
        batch = Batch(
            id=batch_id,
            tenant="t1",
            items=[
                BatchItem(job_id=j.id, title=f"Part {n}", chars=16, utf8_bytes=16)
                for n, j in enumerate(jobs)
            ],
            book=BookInfo(title="Tides"),
            callback_url=callback_url,
            billing=estimate_billing("x", 15.0),
        )
        self.batches.create(batch)
        for index, (job, end) in enumerate(zip(jobs, ends, strict=True)):
            self.store.create(job, batch_item=index)
            if end is not JobStatus.QUEUED:
                self.store.transition(job.id, JobStatus.RUNNING)
                self.store.transition(job.id, end)
        return batch

    def reap(self, after: float) -> list[str]:
        """One reaper pass ``after`` seconds from now."""
        return reap_batches(
            self.batches,
            self.settings,
            sender=self.sender,
            storage=self.storage,
            now=time.time() + after,
        )

    def messages(self, role: str) -> list[tuple[str, dict[str, Any]]]:
        """(task, kwargs) of the messages waiting on one of the queues, oldest first."""
        name = self.keys.celery_queue(queue_names(self.settings)[role])
        out = []
        for raw in reversed(self.redis.lrange(name, 0, -1)):
            envelope = json.loads(raw)
            _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            out.append((envelope["headers"]["task"], kwargs))
        return out

    def listed(self) -> set[str]:
        return {m.decode() for m in self.redis.zrange(self.keys.batches_open(), 0, -1)}


@pytest.fixture
def env(redis_client: redis.Redis, keys: Keys, storage: Storage) -> Iterator[Env]:
    sender = create_app(Settings(key_prefix=keys.prefix))
    try:
        yield Env(redis_client, keys, storage, sender)
    finally:
        sender.close()


def test_an_end_nobody_acted_on_is_acted_on_once_the_batch_has_been_quiet(env: Env) -> None:
    batch = env.batch([JobStatus.SUCCEEDED, JobStatus.FAILED], "https://example.com/hook")
    assert batch.id in env.listed()
    assert env.reap(after=LEASE / 2) == []  # not quiet long enough: left to the job's own worker
    assert env.reap(after=LEASE + 1) == [batch.id]
    done = env.batches.get(batch.id)
    assert done is not None and done.finished_at is not None
    assert done.assembly.state is AssemblyState.SKIPPED
    ((task, delivery),) = env.messages("callbacks")
    assert task == DELIVER_CALLBACK
    assert delivery["event_type"] == "batch.failed" and delivery["job_id"] == batch.id
    assert json.loads(delivery["body"])["data"]["status"] == "partially_failed"
    # Finished: off the reaper's list, and never reported twice.
    assert batch.id not in env.listed()
    assert env.reap(after=3 * LEASE) == []
    assert len(env.messages("callbacks")) == 1


def test_a_batch_still_running_is_only_looked_at_once_a_lease_period(env: Env) -> None:
    batch = env.batch([JobStatus.SUCCEEDED, JobStatus.QUEUED])
    before = env.redis.get(env.keys.batch(batch.id))
    assert env.reap(after=LEASE + 1) == []
    score = env.redis.zscore(env.keys.batches_open(), batch.id)
    assert score is not None and score > time.time() + LEASE  # marked as looked at then
    assert env.redis.get(env.keys.batch(batch.id)) == before  # looking changes nothing
    assert env.messages("bulk") == [] and env.messages("callbacks") == []
    assert batch.id in env.listed()


def test_a_finished_batch_is_built_and_a_dead_build_is_queued_again(env: Env) -> None:
    batch = env.batch([JobStatus.SUCCEEDED, JobStatus.SUCCEEDED])
    assert env.reap(after=LEASE + 1) == [batch.id]
    build = (ASSEMBLE_BATCH, {"batch_id": batch.id, "generation": 1})
    assert env.messages("bulk") == [build]
    pending = env.batches.get(batch.id)
    assert pending is not None and pending.assembly.state is AssemblyState.PENDING

    def building(b: Batch) -> Batch:
        return b.model_copy(
            update={"assembly": b.assembly.model_copy(update={"state": AssemblyState.BUILDING})}
        )

    # A worker took the build and died: building, and nobody holds the assembly lease.
    env.batches.update(batch.id, building)
    assert env.reap(after=LEASE / 2) == []  # it changed just now: not quiet yet
    assert env.reap(after=LEASE + 1) == [batch.id]
    assert env.messages("bulk") == [build, build]
    # While a live worker holds the lease, the build is left alone ...
    env.batches.update(batch.id, building)
    env.redis.delete(env.keys.batch_requeue(batch.id))  # the last re-queue's claim lapsed
    assert env.batches.acquire_assembly(batch.id, "live", 60)
    assert env.reap(after=LEASE + 1) == []
    assert env.messages("bulk") == [build, build]
    # ... and queued again once that worker is gone.
    env.batches.release_assembly(batch.id, "live")
    assert env.reap(after=2 * LEASE + 2) == [batch.id]
    assert env.messages("bulk") == [build, build, build]


def test_batches_stored_before_the_list_existed_are_put_on_it_once(env: Env) -> None:
    running = env.batch([JobStatus.QUEUED])
    ended = env.batch([JobStatus.FAILED])
    finished = env.batch([JobStatus.SUCCEEDED])
    env.batches.update(finished.id, lambda b: b.model_copy(update={"finished_at": time.time()}))
    env.redis.delete(env.keys.batches_open())  # as an earlier version left them
    assert env.batches.index_open_batches() == 2
    assert env.listed() == {running.id, ended.id}
    assert env.batches.index_open_batches() == 0  # once per deployment
    assert env.reap(after=LEASE + 1) == [ended.id]
