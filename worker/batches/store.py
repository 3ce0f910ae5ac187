"""Batch records in Redis, and the flags and leases that make batch orchestration run once.

A batch is one JSON string (``Keys.batch``); every change is a read-modify-write
under ``WATCH`` (:meth:`BatchStore.update`), so the API (cancel, retry) and
workers (assembly) never overwrite each other.  Alongside it:

* ``Keys.batch_masters`` — job id → :class:`~worker.batches.model.ChapterMaster`
  JSON, written by the worker that finished the job;
* ``Keys.batch_finalize`` — set once per generation by whoever sees the last
  item end, so the end of a batch is acted on exactly once;
* ``Keys.batch_assembly_lease`` — held (and renewed) while a worker builds the
  combined outputs; a build whose worker died is noticed when it lapses;
* ``Keys.batch_item_event`` — set once per job whose ``batch.item.*`` callback
  was queued;
* ``Keys.batches_open`` — every unfinished batch, scored by when it last changed
  or was looked at: the worker's reaper acts on an end nobody acted on
  (:meth:`BatchStore.claim_quiet`).  Kept here, in the same transaction as
  each record's change.

A batch lives until ``ttl_seconds`` after it last finished, like a job.
``Keys.batches_by_tenant`` indexes a tenant's batches by creation time (written
by :meth:`BatchStore.create`, dropped by :meth:`BatchStore.delete`); an entry
whose record expired is pruned when a listing meets it (:meth:`BatchStore.newest`),
as the job indexes are.

Errors::

    BatchStoreError
    ├── BatchExists         create() of an id that is already stored
    └── BatchNotFound       an update of a batch that is not (or no longer) stored
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis

from worker.batches.model import Batch, ChapterMaster
from worker.jobs.listing import Position
from worker.jobs.model import Job, JobStatus
from worker.jobs.store import CorruptJobRecord, decode_job
from worker.keys import Keys, decoded

log = logging.getLogger(__name__)

#: Hand out open batches quiet since ARGV[1], marking each as looked at ARGV[2]: atomic, so
#: two reapers never take the same batch.  ARGV[3]: how many at most.
CLAIM_QUIET = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
"""


class BatchStoreError(Exception):
    """Root of the batch store's errors."""


class BatchExists(BatchStoreError):
    """A batch with this id is already stored."""


class BatchNotFound(BatchStoreError, KeyError):
    """The batch is not stored (never created, or expired)."""


