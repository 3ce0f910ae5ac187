"""Per-tenant limits, in Redis so every API process shares them.

* :class:`RequestRate` — requests per minute, a sliding window estimated from
  two fixed one-minute counters (the previous minute's count weighted by how
  much of it still overlaps the last 60 s), checked and counted in one script.
* :class:`InFlight` — jobs queued or running: a set of job ids per tenant that
  admits a new one only below the limit (atomically), and drops finished or
  expired jobs when it is full.

Idempotency-Key claims, also per tenant and in Redis, are :mod:`api.idempotency`'s.

All key names come from :class:`worker.keys.Keys`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker.jobs.model import JobStatus
from worker.keys import Keys

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60

# KEYS: this window's counter, the previous window's.  ARGV: limit, elapsed share, ttl.
# Returns {admitted (0/1), this window's count, previous window's count}.
_RATE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * (1 - tonumber(ARGV[2])) + cur + 1 > tonumber(ARGV[1]) then
  return {0, cur, prev}
end
cur = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, cur, prev}
"""

# KEYS: the tenant's in-flight set.  ARGV: limit, score, job id.  Returns 1 if admitted.
_RESERVE = """
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer of a limit: admitted, or when to try again (seconds)."""

    admitted: bool
    retry_after: int = 0


def _rate_retry_after(limit: int, cur: int, prev: int, elapsed: float) -> int:
    """Seconds until one more request fits under the sliding-window estimate."""
    w = WINDOW_SECONDS
    if cur + 1 <= limit and prev > 0:
        # Within this window: wait until prev·(1−f) + cur + 1 ≤ limit.
        share = 1 - (limit - cur - 1) / prev
        return max(1, math.ceil((share - elapsed) * w))
    # Only the next window can admit it: there prev' = cur, and cur' starts at 0.
    share = 1 - (limit - 1) / cur if cur > 0 else 0.0
    return max(1, math.ceil((1 - elapsed) * w + max(0.0, share) * w))


class RequestRate:
    """A tenant's requests per minute."""

    def __init__(
        self, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys
        self._clock = clock
        self._script = client.register_script(_RATE)

    def hit(self, tenant: str, limit: int) -> Admission:
        """Count one request of ``tenant`` if it fits under ``limit`` a minute."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        elapsed = now / WINDOW_SECONDS - window
        keys = [self.keys.rate(tenant, window), self.keys.rate(tenant, window - 1)]
        reply = cast(list[Any], self._script(keys=keys, args=[limit, elapsed, 2 * WINDOW_SECONDS]))
        ok, cur, prev = (int(x) for x in reply)
        if ok:
            return Admission(True)
        return Admission(False, _rate_retry_after(limit, cur, prev, elapsed))


class InFlight:
    """A tenant's jobs queued or running, against ``max_jobs_in_flight``."""

    #: What a client is told to wait when full: jobs take seconds to minutes.
    RETRY_AFTER = 10

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._reserve = client.register_script(_RESERVE)

    def reserve(self, tenant: str, job_id: str, limit: int) -> Admission:
        """Count ``job_id`` as in flight if the tenant has fewer than ``limit``."""
        key = self.keys.jobs_in_flight(tenant)
        args: list[Any] = [limit, int(time.time() * 1000), job_id]
        if self._reserve(keys=[key], args=args):
            return Admission(True)
        if self.prune(tenant) and self._reserve(keys=[key], args=args):
            return Admission(True)
        return Admission(False, self.RETRY_AFTER)

    def release(self, tenant: str, job_id: str) -> None:
        """Stop counting ``job_id`` (its creation failed after it was reserved)."""
        self.redis.zrem(self.keys.jobs_in_flight(tenant), job_id)

    def count(self, tenant: str) -> int:
        """Jobs counted now (finished ones may linger until the next prune)."""
        return int(cast(int, self.redis.zcard(self.keys.jobs_in_flight(tenant))))

    def prune(self, tenant: str) -> int:
        """Drop finished and expired jobs from the tenant's set; returns how many."""
        key = self.keys.jobs_in_flight(tenant)
        ids = [m.decode() if isinstance(m, bytes) else m for m in self._members(key)]
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.job(job_id), "status")
        done = []
        for job_id, status in zip(ids, pipe.execute(), strict=True):
            if status is None:
                done.append(job_id)
                continue
            value = status.decode() if isinstance(status, bytes) else status
            if value not in (JobStatus.QUEUED, JobStatus.RUNNING):
                done.append(job_id)
        if done:
            self.redis.zrem(key, *done)
        return len(done)

    def _members(self, key: str) -> list[Any]:
        return cast(list[Any], self.redis.zrange(key, 0, -1))
