"""The provider concurrency governor: a fair, leased, distributed semaphore in Redis.

Every worker process on every machine asks the governor before it opens a
provider session, so together they never hold more than ``limit`` sessions —
the account's concurrency limit (``Settings.provider_slots``)::

    governor = Governor(redis_async_client, keys, limit=5, lease_seconds=30)
    async with governor.slot(owner="host:pid:job", priority=job.request.priority):
        ...  # one provider session

How it works (keys in :class:`worker.keys.Keys`, all times the Redis server's):

* One acquire script does everything.  With nobody queued it counts the
  live (unexpired) leases and grants a free slot at once.  With a queue it
  first drops expired holder leases and waiters not seen for
  ``stale_seconds`` (a crashed waiter must not block the queue).
  A caller that gets no slot at once takes a ticket and joins a queue: a sorted set scored
  by ticket, so the queue is FIFO; a higher ``priority`` goes ahead of every
  lower one (FIFO within a priority).  A slot is granted only if fewer than
  ``limit`` are held *and* the waiter is among the first ``limit − held``
  live waiters.  A slow waiter that was dropped rejoins at its old place.
* Slots are handed over, not found by polling: a waiter not granted blocks
  (``BLPOP``) on a wake-up list of its own.  Whoever leaves — a holder giving
  its slot back, a waiter giving up — pushes a wake-up to the first waiters in
  line, as many as slots are free, and they ask again at once.  (A holder
  gives its slot back and looks at the queue with two plain commands; the
  wake-up script runs only when someone waits.)  A waiter also
  asks again after ``heartbeat`` seconds (which keeps it "seen"), and when the
  earliest holder lease expires (a crashed holder sends no wake-up).
* A holder's lease (a sorted set of lease id → expiry) is renewed every
  ``lease_seconds / 3`` while the body runs and removed when it exits, even on
  exceptions and cancellation.  A crashed worker's slot frees itself after
  ``lease_seconds``.
* The most slots ever held at once (:meth:`Governor.peak`, for metrics and
  benchmarks) is the member ``peak`` of the same sorted set, scored minus the
  peak: the grant's one ``ZADD … LT`` adds the lease and keeps the peak.  Its
  score is never above zero, so counting live leases (expiries after now) or
  every lease (scores above zero) leaves it out.

The limit is not stored in Redis: each caller enforces the one it passes.  If
workers are configured with different limits, one with a higher limit may take
slots up to its own limit — configure every worker alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from worker.keys import Keys

log = logging.getLogger(__name__)

#: Queue positions are ``ticket - priority * PRIORITY_STEP``: exact in a double
#: for 2**40 tickets and priorities up to ±MAX_PRIORITY.
PRIORITY_STEP = 2**40
MAX_PRIORITY = 1000

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: holders (with the peak), waiters, seen, ticket.
# ARGV: id, limit, lease ms, stale ms, queue score ('' before the first ticket),
# priority offset (priority * PRIORITY_STEP).
# Returns {granted (0/1), holders, queue score or '', ms until the earliest lease expires or -1}.
_ACQUIRE = (
    _NOW_MS
    + """
local id, limit = ARGV[1], tonumber(ARGV[2])
local queued = redis.call('ZCARD', KEYS[2])
local holders
if queued == 0 then
  -- Nobody waits: count the live leases; lapsed ones are dropped once there is a queue.
  holders = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
else
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '(0', now)
  local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
  if #stale > 0 then
    for _, waiter in ipairs(stale) do redis.call('ZREM', KEYS[2], waiter) end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
    queued = redis.call('ZCARD', KEYS[2])
  end
  holders = redis.call('ZCOUNT', KEYS[1], '(0', '+inf')
