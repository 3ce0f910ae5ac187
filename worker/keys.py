"""Every Redis key shoal writes, in one place, under one prefix.

Celery's own keys (broker lists, results) are Celery's; everything else is here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under ``prefix``; build one from ``Settings.key_prefix``."""

    prefix: str = "shoal"

    # -- jobs --------------------------------------------------------------------
    def job(self, job_id: str) -> str:
        """Hash: the job record (scalar fields, JSON blobs for nested ones)."""
        return f"{self.prefix}:job:{job_id}"

    def jobs_by_tenant(self, tenant: str) -> str:
        """Sorted set of job ids, scored by creation time (ms)."""
        return f"{self.prefix}:idx:tenant:{tenant}"

    def jobs_by_status(self, status: str) -> str:
        """Sorted set of job ids in a status, scored by creation time (ms)."""
        return f"{self.prefix}:idx:status:{status}"

    def jobs_all(self) -> str:
        """Sorted set of every job id, scored by creation time (ms): unfiltered listing."""
        return f"{self.prefix}:idx:all"

    def jobs_by_batch(self, batch_id: str) -> str:
        """Sorted set of a batch's job ids, scored by item number."""
        return f"{self.prefix}:idx:batch:{batch_id}"

    def job_events(self, job_id: str) -> str:
        """Pub/sub channel of a job's progress and state changes."""
        return f"{self.prefix}:events:job:{job_id}"

    def job_lease(self, job_id: str) -> str:
        """String with a TTL: held by the worker running the job; gone when it dies."""
        return f"{self.prefix}:lease:job:{job_id}"

    def job_segments(self, job_id: str) -> str:
        """Hash: segment index → JSON checkpoint of a finished segment."""
        return f"{self.prefix}:segments:{job_id}"

    def job_sessions(self, job_id: str) -> str:
        """Hash: segment index → provider sessions opened for it, over all attempts
        (the segment's retry budget; see :mod:`worker.retry`)."""
        return f"{self.prefix}:sessions:{job_id}"

    def job_requeue(self, job_id: str) -> str:
        """String with a short TTL: one reaper re-queues an orphaned job, not several."""
        return f"{self.prefix}:requeue:{job_id}"

    def job_dispatch(self, job_id: str) -> str:
        """String: where earlier versions kept the token of the job's one valid
        ``shoal.synthesize`` message; it is the record's ``dispatch`` field now (read
        with the record).  Only deleted, with the job."""
        return f"{self.prefix}:dispatch:{job_id}"

    def jobs_leased(self) -> str:
        """Sorted set: job id → when its lease lapses (epoch ms, Redis's clock), for
        every job an attempt is running; the reapers re-queue it if that passes."""
        return f"{self.prefix}:idx:jobs-leased"

    def jobs_due(self) -> str:
        """Sorted set: job id → when its next attempt is due (epoch ms, Redis's clock):
        a retry's backoff, or a queued message's deadline to be taken; the reapers
        queue it then."""
        return f"{self.prefix}:idx:jobs-due"

    def callback_progress(self, job_id: str) -> str:
        """String with a TTL: present while a job's ``job.progress`` callbacks are throttled."""
        return f"{self.prefix}:cbprogress:{job_id}"

    # -- batches -----------------------------------------------------------------
    def batch(self, batch_id: str) -> str:
        """String: the batch record, as JSON (items, options, outputs)."""
        return f"{self.prefix}:batch:{batch_id}"

    def batches_by_tenant(self, tenant: str) -> str:
        """Sorted set of a tenant's batch ids, scored by creation time (ms): what
        ``GET /v1/batches`` walks; entries of expired records are pruned as it meets them."""
        return f"{self.prefix}:idx:batches:{tenant}"

    def batch_masters(self, batch_id: str) -> str:
        """Hash: job id → JSON of the chapter master the job left in staging."""
        return f"{self.prefix}:batch:{batch_id}:masters"

    def batch_finalize(self, batch_id: str, end: str) -> str:
        """String: set once when a generation's items have all ended, or the batch was
        canceled (``end``: "3", "3-canceled"), so one caller acts on it."""
        return f"{self.prefix}:batch:{batch_id}:final:{end}"

    def batch_requeue(self, batch_id: str) -> str:
        """String with a short TTL: one caller re-queues a build whose worker died."""
        return f"{self.prefix}:batch:{batch_id}:requeue"

    def batch_assembly_lease(self, batch_id: str) -> str:
        """String with a TTL: held by the worker assembling the batch; gone when it dies."""
        return f"{self.prefix}:lease:batch:{batch_id}"

    def batch_item_event(self, job_id: str) -> str:
        """String: set once a job's ``batch.item.succeeded`` callback has been queued."""
        return f"{self.prefix}:batch:itemevent:{job_id}"

    def batches_open(self) -> str:
        """Sorted set: unfinished batch id → when it last changed or the reaper looked at
        it (epoch s); the reaper's worklist of batches whose end may be unacted on."""
        return f"{self.prefix}:idx:batches-open"

    def batches_open_adopted(self) -> str:
        """String: set once the batches stored before ``batches_open`` existed were indexed."""
        return f"{self.prefix}:idx:batches-open:adopted"

    def batch_staging_expiry(self) -> str:
        """Sorted set: batch id → when its staging objects may be deleted (epoch s)."""
        return f"{self.prefix}:batch:staging-expiry"

    # -- lexicons ---------------------------------------------------------------
    def lexicon(self, tenant: str, lexicon_id: str) -> str:
        """String: a tenant's lexicon, as JSON (under the tenant, so ids never cross)."""
        return f"{self.prefix}:lexicon:{tenant}:{lexicon_id}"

    def lexicons_by_tenant(self, tenant: str) -> str:
        """Sorted set of a tenant's lexicon ids, scored by creation time (ms)."""
        return f"{self.prefix}:idx:lexicons:{tenant}"

    # -- voices ------------------------------------------------------------------
    def voice(self, tenant: str, voice_id: str) -> str:
        """String: a tenant's voice, as JSON (under the tenant, so ids never cross)."""
        return f"{self.prefix}:voice:{tenant}:{voice_id}"

    def voices_by_tenant(self, tenant: str) -> str:
        """Sorted set of a tenant's voice ids, scored by creation time (ms)."""
        return f"{self.prefix}:idx:voices:{tenant}"

    # -- storage -----------------------------------------------------------------
    def upload_sweep_claim(self) -> str:
        """String with a TTL: the worker that sweeps incomplete uploads this period."""
        return f"{self.prefix}:storage:upload-sweep"

    def uploads_seen(self) -> str:
        """Hash: upload id → when a sweep first saw the incomplete upload (epoch s)."""
        return f"{self.prefix}:storage:uploads-seen"

    def uploads_swept(self) -> str:
        """Counter: incomplete uploads the sweeps aborted, ever (for metrics)."""
        return f"{self.prefix}:storage:uploads-swept"

    def cache_used(self) -> str:
        """Sorted set: segment cache object key → when a job last used it (epoch s)."""
        return f"{self.prefix}:storage:cache-used"

    def cache_sweep_claim(self) -> str:
        """String with a TTL: the worker that sweeps the segment cache this period."""
        return f"{self.prefix}:storage:cache-sweep"

    def cache_swept(self) -> str:
        """Counter: segment cache objects the sweeps deleted, ever."""
        return f"{self.prefix}:storage:cache-swept"

    # -- provider governor -------------------------------------------------------
    def governor_holders(self, name: str = "provider") -> str:
        """Sorted set: lease id → expiry (ms), the sessions in use; and ``peak`` →
        minus the most ever held at once (scores above zero are the leases)."""
        return f"{self.prefix}:gov:{name}:holders"

    def governor_waiters(self, name: str = "provider") -> str:
        """Sorted set: waiter id → queue position; served in order."""
        return f"{self.prefix}:gov:{name}:waiters"

    def governor_waiter_seen(self, name: str = "provider") -> str:
        """Sorted set: waiter id → last heartbeat (ms); stale waiters are dropped."""
        return f"{self.prefix}:gov:{name}:seen"

    def governor_ticket(self, name: str = "provider") -> str:
        """Counter giving waiters their queue positions."""
        return f"{self.prefix}:gov:{name}:ticket"

    def governor_wake(self, name: str = "provider", waiter: str = "") -> str:
        """List a waiter blocks on (BLPOP) until a release hands it a slot; with
        ``waiter=""`` the prefix the release script completes with the waiter's id."""
        return f"{self.prefix}:gov:{name}:wake:{waiter}"

    # -- API ---------------------------------------------------------------------
    def idempotency(self, tenant: str, key: str) -> str:
        """String: the job id a tenant's Idempotency-Key created, with the body's hash."""
        return f"{self.prefix}:idem:{tenant}:{key}"

    def rate(self, tenant: str, window: int) -> str:
        """Counter of a tenant's requests in one rate-limit window."""
        return f"{self.prefix}:rate:{tenant}:{window}"

    def jobs_in_flight(self, tenant: str) -> str:
        """Sorted set of a tenant's jobs the API counts as in flight (queued or running).

        Members leave lazily: finished or expired jobs are pruned when the set is full.
        """
        return f"{self.prefix}:inflight:{tenant}"

    # -- Celery (its own names; here so metrics and tests can read queue depth) ----
    def celery_queue(self, queue: str, priority: int = 0) -> str:
        """The broker list of a Celery queue (kombu's Redis transport, with our
        ``global_keyprefix``); priorities above 0 live in lists of their own."""
        suffix = f"\x06\x16{priority}" if priority else ""
        return f"{self.prefix}:celery:{queue}{suffix}"


def decoded(value: bytes | str) -> str:
    """A Redis reply as text: clients made without ``decode_responses`` give bytes."""
    return value.decode() if isinstance(value, bytes) else value
