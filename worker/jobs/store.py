"""The job store: job records, their indexes, segment checkpoints and job leases in Redis.

A job is one hash (``Keys.job``): scalar fields as strings, nested values
(request, progress, output, error, billing, metadata) as JSON.  Absent fields
are ``None``.  One field is the store's own, not the job's: ``dispatch``, the
token of the job's one valid message once a retry or a reaper re-queued it
(:class:`MessageStanding`), read with the record.  Every change that must not
interleave with another — creating, moving the status forward, bumping
attempts — is one Lua script, so two workers (or a worker and the API's
cancel) can never both "win".

Indexes are sorted sets of job ids: all jobs, by tenant and by status are
scored by creation time (ms), a batch by item number; :mod:`worker.jobs.listing`
walks them.  Records of finished jobs expire after the retention TTL; their
index entries are pruned lazily when a listing meets them.

Two more are the reapers' worklist, kept in step with the job leases: a job
whose attempt runs is listed by its lease's expiry, one between attempts by
when the next is due ("Crash recovery" in docs/operations.md).

:class:`JobStore` is this module's records and two parts it inherits: the
leases, retries' schedule and reapers' lists (:mod:`worker.jobs.store_leases`,
whose ``DueReason`` and ``MessageStanding`` are re-exported here) and the
segment checkpoints and session counts (:mod:`worker.jobs.store_segments`).
A record's fields are written and read by :mod:`worker.jobs.codec`; the
errors are :mod:`worker.jobs.errors`' (re-exported here).
"""

from __future__ import annotations

import builtins
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

import redis

from worker.jobs import lua
from worker.jobs.codec import decode_job, encode_job
from worker.jobs.errors import (
    CorruptJobRecord,
    InvalidCursor,
    JobExists,
    JobNotFound,
    StoreError,
)
from worker.jobs.listing import JobFilter, Position, collect, plan_walk
from worker.jobs.model import (
    STATUS_RANK,
    CallbackAttempt,
    Job,
    JobError,
    JobStatus,
    Output,
    Progress,
)
from worker.jobs.store_leases import DueReason, JobLeases, MessageStanding, ms_int
from worker.jobs.store_segments import JobSegments
from worker.keys import Keys, decoded

__all__ = [
    "AttemptStart",
    "CorruptJobRecord",
    "DueReason",
    "InvalidCursor",
    "JobExists",
    "JobNotFound",
    "JobStore",
    "MessageStanding",
    "StoreError",
    "Succeeded",
    "decode_job",
    "encode_job",
]

log = logging.getLogger(__name__)

_STATUSES = tuple(JobStatus)


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """What :meth:`JobStore.start_attempt` found and did."""

    status: JobStatus | None  # the job's status now; None if it is gone
    attempt: int | None  # the attempt counted (from 1); None if none was
    moved: bool  # it went to ``running`` now (its first attempt, or after ``queued``)
    out_of_attempts: bool = False  # it had had its attempts: none was counted
    first: bool = False  # the job's first attempt: no checkpoints; the progress given is written
    at: float | None = None  # when it was counted (the server's clock, epoch s)
    leased: bool = False  # the lease asked for is the caller's now (see JobStore.start_attempt)


class Succeeded(NamedTuple):
    """What :meth:`JobStore.succeed` did."""

    moved: bool  # the job succeeded now (False: it was canceled, or had ended, meanwhile)
    released: bool  # the caller's lease was given up with it


def _seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _ms(value: float | datetime) -> float:
    return _seconds(value) * 1000


