"""The job store's segment checkpoints and provider-session counts.

Part of :class:`~worker.jobs.store.JobStore` (a mixin it inherits; callers
import :class:`~worker.jobs.store.JobStore`).  A job's checkpoints
(``Keys.job_segments``) say which segments an attempt finished, so the next one
synthesises only the rest; its session counts (``Keys.job_sessions``) are each
segment's retry budget across attempts (:mod:`worker.retry`).  Both are hashes
keyed by segment index, kept as long as the job's record.
"""

from __future__ import annotations

import json
from typing import Any, cast

from redis import Redis

from worker.keys import Keys, decoded

__all__ = ["JobSegments"]


class JobSegments:
    """Segment checkpoints and session counts, for :class:`JobStore`."""

    # Set by JobStore.__init__.
    redis: Redis
    keys: Keys
    ttl_seconds: int

    def save_segment(self, job_id: str, index: int, checkpoint: dict[str, Any]) -> bool:
        """Record a finished segment; False (nothing saved) if the job is gone.

        Two plain commands in one pipeline, in this order: the record, then the
        job's TTL.  A job gone by then (deleted, expired) loses the record again;
        a late checkpoint of a finished job inherits the job's TTL.  A job deleted
        after the look has its checkpoints deleted with it
        (:meth:`~worker.jobs.store.JobStore.delete`), so no record outlives its
        job without a TTL.  (A script would cost a third.)
        """
        key = self.keys.job_segments(job_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, str(index), json.dumps(checkpoint))
        pipe.pttl(self.keys.job(job_id))
        _, ttl = pipe.execute()
        if ttl == -2:  # the job is gone: so are its checkpoints
            self.redis.delete(key)
            return False
        if ttl > 0:
            self.redis.pexpire(key, ttl)
        return True

    def segments(self, job_id: str) -> dict[int, dict[str, Any]]:
        """Checkpoints of the job's finished segments, by segment index."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.job_segments(job_id)))
        return {int(decoded(i)): json.loads(decoded(c)) for i, c in raw.items()}

    def clear_segments(self, job_id: str) -> None:
        """Forget the job's checkpoints (after assembly, or to start over)."""
        self.redis.delete(self.keys.job_segments(job_id))

    def count_session(self, job_id: str, index: int, *, keep: bool = True) -> int:
        """Count one more provider session for segment ``index``; returns its sessions so far.

        The count outlives attempts (and :meth:`clear_segments`): it is the
        segment's retry budget, kept as long as a record (``keep``: set its
        lifetime, which an attempt does with its first count, not with each).
        """
        key = self.keys.job_sessions(job_id)
        sessions = int(cast(int, self.redis.hincrby(key, str(index), 1)))
        if keep:
            self.redis.expire(key, self.ttl_seconds)
        return sessions

    def sessions(self, job_id: str) -> dict[int, int]:
        """Provider sessions opened so far for each segment of the job, by segment index."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.job_sessions(job_id)))
        return {int(decoded(i)): int(decoded(n)) for i, n in raw.items()}
