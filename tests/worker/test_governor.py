"""The provider governor against a real Redis: the cap, fairness, crashes and cancellation.

Cross-process tests run real subprocesses (one is killed with SIGKILL); a
"stalled" worker is a thread whose event loop is blocked, so its lease is not
renewed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio

from worker.jobs.governor import Governor
from worker.keys import Keys

REPO_ROOT = Path(__file__).resolve().parents[2]

GovernorFactory = Callable[..., Governor]


@pytest.fixture
def make_governor(async_redis_client: redis.asyncio.Redis, keys: Keys) -> GovernorFactory:
    def make(limit: int = 3, lease_seconds: float = 1.0) -> Governor:
        return Governor(async_redis_client, keys, limit=limit, lease_seconds=lease_seconds)

    return make


class Tally:
    """Slots held in this process right now, and the most ever."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.order: list[str] = []

    def enter(self, name: str) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        self.order.append(name)

    def exit(self) -> None:
        self.now -= 1


async def test_never_more_than_limit_and_slots_stay_busy(make_governor: GovernorFactory) -> None:
    governor = make_governor(limit=3)
    tally, hold = Tally(), 0.15

    async def work(i: int) -> None:
        async with governor.slot(f"task{i}"):
            tally.enter(f"task{i}")
            await asyncio.sleep(hold)
            tally.exit()

    started = time.monotonic()
    await asyncio.gather(*(work(i) for i in range(20)))
    elapsed = time.monotonic() - started
    assert tally.most == 3
    assert await governor.peak() == 3
    assert await governor.in_use() == 0
    # 7 rounds of `hold` when slots never idle; allow each hand-over a couple of polls.
    assert elapsed < 7 * hold + 7 * 0.12 + 0.5, elapsed
    assert elapsed >= 7 * hold * 0.95


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    import redis
    from worker.jobs.governor import Governor
    from worker.keys import Keys

    url, prefix, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    keys = Keys(prefix)

    async def main():
        governor = Governor.from_url(url, keys, limit=int(sys.argv[4]), lease_seconds=1.0)
        sync = redis.Redis.from_url(url)
        current, seen = f"{prefix}:test:current", f"{prefix}:test:seen"

        async def work(i):
            async with governor.slot(f"{mode}-{i}"):
                sync.rpush(seen, sync.incr(current))
                await asyncio.sleep(0.15)
                sync.decr(current)

        print("ready", flush=True)
        if mode == "hold":
            async with governor.slot("holder"):
                print("held", flush=True)
                await asyncio.sleep(60)
        while not sync.exists(f"{prefix}:test:go"):
            time.sleep(0.01)
        await asyncio.gather(*(work(i) for i in range(10)))
        await governor.aclose()

    asyncio.run(main())
    """
)


def spawn(redis_url: str, keys: Keys, mode: str, limit: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, keys.prefix, mode, str(limit)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def test_limit_holds_across_processes(
    redis_url: str, keys: Keys, redis_client: redis.Redis
) -> None:
    children = [spawn(redis_url, keys, f"p{n}", limit=3) for n in range(2)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        started = time.monotonic()
        redis_client.set(f"{keys.prefix}:test:go", 1)
        for child in children:
            assert child.wait(timeout=20) == 0
        elapsed = time.monotonic() - started
    finally:
        for child in children:
            child.kill()
            child.wait()
    seen = [int(v) for v in redis_client.lrange(f"{keys.prefix}:test:seen", 0, -1)]
    assert len(seen) == 20
    assert max(seen) == 3
    assert -int(redis_client.zscore(keys.governor_holders(), "peak") or 0) == 3
    assert elapsed < 7 * 0.15 + 7 * 0.12 + 1.0, elapsed


async def test_waiters_are_served_in_arrival_order(make_governor: GovernorFactory) -> None:
    governor = make_governor(limit=1)
    tally, release = Tally(), asyncio.Event()

    async def holder() -> None:
        async with governor.slot("holder"):
            await release.wait()

    async def work(name: str, priority: int = 0) -> None:
        async with governor.slot(name, priority=priority):
            tally.enter(name)
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(holder())]
    while await governor.in_use() == 0:
        await asyncio.sleep(0.01)
    names = [f"w{i}" for i in range(8)]
    for name in names:
        tasks.append(asyncio.create_task(work(name)))
        await asyncio.sleep(0.02)  # each takes its ticket before the next arrives
    tasks.append(asyncio.create_task(work("urgent", priority=5)))
    await asyncio.sleep(0.02)
    release.set()
    await asyncio.gather(*tasks)
    assert tally.order == ["urgent", *names]


async def test_crashed_process_frees_its_slot_after_the_lease(
    redis_url: str, keys: Keys, make_governor: GovernorFactory
) -> None:
    child = spawn(redis_url, keys, "hold", limit=1)
    try:
        assert child.stdout is not None
        assert [child.stdout.readline().strip() for _ in range(2)] == ["ready", "held"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5)
    finally:
        child.kill()
        child.wait()
    governor = make_governor(limit=1, lease_seconds=1.0)
    assert await governor.in_use() == 1  # the dead worker's lease is still there...
    started = time.monotonic()
    async with governor.slot("survivor"):
        waited = time.monotonic() - started
    assert 0.3 < waited < 1.5, waited  # ...until it expires, one lease period at most


def run_stalled_holder(
    redis_url: str, keys: Keys, held: threading.Event, stall: float, after: float
) -> None:
    """Hold a slot in a thread's own loop, then block that loop so nothing renews the lease."""

    async def main() -> None:
        governor = Governor.from_url(redis_url, keys, limit=1, lease_seconds=0.6)
        async with governor.slot("stalled"):
            held.set()
            time.sleep(stall)  # a blocked event loop: the renewer cannot run
            await asyncio.sleep(after)  # now it runs and finds the lease gone
        await governor.aclose()

    asyncio.run(main())