end
local score = ARGV[5]
if queued > 0 or holders >= limit then
  if score == '' then
    score = string.format('%.0f', redis.call('INCR', KEYS[4]) - tonumber(ARGV[6]))
  end
  redis.call('ZADD', KEYS[2], 'NX', score, id)
  redis.call('ZADD', KEYS[3], now, id)
  if holders >= limit or redis.call('ZRANK', KEYS[2], id) >= limit - holders then
    local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return {0, holders, score, first[2] and (tonumber(first[2]) - now) or -1}
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
holders = holders + 1
-- LT keeps the lowest score, so the highest peak; a new lease is added regardless.
redis.call('ZADD', KEYS[1], 'LT', now + tonumber(ARGV[3]), id, -holders, 'peak')
return {1, holders, score, -1}
"""
)

# KEYS: holders.  ARGV: id, lease ms.  Renews only a lease that is still there.
_RENEW = (
    _NOW_MS
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

# KEYS: holders, waiters, seen.  ARGV: id, limit, wake-up key prefix, wake-up ttl ms,
# '1' if it may still be queued, '1' if it already left and saw a queue.  Leaves the
# queue, gives up the slot, and wakes as many waiters at the head of the queue as
# slots are free.
_LEAVE = """
if ARGV[6] ~= '1' then
  if ARGV[5] == '1' then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
  redis.call('ZREM', KEYS[1], ARGV[1])
  if redis.call('ZCARD', KEYS[2]) == 0 then return 0 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free = tonumber(ARGV[2]) - redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if free > 0 then
  for _, waiter in ipairs(redis.call('ZRANGE', KEYS[2], 0, free - 1)) do
    redis.call('RPUSH', ARGV[3] .. waiter, 1)
    redis.call('PEXPIRE', ARGV[3] .. waiter, ARGV[4])
  end
end
return 0
"""

# KEYS: holders.  Live (unexpired) holders.
_IN_USE = _NOW_MS + "return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')"

# KEYS: holders.  Restart peak tracking from the current use.
_RESET_PEAK = (
    _NOW_MS
    + """