class JobStore(JobSegments, JobLeases):
    """Job records in Redis; safe to share between threads (redis-py pools connections).

    ``ttl_seconds`` is how long a finished job's record and checkpoints are kept.
    Works with clients made with ``decode_responses`` on or off.
    """

    def __init__(self, redis: redis.Redis, keys: Keys, ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._create = redis.register_script(lua.CREATE)
        self._transition = redis.register_script(lua.TRANSITION)
        self._update = redis.register_script(lua.UPDATE)
        # The leases' scripts, run by JobLeases (worker.jobs.store_leases).
        self._acquire_lease = redis.register_script(lua.ACQUIRE_JOB_LEASE)
        self._renew_lease = redis.register_script(lua.RENEW_JOB_LEASE)
        self._release_lease = redis.register_script(lua.RELEASE_JOB_LEASE)
        self._schedule_retry = redis.register_script(lua.SCHEDULE_RETRY)
        self._due_jobs = redis.register_script(lua.DUE_JOBS)
        self._claim_due = redis.register_script(lua.CLAIM_DUE)
        self._adopt_running = redis.register_script(lua.ADOPT_RUNNING)
        self._record_callback = redis.register_script(lua.RECORD_CALLBACK_ATTEMPT)

    # -- records -----------------------------------------------------------------

    def create(self, job: Job, *, batch_item: int | None = None) -> Job:
        """Store a new job and index it; ``batch_item`` orders it within its batch.

        Raises :class:`JobExists` if the id is taken.
        """
        k = self.keys
        keys = [
            k.job(job.id),
            k.job_segments(job.id),
            k.jobs_all(),
            k.jobs_by_tenant(job.tenant),
            k.jobs_by_status(job.status),
        ]
        if job.batch_id is not None:
            keys.append(k.jobs_by_batch(job.batch_id))
        created = _ms(job.created_at)
        ttl = self.ttl_seconds if job.status.terminal else 0
        args: list[Any] = [
            job.id,
            repr(created),
            repr(float(batch_item) if batch_item is not None else created),
            ttl,
        ]
        for name, value in encode_job(job).items():
            args += [name, value]
        if not self._create(keys=keys, args=args):
            raise JobExists(job.id)
        log.info("job %s: created (%s, tenant %s)", job.id, job.status, job.tenant)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or ``None`` if it is not stored (or has expired)."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.job(job_id)))
        return decode_job(raw) if raw else None

    def status(self, job_id: str) -> JobStatus | None:
        """The job's status alone (one HGET, nothing decoded); None if it is gone."""
        raw = self.redis.hget(self.keys.job(job_id), "status")
        return JobStatus(decoded(cast(bytes | str, raw))) if raw is not None else None

    def get_for_tenant(self, job_id: str, tenant: str) -> Job | None:
        """The job if it belongs to ``tenant``; ``None`` otherwise, so others see a 404."""
        job = self.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        error: JobError | None = None,
        output: Output | None = None,
    ) -> bool:
        """Move the job to ``to`` if that is forward (higher rank); atomic.

        Sets timestamps, ``error`` and ``output``; a terminal status starts the
        retention TTL.  Returns False, changing nothing, when the move is not
        allowed (or the job is gone).  Publishes a ``status`` event on success.
        """
        result = self._run_transition(job_id, JobStatus(to), error=error, output=output)
        return result[0] == 1

    def succeed(
        self,
        job: Job,
        output: Output,
        owner: str,
        progress: Progress | None = None,
        *,
        recorded: bool = True,
    ) -> Succeeded:
        """Move ``job`` to ``succeeded`` with its output (and last ``progress``), drop
        its checkpoint records (the caller holds them) and give up ``owner``'s lease
        of it: the end of an attempt in one script.  Not ``recorded``: the job's
        first attempt recorded no checkpoint, so there are none to drop (unless its
        lease was another's meanwhile).  As :meth:`transition`, nothing changes if
        the move is not allowed (the job was canceled meanwhile); the lease is
        kept then."""
        result = self._run_transition(
            job.id,
            JobStatus.SUCCEEDED,
            output=output,
            created=job.created_at,
            owner=owner,
            progress=progress,
            recorded=recorded,
        )
        moved = result[0] == 1
        return Succeeded(moved, moved and bool(result[5]))

    def start_attempt(
        self,
        job_id: str,
        max_attempts: int,
        *,
        created: float | None = None,
        progress: Progress | None = None,
        lease: tuple[str, float] | None = None,
    ) -> AttemptStart:
        """Count one more attempt and move the job to ``running`` (if it is not yet), at once.

        Nothing changes for a job that is gone or ended, or that has had
        ``max_attempts`` already (``attempt`` is None then).  ``created`` (the job's
        ``created_at``) spares the script a look at the index; ``progress`` is
        written with the job's first attempt (``AttemptStart.first``).  With
        ``lease`` (owner, TTL in seconds) the same script first takes the job's
        lease as :meth:`acquire_job_lease` does (or takes back the owner's own),
        unless the job is gone, succeeded or failed: nothing else changes if it
        is another's (``AttemptStart.leased``)."""
        owner, ttl = lease if lease is not None else (None, None)
        result = self._run_transition(
            job_id,
            JobStatus.RUNNING,
            max_attempts=max_attempts,
            created=created,
            progress=progress,
            owner=owner,
            lease_ttl=ttl,
        )
        code = int(result[0])
        status = JobStatus(decoded(result[1])) if result[1] else None
        leased = lease is not None and code != 4
        leased = leased and status not in (None, JobStatus.SUCCEEDED, JobStatus.FAILED)
        if code == 1:
            attempt, at = int(result[4]), float(decoded(result[3]))
            return AttemptStart(
                JobStatus.RUNNING, attempt, moved=True, first=attempt == 1, at=at, leased=leased
            )
        if code == 2:
            attempt, at = int(result[2]), float(decoded(result[3]))
            return AttemptStart(
                status, attempt, moved=False, first=attempt == 1, at=at, leased=leased
            )
        return AttemptStart(status, None, moved=False, out_of_attempts=code == 3, leased=leased)

    def _run_transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        error: JobError | None = None,
        output: Output | None = None,
        max_attempts: int | None = None,
        created: float | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
        lease_ttl: float | None = None,
        recorded: bool = True,
    ) -> builtins.list[Any]:
        k = self.keys
        keys = [k.job(job_id), k.job_segments(job_id), k.job_lease(job_id)]
        keys += [k.jobs_leased(), k.jobs_due()]
        args: list[Any] = [
            job_id,
            to.value,
            self.ttl_seconds,
            output.model_dump_json() if output else "",
            error.model_dump_json() if error else "",
            "" if max_attempts is None else max_attempts,
            "" if created is None else repr(_ms(created)),  # as create() scored it
            owner or "",
            progress.model_dump_json() if progress is not None else "",
            "" if lease_ttl is None else max(1, ms_int(lease_ttl)),
            "" if recorded else "none",
        ]
        for status in _STATUSES:
            keys.append(k.jobs_by_status(status))
            args += [status.value, STATUS_RANK[status], "1" if status.terminal else "0"]
        result = cast(builtins.list[Any], self._transition(keys=keys, args=args))
        if result[0] != 1:
            current = decoded(result[1]) if result[1] else "missing"
            log.debug("job %s: %s → %s refused", job_id, current, to)
            return result
        previous, created_at, now = decoded(result[1]), result[2], float(decoded(result[3]))
        elapsed = now - float(decoded(created_at)) if created_at else 0.0
        log.info("job %s: %s → %s after %.2fs", job_id, previous, to, elapsed)
        event: dict[str, Any] = {"type": "status", "status": to.value, "previous": previous}
        if error is not None:
            event["error"] = error.model_dump(mode="json")
        if output is not None:
            event["output"] = output.model_dump(mode="json")
        self.publish(job_id, event | {"at": now})
        return result

    def set_progress(self, job_id: str, progress: Progress) -> bool:
        """Replace the job's progress and publish it; False if the job is gone."""
        now = self._update(
            keys=[self.keys.job(job_id)], args=["progress", progress.model_dump_json()]
        )
        if now is None:
            return False
        self.publish_progress(job_id, progress, float(decoded(cast(bytes | str, now))))
        return True

    def publish_progress(self, job_id: str, progress: Progress, at: float) -> int:
        """Tell the job's readers its progress, recorded at ``at`` (by :meth:`set_progress`
        or with the attempt's start, :meth:`start_attempt`)."""
        event = {"type": "progress", "progress": progress.model_dump(), "at": at}
        return self.publish(job_id, event)

    def record_error(self, job_id: str, error: JobError) -> bool:
        """Keep the latest error on the record (visible while the job still retries)."""
        now = self._update(keys=[self.keys.job(job_id)], args=["error", error.model_dump_json()])
        if now is None:
            return False
        at = float(decoded(cast(bytes | str, now)))
        self.publish(job_id, {"type": "error", "error": error.model_dump(mode="json"), "at": at})
        return True

    def publish(self, job_id: str, event: dict[str, Any]) -> int:
        """Send ``event`` (plus ``job_id``) as JSON on the job's channel; returns receivers."""
        message = json.dumps({"job_id": job_id, **event}, separators=(",", ":"))
        return int(cast(int, self.redis.publish(self.keys.job_events(job_id), message)))

    def delete(self, job_id: str) -> bool:
        """Remove the job, its checkpoints, lease and index entries; False if absent."""
        k = self.keys
        raw = cast(builtins.list[Any], self.redis.hmget(k.job(job_id), ["tenant", "batch_id"]))
        tenant, batch_id = (decoded(v) if v is not None else None for v in raw)
        pipe = self.redis.pipeline()
        pipe.delete(
            k.job(job_id), k.job_segments(job_id), k.job_lease(job_id), k.job_requeue(job_id)
        )
        pipe.delete(k.job_sessions(job_id), k.job_dispatch(job_id))
        for index in (k.jobs_all(), k.jobs_leased(), k.jobs_due()):
            pipe.zrem(index, job_id)
        for status in _STATUSES:
            pipe.zrem(k.jobs_by_status(status), job_id)
        if tenant is not None:
            pipe.zrem(k.jobs_by_tenant(tenant), job_id)
        if batch_id is not None:
            pipe.zrem(k.jobs_by_batch(batch_id), job_id)
        return bool(pipe.execute()[0])

    # -- listing -----------------------------------------------------------------

    def list(
        self,
        tenant: str | None = None,
        status: JobStatus | None = None,
        batch_id: str | None = None,
        created_after: float | datetime | None = None,
        created_before: float | datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[builtins.list[Job], str | None]:
        """One page of jobs matching every filter given, and the next page's cursor.

        Newest first; a batch lists in item order instead (chapters of a book
        read front to back).  ``created_after``/``created_before`` are
        exclusive (epoch seconds or aware datetimes).  The cursor is opaque and
        stable: jobs created after the first page never shift later pages.
        Raises :class:`InvalidCursor` for a cursor this store did not hand out.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        want = JobFilter(
            tenant=tenant,
            status=JobStatus(status) if status is not None else None,
            batch_id=batch_id,
            created_after=_seconds(created_after) if created_after is not None else None,
            created_before=_seconds(created_before) if created_before is not None else None,
        )
        walk = plan_walk(self.redis, self.keys, want)
        try:
            anchor = Position.decode(cursor) if cursor else None
        except ValueError as exc:
            raise InvalidCursor(str(exc)) from exc
        pruned = [*walk.filters, walk.index, self.keys.jobs_all()]
        found = collect(
            self.redis, walk, want, anchor, limit, lambda fresh: self._load(fresh, pruned)
        )
        page = found[:limit]
        more = len(found) > limit
        return [job for job, _ in page], page[-1][1].encode() if more else None

    def _load(
        self, entries: builtins.list[Position], indexes: builtins.list[str]
    ) -> builtins.list[tuple[Job, Position]]:
        """Records for index entries, in order; entries of expired records are pruned."""
        pipe = self.redis.pipeline()
        for entry in entries:
            pipe.hgetall(self.keys.job(entry.member))
        loaded, gone = [], []
        for entry, raw in zip(entries, pipe.execute(), strict=True):
            if not raw:
                gone.append(entry.member)
                continue
            try:
                loaded.append((decode_job(raw), entry))
            except CorruptJobRecord:
                log.warning("job %s: unreadable record skipped in a listing", entry.member)
        if gone:
            pipe = self.redis.pipeline()
            for index in indexes:
                pipe.zrem(index, *gone)
            pipe.execute()
        return loaded

    # -- callbacks ---------------------------------------------------------------

    def record_callback_attempt(
        self, job_id: str, attempt: CallbackAttempt, *, cap: int = 50
    ) -> bool:
        """Append one callback delivery attempt to the job's ``callbacks`` (the newest
        ``cap`` are kept); atomic, and never changes the job's status.  False if the
        job is gone."""
        args: builtins.list[str | int] = [attempt.model_dump_json(), cap]
        return bool(self._record_callback(keys=[self.keys.job(job_id)], args=args))
