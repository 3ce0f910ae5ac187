"""The job store's leases and the reapers' lists: who may run a job, and when again.

Part of :class:`~worker.jobs.store.JobStore` (a mixin it inherits; callers
import both names from :mod:`worker.jobs.store`).  A job's lease
(``Keys.job_lease``) says which worker runs its attempt; :mod:`worker.lease`
is the one helper that holds it.  Two sorted sets are the reapers' worklist,
kept in step with the leases by the same scripts: a job whose attempt runs is
listed by its lease's expiry, one between attempts by when the next is due
("Crash recovery" in docs/operations.md).  A job re-queued by a retry or a
reaper carries the token of its one valid message on its record (``dispatch``),
so an older message of it is dropped (:class:`MessageStanding`).

Each change is one Lua script of :mod:`worker.jobs.lua`, registered with the
store's others in :class:`~worker.jobs.store.JobStore`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, cast

from redis import Redis
from redis.commands.core import Script

from worker.jobs.codec import decode_job
from worker.jobs.model import Job, JobStatus
from worker.keys import Keys, decoded

__all__ = ["DueReason", "JobLeases", "MessageStanding"]


class DueReason(StrEnum):
    """Why a reaper queues a job again."""

    DUE = "due"  # its next attempt is due: a retry's backoff ended, or its message went untaken
    LAPSED = "lapsed"  # its lease lapsed: the worker running it is gone


class MessageStanding(StrEnum):
    """Whether a ``shoal.synthesize`` message may run its job."""

    CURRENT = "current"  # it carries the job's dispatch token
    STALE = "stale"  # a newer message replaced it (or a retry waits for its own): drop it
    UNTRACKED = "untracked"  # no token recorded yet: the API's message, or an earlier version's


def ms_int(seconds: float) -> int:
    """Seconds as whole milliseconds, as the scripts take them."""
    return int(seconds * 1000)


def _standing(current: Any, token: str | None) -> MessageStanding:
    """A message's standing, from the record's ``dispatch`` token (``current``)."""
    if current is None:
        return MessageStanding.UNTRACKED
    if token is not None and decoded(cast(bytes | str, current)) == token:
        return MessageStanding.CURRENT
    return MessageStanding.STALE


class JobLeases:
    """Job leases, retries' schedule and the reapers' lists, for :class:`JobStore`."""

    # Set by JobStore.__init__.
    redis: Redis
    keys: Keys
    _acquire_lease: Script
    _renew_lease: Script
    _release_lease: Script
    _schedule_retry: Script
    _due_jobs: Script
    _claim_due: Script
    _adopt_running: Script

    def acquire_job_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        """Take the job's lease for ``ttl`` seconds if nobody holds it."""
        return self._lease_script(self._acquire_lease, job_id, owner, ttl)

    def renew_job_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now, only if ``owner`` still holds it."""
        return self._lease_script(self._renew_lease, job_id, owner, ttl)

    def release_job_lease(self, job_id: str, owner: str, look_again_in: float = 0.0) -> bool:
        """Give the lease up if ``owner`` holds it; False if someone else does (or nobody).
        A job still ``running`` (its attempt decided nothing) is due in ``look_again_in`` s."""
        k = self.keys
        keys = [k.job_lease(job_id), k.job(job_id), k.jobs_leased(), k.jobs_due()]
        return bool(self._release_lease(keys=keys, args=[job_id, owner, ms_int(look_again_in)]))

    def schedule_retry(self, job_id: str, owner: str, delay: float, token: str) -> float | None:
        """Give up ``owner``'s lease and make the job due in ``delay`` seconds, when a
        reaper queues its one valid message (``token``; none is valid meanwhile).
        Returns when it is due (epoch s), or None if the lease was not ``owner``'s."""
        k = self.keys
        keys = [k.job_lease(job_id), k.jobs_leased(), k.jobs_due(), k.job(job_id)]
        args: list[str | int] = [job_id, owner, ms_int(delay), token]
        due = self._schedule_retry(keys=keys, args=args)
        return int(cast(int, due)) / 1000 if due is not None else None

    def due_jobs(self, limit: int) -> list[str]:
        """Jobs whose next attempt is due or whose lease lapsed (one command; cheap)."""
        keys = [self.keys.jobs_due(), self.keys.jobs_leased()]
        ids = cast(list[Any], self._due_jobs(keys=keys, args=[limit]))
        return list(dict.fromkeys(decoded(i) for i in ids))

    def claim_due(self, job_id: str, token: str, pickup: float) -> DueReason | None:
        """Claim a due job for queueing with ``token``, its one valid message from now.

        One caller wins, and learns why the job is due; the job is due again
        after ``pickup`` seconds, should that message never start an attempt.
        None when there is nothing to queue (it ended, it is leased, another won).
        """
        k = self.keys
        keys = [k.job(job_id), k.job_lease(job_id), k.jobs_leased(), k.jobs_due()]
        reason = self._claim_due(keys=keys, args=[job_id, token, ms_int(pickup)])
        return DueReason(decoded(reason)) if reason else None

    def message_standing(self, job_id: str, token: str | None) -> MessageStanding:
        """Whether a message of ``job_id`` carrying ``token`` may run."""
        return _standing(self.redis.hget(self.keys.job(job_id), "dispatch"), token)

    def get_for_message(self, job_id: str, token: str | None) -> tuple[Job | None, MessageStanding]:
        """The job (as :meth:`~worker.jobs.store.JobStore.get`) and whether a message
        carrying ``token`` may run it (as :meth:`message_standing`): one read, the
        token being on the record."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.job(job_id)))
        if not raw:
            return None, MessageStanding.UNTRACKED
        current = raw.get(b"dispatch", raw.get("dispatch"))
        return decode_job(raw), _standing(current, token)

    def adopt_running_jobs(self, page: int = 200) -> int:
        """List running jobs that the reapers' lists lack (an earlier version started
        them) by their lease's expiry; returns how many were added."""
        k, added = self.keys, 0
        index = k.jobs_by_status(JobStatus.RUNNING)
        running = [decoded(m) for m in cast(list[Any], self.redis.zrange(index, 0, -1))]
        for at in range(0, len(running), page):
            ids = running[at : at + page]
            keys = [k.jobs_leased(), k.jobs_due(), *(k.job_lease(i) for i in ids)]
            added += int(cast(int, self._adopt_running(keys=keys, args=ids)))
        return added

    def _lease_script(self, script: Script, job_id: str, owner: str, ttl: float) -> bool:
        k = self.keys
        keys = [k.job_lease(job_id), k.jobs_leased(), k.jobs_due()]
        return bool(script(keys=keys, args=[job_id, owner, max(1, ms_int(ttl))]))
