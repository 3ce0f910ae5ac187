"""The one lease helper (:mod:`worker.lease`) on real Redis, and a batch build that loses it.

A lease renews itself while held, is reported lost as soon as another owner
holds its key, and a batch build whose lease is taken mid-way stops: no more
uploads, no record, no callback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.worker.test_batch_assembly import Env, env  # noqa: F401  (the fixture)
from worker.batches.model import AssemblyState
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.lease import Lease, LeaseLost, assembly_lease, job_lease

TTL = 0.3  # renewed every 0.1 s


@pytest.fixture
def store(redis_client: redis.Redis, keys: Keys) -> JobStore:
    return JobStore(redis_client, keys, 3600)


def _wait(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)


def test_a_held_lease_outlives_its_ttl_while_renewed(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    lease = job_lease(store, "job-1", TTL)
    other = job_lease(store, "job-1", TTL)
    assert lease.acquire()
    assert not other.acquire()  # one owner at a time
    with lease.renewing():
        time.sleep(4 * TTL)
        assert redis_client.get(keys.job_lease("job-1")) == lease.owner.encode()
        assert lease.held()
    assert not lease.lost.is_set()
    lease.release()
    assert redis_client.get(keys.job_lease("job-1")) is None
    assert other.acquire()


def test_without_renewal_a_lease_lapses(store: JobStore) -> None:
    lease = job_lease(store, "job-2", TTL)
    assert lease.acquire()
    time.sleep(2 * TTL)
    assert job_lease(store, "job-2", TTL).acquire()  # a dead worker's job is free again
    assert not lease.held()
    assert lease.lost.is_set()


def test_a_taken_lease_is_reported_lost(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    lease = job_lease(store, "job-3", TTL)
    assert lease.acquire()
    with lease.renewing():
        redis_client.set(keys.job_lease("job-3"), "thief", px=10_000)
        _wait(lease.lost.is_set)  # noticed by the renewer, without being asked
        assert not lease.held()
        with pytest.raises(LeaseLost, match="lease lost"):
            lease.check()
    lease.release()  # not ours: left alone
    assert redis_client.get(keys.job_lease("job-3")) == b"thief"


def test_a_retry_takes_back_the_lease_it_kept(store: JobStore) -> None:
    first = job_lease(store, "job-4", TTL)
    assert first.acquire()
    assert first.extend(10)  # kept through a backoff
    again = job_lease(store, "job-4", TTL, owner=first.owner)  # the retry inherits the token
    assert again.acquire()
    assert not job_lease(store, "job-4", TTL).acquire()


@pytest.mark.integration  # connects (to nothing)
def test_redis_out_of_reach_is_not_a_loss(keys: Keys) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = redis.Redis(port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    lease = job_lease(JobStore(gone, keys, 3600), "job-5", TTL)
    with lease.renewing():
        time.sleep(2 * TTL)  # renewals fail: warnings, not a loss
        assert lease.held()
    assert not lease.lost.is_set()
    assert not lease.extend(10)
    lease.release()  # does not raise: the lease lapses on its own


def test_a_lease_needs_a_ttl() -> None:
    with pytest.raises(ValueError):
        Lease("x", 0, acquire=lambda o, t: True, renew=lambda o, t: True, release=print)


# -- the batch builder stops when it loses its lease ----------------------------------


@pytest.mark.parametrize("when", ["download_file", "upload_file"])
def test_a_build_whose_lease_is_taken_stops_without_writing(
    env: Env,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """The lease is taken while the chapters' sections are fetched, or once the book is
    uploaded: the build stops there — no (further) upload, no record, no callback."""
    batch = env.batch([2.0, 2.0])
    lease_key = env.keys.batch_assembly_lease(batch.id)
    real = getattr(env.storage, when)
    calls: list[str] = []

    def then_taken(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not calls:  # another worker takes the build over
            env.store.redis.set(lease_key, "another-worker", px=10_000)
        calls.append(when)
        return result

    monkeypatch.setattr(env.storage, when, then_taken)
    assert env.build(batch) == "lost"

    prefix = f"t/{batch.id}/v1/"
    assert not env.storage.exists(f"{prefix}manifest.json")
    if when == "download_file":
        # The kept sections are fetched together (reads only); nothing is joined after.
        assert calls == ["download_file"] * 2
        assert not env.storage.exists(f"{prefix}book.m4b")
    now = env.batches.get(batch.id)
    assert now is not None
    assert now.assembly.state is AssemblyState.BUILDING  # the new owner will record it
    assert now.assembly.combined is None and now.assembly.manifest is None
    assert env.messages("callbacks") == []
    assert env.store.redis.get(lease_key) == b"another-worker"  # not released by the loser

    # Once the other worker is gone (its lease lapsed), a build finishes the job.
    env.store.redis.delete(lease_key)
    monkeypatch.undo()
    assert env.build(batch) == "built"


def test_the_assembly_lease_is_one_builder_at_a_time(env: Env) -> None:  # noqa: F811
    batch = env.batch([2.0])
    first = assembly_lease(env.batches, batch.id, TTL)
    assert first.acquire()
    assert not assembly_lease(env.batches, batch.id, TTL).acquire()
    assert env.build(batch) == "skipped"
    first.release()
    assert env.build(batch) == "built"


def test_a_job_lease_answers_from_a_recent_renewal_without_asking() -> None:
    asked: list[float] = []

    def renew(who: str, seconds: float) -> bool:
        asked.append(seconds)
        return True

    def lease(trust: bool) -> Lease:
        return Lease(
            "job-6",
            0.3,
            acquire=lambda who, seconds: True,
            renew=renew,
            release=lambda who: None,
            trust_renewals=trust,
        )

    trusting = lease(True)
    assert trusting.acquire()
    assert trusting.held() and trusting.held()
    assert asked == []  # within a third of the TTL of the acquisition: no round trip
    time.sleep(0.15)
    assert trusting.held()
    assert asked == [0.3]  # past it: asked (and renewed) again
    wary = lease(False)
    assert wary.acquire() and wary.held()
    assert asked == [0.3, 0.3]


def test_a_lease_given_up_with_the_work_is_not_lost_nor_released_again() -> None:
    """The store may give a lease up in the script that records the work's end: the
    renewer takes the key's going for no loss, and nothing is released after it."""
    held = [True]
    released: list[str] = []
    lease = Lease(
        "job-7",
        0.15,  # renewed every 0.05 s
        acquire=lambda who, seconds: False,
        renew=lambda who, seconds: held[0],
        release=released.append,
        trust_renewals=True,
    )
    lease.taken(time.monotonic())  # the store took it in a step of the work's own
    assert lease.held()
    with lease.renewing():
        with lease.giving_up():
            held[0] = False  # the end's script gave it up
            time.sleep(0.2)  # renewals meanwhile find it gone
            lease.given_up()
        time.sleep(0.1)
    assert not lease.lost.is_set()
    assert not lease.held()
    lease.release()
    assert released == []


def test_a_lease_the_end_did_not_give_up_is_still_watched() -> None:
    held = [True]
    lease = Lease(
        "job-8",
        0.15,
        acquire=lambda who, seconds: True,
        renew=lambda who, seconds: held[0],
        release=lambda who: None,
    )
    assert lease.acquire()
    with lease.renewing():
        with lease.giving_up():
            pass  # the end was refused: the lease is still the work's
        held[0] = False  # then another takes it
        _wait(lease.lost.is_set)
