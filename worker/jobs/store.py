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

A record's fields are written and read by :mod:`worker.jobs.codec`; the
errors are :mod:`worker.jobs.errors`' (re-exported here).
"""

from __future__ import annotations

import builtins
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
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
from worker.keys import Keys

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


class DueReason(StrEnum):
    """Why a reaper queues a job again."""

    DUE = "due"  # its next attempt is due: a retry's backoff ended, or its message went untaken
    LAPSED = "lapsed"  # its lease lapsed: the worker running it is gone


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


class MessageStanding(StrEnum):
    """Whether a ``shoal.synthesize`` message may run its job."""

    CURRENT = "current"  # it carries the job's dispatch token
    STALE = "stale"  # a newer message replaced it (or a retry waits for its own): drop it
    UNTRACKED = "untracked"  # no token recorded yet: the API's message, or an earlier version's


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _ms(value: float | datetime) -> float:
    return _seconds(value) * 1000


def _ms_int(seconds: float) -> int:
    return int(seconds * 1000)


def _standing(current: Any, token: str | None) -> MessageStanding:
    """A message's standing, from the record's ``dispatch`` token (``current``)."""
    if current is None:
        return MessageStanding.UNTRACKED
    if token is not None and _text(cast(bytes | str, current)) == token:
        return MessageStanding.CURRENT
    return MessageStanding.STALE


class JobStore:
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
        return JobStatus(_text(cast(bytes | str, raw))) if raw is not None else None

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
        status = JobStatus(_text(result[1])) if result[1] else None
        leased = lease is not None and code != 4
        leased = leased and status not in (None, JobStatus.SUCCEEDED, JobStatus.FAILED)
        if code == 1:
            attempt, at = int(result[4]), float(_text(result[3]))
            return AttemptStart(
                JobStatus.RUNNING, attempt, moved=True, first=attempt == 1, at=at, leased=leased
            )
        if code == 2:
            attempt, at = int(result[2]), float(_text(result[3]))
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
            "" if lease_ttl is None else max(1, _ms_int(lease_ttl)),
            "" if recorded else "none",
        ]
        for status in _STATUSES:
            keys.append(k.jobs_by_status(status))
            args += [status.value, STATUS_RANK[status], "1" if status.terminal else "0"]
        result = cast(builtins.list[Any], self._transition(keys=keys, args=args))
        if result[0] != 1:
            current = _text(result[1]) if result[1] else "missing"
            log.debug("job %s: %s → %s refused", job_id, current, to)
            return result
        previous, created_at, now = _text(result[1]), result[2], float(_text(result[3]))
        elapsed = now - float(_text(created_at)) if created_at else 0.0
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
        self.publish_progress(job_id, progress, float(_text(cast(bytes | str, now))))
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
        at = float(_text(cast(bytes | str, now)))
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
        tenant, batch_id = (_text(v) if v is not None else None for v in raw)
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

    # -- segment checkpoints -----------------------------------------------------

    def save_segment(self, job_id: str, index: int, checkpoint: dict[str, Any]) -> bool:
        """Record a finished segment; False (nothing saved) if the job is gone.

        Two plain commands in one pipeline, in this order: the record, then the
        job's TTL.  A job gone by then (deleted, expired) loses the record again;
        a late checkpoint of a finished job inherits the job's TTL.  A job deleted
        after the look has its checkpoints deleted with it (:meth:`delete`), so no
        record outlives its job without a TTL.  (A script would cost a third.)
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
        return {int(_text(i)): json.loads(_text(c)) for i, c in raw.items()}

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
        return {int(_text(i)): int(_text(n)) for i, n in raw.items()}

    # -- job leases and the reapers' lists (crash recovery, retries) -------------

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
        return bool(self._release_lease(keys=keys, args=[job_id, owner, _ms_int(look_again_in)]))

    def schedule_retry(self, job_id: str, owner: str, delay: float, token: str) -> float | None:
        """Give up ``owner``'s lease and make the job due in ``delay`` seconds, when a
        reaper queues its one valid message (``token``; none is valid meanwhile).
        Returns when it is due (epoch s), or None if the lease was not ``owner``'s."""
        k = self.keys
        keys = [k.job_lease(job_id), k.jobs_leased(), k.jobs_due(), k.job(job_id)]
        args: builtins.list[str | int] = [job_id, owner, _ms_int(delay), token]
        due = self._schedule_retry(keys=keys, args=args)
        return int(cast(int, due)) / 1000 if due is not None else None

    def due_jobs(self, limit: int) -> builtins.list[str]:
        """Jobs whose next attempt is due or whose lease lapsed (one command; cheap)."""
        keys = [self.keys.jobs_due(), self.keys.jobs_leased()]
        ids = cast(builtins.list[Any], self._due_jobs(keys=keys, args=[limit]))
        return list(dict.fromkeys(_text(i) for i in ids))

    def claim_due(self, job_id: str, token: str, pickup: float) -> DueReason | None:
        """Claim a due job for queueing with ``token``, its one valid message from now.

        One caller wins, and learns why the job is due; the job is due again
        after ``pickup`` seconds, should that message never start an attempt.
        None when there is nothing to queue (it ended, it is leased, another won).
        """
        k = self.keys
        keys = [k.job(job_id), k.job_lease(job_id), k.jobs_leased(), k.jobs_due()]
        reason = self._claim_due(keys=keys, args=[job_id, token, _ms_int(pickup)])
        return DueReason(_text(reason)) if reason else None

    def message_standing(self, job_id: str, token: str | None) -> MessageStanding:
        """Whether a message of ``job_id`` carrying ``token`` may run."""
        return _standing(self.redis.hget(self.keys.job(job_id), "dispatch"), token)

    def get_for_message(self, job_id: str, token: str | None) -> tuple[Job | None, MessageStanding]:
        """The job (as :meth:`get`) and whether a message carrying ``token`` may run it
        (as :meth:`message_standing`): one read, the token being on the record."""
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
        running = [_text(m) for m in cast(builtins.list[Any], self.redis.zrange(index, 0, -1))]
        for at in range(0, len(running), page):
            ids = running[at : at + page]
            keys = [k.jobs_leased(), k.jobs_due(), *(k.job_lease(i) for i in ids)]
            added += int(cast(int, self._adopt_running(keys=keys, args=ids)))
        return added

    def _lease_script(self, script: Any, job_id: str, owner: str, ttl: float) -> bool:
        k = self.keys
        keys = [k.job_lease(job_id), k.jobs_leased(), k.jobs_due()]
        return bool(script(keys=keys, args=[job_id, owner, max(1, _ms_int(ttl))]))

    # -- callbacks ---------------------------------------------------------------

    def record_callback_attempt(
        self, job_id: str, attempt: CallbackAttempt, *, cap: int = 50
    ) -> bool:
        """Append one callback delivery attempt to the job's ``callbacks`` (the newest
        ``cap`` are kept); atomic, and never changes the job's status.  False if the
        job is gone."""
        args: builtins.list[str | int] = [attempt.model_dump_json(), cap]
        return bool(self._record_callback(keys=[self.keys.job(job_id)], args=args))