class BatchStore:
    """Batch records and their orchestration keys; safe to share between threads."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._claim_quiet = client.register_script(CLAIM_QUIET)

    # -- records -----------------------------------------------------------------

    def create(self, batch: Batch) -> Batch:
        """Store a new batch and index it under its tenant; :class:`BatchExists` if taken."""
        pipe = self.redis.pipeline()
        pipe.set(self.keys.batch(batch.id), batch.model_dump_json(), nx=True)
        pipe.zadd(self.keys.batches_by_tenant(batch.tenant), {batch.id: batch.created_at * 1000})
        pipe.zadd(self.keys.batches_open(), {batch.id: batch.created_at})
        created, *_ = pipe.execute()
        if not created:
            raise BatchExists(batch.id)
        log.info(
            "batch %s: created (%d items, tenant %s)", batch.id, len(batch.items), batch.tenant
        )
        return batch

    def get(self, batch_id: str) -> Batch | None:
        """The batch, or None if it is not stored."""
        raw = self.redis.get(self.keys.batch(batch_id))
        return Batch.model_validate_json(cast(bytes, raw)) if raw is not None else None

    def get_for_tenant(self, batch_id: str, tenant: str) -> Batch | None:
        """The batch if it belongs to ``tenant``; None otherwise, so others see a 404."""
        batch = self.get(batch_id)
        return batch if batch is not None and batch.tenant == tenant else None

    def update(self, batch_id: str, change: Callable[[Batch], Batch | None]) -> Batch | None:
        """Apply ``change`` to the stored batch atomically (optimistic, retried on races).

        ``change`` gets the current record and returns the new one, or None to
        leave it as it is (then this returns None).  A record whose
        ``finished_at`` is set gets the retention TTL; one without it is kept.
        Raises :class:`BatchNotFound` if there is no such batch.
        """
        key = self.keys.batch(batch_id)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise BatchNotFound(batch_id)
                    new = change(Batch.model_validate_json(cast(bytes, raw)))
                    if new is None:
                        pipe.unwatch()
                        return None
                    new = new.model_copy(update={"updated_at": time.time()})
                    pipe.multi()
                    if new.finished_at is not None:
                        pipe.set(key, new.model_dump_json(), ex=self.ttl_seconds)
                        pipe.zrem(self.keys.batches_open(), batch_id)
                    else:
                        pipe.set(key, new.model_dump_json())
                        pipe.zadd(self.keys.batches_open(), {batch_id: new.updated_at})
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def delete(self, batch_id: str) -> None:
        """Remove the batch and its orchestration keys (for a submission that failed)."""
        batch = self.get(batch_id)
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.batch(batch_id), self.keys.batch_masters(batch_id))
        if batch is not None:
            pipe.zrem(self.keys.batches_by_tenant(batch.tenant), batch_id)
        pipe.zrem(self.keys.batches_open(), batch_id)
        pipe.execute()

    # -- a tenant's batches, newest first -----------------------------------------

    def newest(
        self, tenant: str, after: Position | None, count: int
    ) -> tuple[list[tuple[Batch, Position]], Position | None]:
        """Up to ``count`` of the tenant's batches after ``after`` in its index (newest
        first) with their index entries, and the entry to go on from (None: the end).

        Entries whose record is gone (expired) are skipped and pruned from the index.
        """
        index = self.keys.batches_by_tenant(tenant)
        chunk = max(1, count)
        while True:
            high = repr(after.score) if after is not None else "+inf"
            rows = self.redis.zrevrangebyscore(index, high, "-inf", 0, chunk, withscores=True)
            entries = [Position(float(s), decoded(m)) for m, s in cast(Any, rows)]
            # The range starts at the anchor's score inclusive: skip what was already seen.
            fresh = [e for e in entries if after is None or after.before(e, ascending=False)]
            if fresh or len(entries) < chunk:
                break
            chunk *= 2  # a run of equal scores longer than the chunk: widen, don't loop
        go_on = fresh[-1] if fresh and len(entries) == chunk else None
        return self._load_indexed(index, fresh), go_on

    def _load_indexed(self, index: str, entries: list[Position]) -> list[tuple[Batch, Position]]:
        """Records for index entries, in order; entries of expired records are pruned."""
        if not entries:
            return []
        raws = cast(list[Any], self.redis.mget([self.keys.batch(e.member) for e in entries]))
        loaded, gone = [], []
        for entry, raw in zip(entries, raws, strict=True):
            if raw is None:
                gone.append(entry.member)
                continue
            try:
                loaded.append((Batch.model_validate_json(raw), entry))
            except ValueError:
                log.warning("batch %s: unreadable record skipped in a listing", entry.member)
        if gone:
            self.redis.zrem(index, *gone)
        return loaded

    # -- the items' jobs ---------------------------------------------------------

    def jobs(self, job_ids: Sequence[str]) -> list[Job | None]:
        """The job records of ``job_ids`` in one round trip; None where one is gone."""
        pipe = self.redis.pipeline()
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        out: list[Job | None] = []
        for job_id, raw in zip(job_ids, pipe.execute(), strict=True):
            try:
                out.append(decode_job(raw) if raw else None)
            except CorruptJobRecord:
                log.warning("job %s: unreadable record, counted as gone", job_id)
                out.append(None)
        return out

    def statuses(self, job_ids: Sequence[str]) -> list[JobStatus | None]:
        """Only the statuses of ``job_ids``, in one round trip; None where a job is gone."""
        pipe = self.redis.pipeline()
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "status")
        out: list[JobStatus | None] = []
        for raw in pipe.execute():
            try:
                out.append(JobStatus(decoded(raw)) if raw is not None else None)
            except ValueError:
                out.append(None)  # unreadable, counted as gone like in jobs()
        return out

    # -- chapter masters ---------------------------------------------------------

    def set_master(self, batch_id: str, master: ChapterMaster) -> None:
        """Record the master a job left in staging."""
        self.redis.hset(self.keys.batch_masters(batch_id), master.job_id, master.model_dump_json())

    def masters(self, batch_id: str) -> dict[str, ChapterMaster]:
        """Every recorded master of the batch, by job id."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.batch_masters(batch_id)))
        return {decoded(k): ChapterMaster.model_validate_json(v) for k, v in raw.items()}

    def drop_masters(self, batch_id: str, job_ids: Sequence[str] | None = None) -> None:
        """Forget some masters (or all of them); their objects are the caller's to delete."""
        key = self.keys.batch_masters(batch_id)
        if job_ids is None:
            self.redis.delete(key)
        elif job_ids:
            self.redis.hdel(key, *job_ids)

    # -- run-once flags and the assembly lease ------------------------------------

    def claim_finalize(self, batch_id: str, end: str) -> bool:
        """True for exactly one caller per ``end`` (a generation, or its cancellation):
        the one that acts on it."""
        key = self.keys.batch_finalize(batch_id, end)
        return bool(self.redis.set(key, "1", nx=True, ex=self.ttl_seconds))

    def release_finalize(self, batch_id: str, end: str) -> None:
        """Let ``end`` be acted on again (its build could not be queued)."""
        self.redis.delete(self.keys.batch_finalize(batch_id, end))

    def claim_requeue(self, batch_id: str, ttl: float) -> bool:
        """True for one caller per ``ttl`` seconds: the one re-queueing a stalled build."""
        key = self.keys.batch_requeue(batch_id)
        return bool(self.redis.set(key, "1", nx=True, px=max(1, int(ttl * 1000))))

    def claim_item_event(self, job_id: str) -> bool:
        """True for exactly one caller per job: the one that queues its item callback."""
        key = self.keys.batch_item_event(job_id)
        return bool(self.redis.set(key, "1", nx=True, ex=self.ttl_seconds))

    def acquire_assembly(self, batch_id: str, owner: str, ttl: float) -> bool:
        """Take the batch's assembly lease for ``ttl`` seconds if nobody holds it."""
        key = self.keys.batch_assembly_lease(batch_id)
        return bool(self.redis.set(key, owner, nx=True, px=max(1, int(ttl * 1000))))

    def renew_assembly(self, batch_id: str, owner: str, ttl: float) -> bool:
        """Extend the lease if ``owner`` still holds it."""
        key = self.keys.batch_assembly_lease(batch_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) != owner.encode():
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.pexpire(key, max(1, int(ttl * 1000)))
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def release_assembly(self, batch_id: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it."""
        key = self.keys.batch_assembly_lease(batch_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) == owner.encode():
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
                else:
                    pipe.unwatch()
            except redis.WatchError:
                pass

    def assembly_held(self, batch_id: str) -> bool:
        """True while some worker holds the batch's assembly lease."""
        return bool(self.redis.exists(self.keys.batch_assembly_lease(batch_id)))

    # -- open batches: the reaper's worklist ---------------------------------------

    def claim_quiet(self, quiet_since: float, now: float, limit: int = 100) -> list[str]:
        """Open batches unchanged and not looked at since ``quiet_since``; each is handed
        to one caller and counts as looked at ``now``."""
        args: list[str | int] = [repr(quiet_since), repr(now), limit]
        return [decoded(m) for m in self._claim_quiet(keys=[self.keys.batches_open()], args=args)]

    def forget_open(self, batch_id: str) -> None:
        """Drop a batch from the worklist (it finished under an older version, or is gone)."""
        self.redis.zrem(self.keys.batches_open(), batch_id)

    def index_open_batches(self, chunk: int = 500) -> int:
        """Put on the worklist the unfinished batches stored before it existed; once per
        deployment.  Returns how many it added."""
        if self.redis.exists(self.keys.batches_open_adopted()):
            return 0
        added = 0
        prefix = "".join("\\" + c if c in "*?[]\\" else c for c in self.keys.prefix)
        for index in self.redis.scan_iter(match=f"{prefix}:idx:batches:*", count=chunk):
            ids = [decoded(m) for m, _ in self.redis.zscan_iter(index, count=chunk)]
            for start in range(0, len(ids), chunk):
                some = ids[start : start + chunk]
                raws = self.redis.mget([self.keys.batch(i) for i in some])
                for batch_id, raw in zip(some, cast(list[Any], raws), strict=True):
                    if raw is not None and Batch.model_validate_json(raw).finished_at is None:
                        new = self.redis.zadd(self.keys.batches_open(), {batch_id: 0}, nx=True)
                        added += int(cast(int, new))
        self.redis.set(self.keys.batches_open_adopted(), "1")
        return added

    # -- staging retention -------------------------------------------------------

    def schedule_staging_cleanup(self, batch_id: str, at: float) -> None:
        """Delete the batch's staging objects after ``at`` (epoch s), unless rescheduled."""
        self.redis.zadd(self.keys.batch_staging_expiry(), {batch_id: at})

    def unschedule_staging_cleanup(self, batch_id: str) -> None:
        """The batch needs its staging again (an item is being retried)."""
        self.redis.zrem(self.keys.batch_staging_expiry(), batch_id)

    def due_staging_cleanups(self, now: float, limit: int = 20) -> list[str]:
        """Batches whose staging may go now; each id is handed to one caller only."""
        key = self.keys.batch_staging_expiry()
        due = cast(list[bytes], self.redis.zrangebyscore(key, "-inf", repr(now), 0, limit))
        return [decoded(m) for m in due if self.redis.zrem(key, m)]