local live = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
redis.call('ZADD', KEYS[1], -live, 'peak')
return live
"""
)


@dataclass(frozen=True, slots=True)
class Slot:
    """A held provider slot."""

    lease_id: str  # member of the holders set; unique per acquisition
    owner: str  # who holds it, for logs and debugging
    waited: float  # seconds spent queueing
    holders: int  # slots held (this one included) when it was granted


class Governor:
    """Caps provider sessions across all workers; see the module docstring.

    A waiter not woken asks again every ``heartbeat`` seconds; waiters
    silent for ``stale_seconds`` (default three heartbeats) are dropped.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        keys: Keys,
        name: str = "provider",
        *,
        limit: int,
        lease_seconds: float,
        heartbeat: float = 1.0,
        stale_seconds: float | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.redis = redis
        self.keys = keys
        self.name = name
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.heartbeat = heartbeat
        self.stale_seconds = stale_seconds or 3 * heartbeat
        self._holders = keys.governor_holders(name)
        self._waiters = keys.governor_waiters(name)
        self._seen = keys.governor_waiter_seen(name)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._leave = redis.register_script(_LEAVE)
        self._in_use = redis.register_script(_IN_USE)
        self._reset_peak = redis.register_script(_RESET_PEAK)
        self._owns_client = False
        self._cleanups: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(
        cls, url: str, keys: Keys, name: str = "provider", *, limit: int, lease_seconds: float
    ) -> Governor:
        """A governor with its own asyncio client; close it with :meth:`aclose`."""
        governor = cls(
            redis.asyncio.Redis.from_url(url), keys, name, limit=limit, lease_seconds=lease_seconds
        )
        governor._owns_client = True
        return governor

    async def aclose(self) -> None:
        """Close the client if :meth:`from_url` made it."""
        if self._owns_client:
            await self.redis.aclose()

    @asynccontextmanager
    async def slot(self, owner: str, priority: int = 0) -> AsyncIterator[Slot]:
        """Wait for a slot (fairly), hold it — renewed — for the body, then give it back.

        Higher ``priority`` waiters are served first; equal ones in arrival order.
        Redis errors while waiting propagate (after leaving the queue).
        """
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be within ±{MAX_PRIORITY}")
        slot = await self._wait_for_slot(owner, priority)
        renewer = asyncio.create_task(self._keep_alive(slot))
        try:
            yield slot
        finally:
            # Not awaited: a cancellation arriving here must not skip the release.
            renewer.cancel()
            await self._cleanup(self._give_up(slot.lease_id, queued=False))
            log.debug("governor %s: %s released %s", self.name, owner, slot.lease_id)

    async def in_use(self) -> int:
        """Slots held right now (unexpired leases), by every worker."""
        return int(await self._in_use(keys=[self._holders]))

    async def peak(self) -> int:
        """The most slots ever held at once (since the last :meth:`reset_peak`)."""
        value = await self.redis.zscore(self._holders, "peak")
        return -int(value or 0)

    async def reset_peak(self) -> None:
        """Start peak tracking afresh from the slots held now."""
        await self._reset_peak(keys=[self._holders])

    # -- internals ---------------------------------------------------------------

    async def _wait_for_slot(self, owner: str, priority: int) -> Slot:
        lease_id = f"{owner}:{uuid.uuid4().hex[:12]}"
        args: list[str | int] = [
            lease_id,
            self.limit,
            max(1, int(self.lease_seconds * 1000)),
            max(1, int(self.stale_seconds * 1000)),
            "",  # no ticket yet: taken by the script if the caller has to queue
            priority * PRIORITY_STEP,
        ]
        keys = [self._holders, self._waiters, self._seen, self.keys.governor_ticket(self.name)]
        wake = self.keys.governor_wake(self.name, lease_id)
        started = time.monotonic()
        try:
            while True:
                granted, holders, score, expires_ms = await self._acquire(keys=keys, args=args)
                if granted:
                    waited = time.monotonic() - started
                    log.debug(
                        "governor %s: %s got a slot after %.3fs (%d/%d held)",
                        self.name, owner, waited, holders, self.limit,
                    )  # fmt: skip
                    return Slot(lease_id, owner, waited, int(holders))
                args[4] = score.decode() if isinstance(score, bytes) else str(score)
                timeout = self.heartbeat
                if int(expires_ms) >= 0:  # ask again when the first lease may have lapsed
                    timeout = min(timeout, int(expires_ms) / 1000 + 0.005)
                # Seconds as a float: Redis 6 and later block for fractions of a second.
                await self.redis.blpop([wake], timeout=max(timeout, 0.01))
        except BaseException:
            # Canceled or failed while queueing — possibly just after a grant whose
            # reply never arrived: leave the queue and any slot, so neither is blocked.
            await self._cleanup(self._give_up(lease_id, queued=True))
            raise

    async def _keep_alive(self, slot: Slot) -> None:
        """Renew the lease every third of its life until canceled."""
        lease_ms = max(1, int(self.lease_seconds * 1000))
        warned = False
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = await self._renew(keys=[self._holders], args=[slot.lease_id, lease_ms])
            except redis.RedisError as exc:
                log.warning("governor %s: renewing %s failed: %s", self.name, slot.lease_id, exc)
                continue
            if not renewed and not warned:
                # Another worker may use the slot now; the session in flight still
                # finishes rather than failing a job over bookkeeping.
                log.warning(
                    "governor %s: lease %s expired before renewal (event loop stalled "
                    "longer than %.1fs?); carrying on",
                    self.name, slot.lease_id, self.lease_seconds,
                )  # fmt: skip
                warned = True

    async def _give_up(self, lease_id: str, *, queued: bool) -> None:
        """Leave the queue (if ``queued``) and the slot; wake the next waiters in line.

        A holder leaving (not ``queued``) first gives the slot back and looks at
        the queue in one pipeline of two plain commands, in that order: a waiter
        that queued before the slot came back is seen, and one that asks after
        it finds the slot free.  Only when someone waits does the script run,
        to wake them: an uncontended release costs two commands, not three.
        """
        args: list[str | int] = [
            lease_id,
            self.limit,
            self.keys.governor_wake(self.name),
            max(1000, int(self.stale_seconds * 1000)),
            "1" if queued else "0",
            "0",
        ]
        if not queued:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self._holders, lease_id)
                pipe.zcard(self._waiters)
                _, waiting = await pipe.execute()
            if not waiting:
                return
            args[5] = "1"  # left already, and someone waits
        await self._leave(keys=[self._holders, self._waiters, self._seen], args=args)

    async def _cleanup(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` to the end even if the caller is canceled meanwhile."""
        task = asyncio.ensure_future(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanup_done)
        # A failure is logged by _cleanup_done; an unreleased lease expires on its own.
        with contextlib.suppress(redis.RedisError):
            await asyncio.shield(task)

    def _cleanup_done(self, task: asyncio.Task[Any]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "governor %s: could not release a slot (it expires after %.1fs): %s",
                self.name, self.lease_seconds, task.exception(),
            )  # fmt: skip