async def test_stalled_holder_loses_its_lease_and_is_warned(
    redis_url: str, keys: Keys, make_governor: GovernorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.jobs.governor")
    held = threading.Event()
    thread = threading.Thread(target=run_stalled_holder, args=(redis_url, keys, held, 1.2, 0.4))
    thread.start()
    await asyncio.to_thread(held.wait, 5)
    governor = make_governor(limit=1, lease_seconds=0.6)
    started = time.monotonic()
    async with governor.slot("next"):
        waited = time.monotonic() - started
    await asyncio.to_thread(thread.join, 10)
    assert waited < 1.1, waited  # the lease expired; the stall did not block the slot
    assert any("expired before renewal" in r.getMessage() for r in caplog.records)


async def test_lease_is_renewed_while_the_body_runs(make_governor: GovernorFactory) -> None:
    governor = make_governor(limit=1, lease_seconds=0.4)
    held = asyncio.Event()

    async def long_holder() -> None:
        async with governor.slot("long"):
            held.set()
            await asyncio.sleep(1.2)  # three lease periods

    task = asyncio.create_task(long_holder())
    await held.wait()
    started = time.monotonic()
    async with governor.slot("next"):
        waited = time.monotonic() - started
    await task
    assert waited > 1.0, waited


async def test_cancelled_holder_releases_its_slot(make_governor: GovernorFactory) -> None:
    governor = make_governor(limit=1, lease_seconds=5.0)
    held = asyncio.Event()

    async def holder() -> None:
        async with governor.slot("doomed"):
            held.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(holder())
    await held.wait()
    assert await governor.in_use() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await governor.in_use() == 0
    started = time.monotonic()
    async with governor.slot("next"):
        assert time.monotonic() - started < 0.3


async def test_cancelled_waiter_leaves_the_queue(
    make_governor: GovernorFactory, async_redis_client: redis.asyncio.Redis, keys: Keys
) -> None:
    # A long stale timeout: only leaving the queue explicitly can unblock the next waiter.
    governor = Governor(async_redis_client, keys, limit=1, lease_seconds=5.0, stale_seconds=30)
    release, order = asyncio.Event(), []

    async def holder() -> None:
        async with governor.slot("holder"):
            await release.wait()

    async def work(name: str) -> None:
        async with governor.slot(name):
            order.append((name, time.monotonic()))

    first = asyncio.create_task(holder())
    while await governor.in_use() == 0:
        await asyncio.sleep(0.01)
    quitter = asyncio.create_task(work("quitter"))
    await asyncio.sleep(0.05)
    patient = asyncio.create_task(work("patient"))
    await asyncio.sleep(0.05)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert await async_redis_client.zcard(keys.governor_waiters()) == 1
    released = time.monotonic()
    release.set()
    await asyncio.gather(first, patient)
    assert [name for name, _ in order] == ["patient"]
    assert order[0][1] - released < 0.3


async def test_reset_peak(make_governor: GovernorFactory) -> None:
    governor = make_governor(limit=2)
    async with governor.slot("a"), governor.slot("b"):
        assert await governor.in_use() == 2
    assert await governor.peak() == 2
    async with governor.slot("c"):
        await governor.reset_peak()
        assert await governor.peak() == 1
    assert await governor.in_use() == 0


async def test_the_peak_is_kept_beside_the_leases_and_counted_as_none(
    make_governor: GovernorFactory, async_redis_client: redis.asyncio.Redis, keys: Keys
) -> None:
    """The peak is a member of the holders' set (one ZADD keeps both), scored at or
    below zero: neither the metrics' count of live leases nor a count of every
    lease sees it."""
    governor = make_governor(limit=2)
    holders = keys.governor_holders()
    async with governor.slot("a"), governor.slot("b"):
        now_ms = int(time.time() * 1000)
        assert await async_redis_client.zcount(holders, now_ms, "+inf") == 2
        assert await async_redis_client.zcount(holders, "(0", "+inf") == 2
    assert await async_redis_client.zcount(holders, "(0", "+inf") == 0
    assert await governor.peak() == 2
    async with governor.slot("c"):  # one slot: the peak stays the highest
        assert await governor.peak() == 2


def test_rejects_bad_arguments(make_governor: GovernorFactory) -> None:
    with pytest.raises(ValueError):
        make_governor(limit=0)
    with pytest.raises(ValueError):
        make_governor(lease_seconds=0)


async def test_a_release_hands_the_slot_over_at_once(
    async_redis_client: redis.asyncio.Redis, keys: Keys
) -> None:
    # Waiters that would ask again only after 30 s (and a lease of 20 s): only the
    # release's wake-up can bring the slot to the next in line this soon.
    governor = Governor(async_redis_client, keys, limit=1, lease_seconds=20.0, heartbeat=30.0)
    release, got = asyncio.Event(), []

    async def holder() -> None:
        async with governor.slot("holder"):
            await release.wait()

    async def waiter(name: str) -> None:
        async with governor.slot(name):
            got.append((name, time.monotonic()))
            await asyncio.sleep(0.05)

    first = asyncio.create_task(holder())
    while await governor.in_use() == 0:
        await asyncio.sleep(0.01)
    waiters = []
    for i in range(3):  # each queued before the next arrives
        waiters.append(asyncio.create_task(waiter(f"w{i}")))
        while await async_redis_client.zcard(keys.governor_waiters()) <= i:
            await asyncio.sleep(0.01)
    released = time.monotonic()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiters), timeout=5)
    assert [name for name, _ in got] == ["w0", "w1", "w2"]
    # Each hand-over within a round trip or two, not a heartbeat or a lease.
    assert got[-1][1] - released < 0.05 * 3 + 0.5
    assert await async_redis_client.exists(keys.governor_wake("provider", "x")) == 0
