"""The Celery task of jobs, the worker side's enqueue, and the reaper.

A job is one ``shoal.synthesize`` message per attempt.  The reaper, a thread in
every worker process, looks twice a second at the jobs' lists in Redis: it
queues a job whose retry is due (a backoff is a due time, not a countdown held
by a worker that may be busy) and re-queues one whose worker died (its lease
lapsed), so a ``kill -9`` costs one lease period, not a visibility timeout.  It
also acts on batches whose end nobody acted on
(:func:`worker.batches.lifecycle.reap_batches`), and starts the sweep of
incomplete uploads (:mod:`worker.storage.sweep`).  The API queues jobs through
:mod:`api.dispatch`, never through this module.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from worker.batches.lifecycle import reap_batches
from worker.batches.store import BatchStore
from worker.celery import app
from worker.jobs.cache import start_cache_sweep
from worker.jobs.model import Job
from worker.jobs.runner import JobRunner
from worker.jobs.store import DueReason
from worker.lease import new_owner
from worker.queues import SYNTHESIZE, send_job
from worker.settings import Settings, get_settings
from worker.storage.sweep import start_sweep

log = logging.getLogger(__name__)

_runner: JobRunner | None = None
_runner_lock = threading.Lock()
_reaper_stop = threading.Event()

#: How often the reaper looks at the jobs' lists: a lapsed lease or a due retry
#: is acted on within this long, for one Redis command (``JobStore.due_jobs``).
LOOK_EVERY = 0.5
#: How often running jobs missing from the lists (started by an earlier version,
#: during a rolling upgrade) are put on them.
ADOPT_EVERY = 60.0


def runner() -> JobRunner:
    """This process's job runner, built on first use from the settings."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = JobRunner(get_settings(), sender=app)
        return _runner


@app.task(bind=True, name=SYNTHESIZE, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def synthesize(self: Task, job_id: str, token: str | None = None) -> str | None:
    """Run one attempt of a job (a retry is queued by a reaper when due)."""
    try:
        outcome = runner().run(job_id, token)
    except redis.RedisError as exc:
        # Redis failed outside the attempt (taking the lease, starting, recording
        # the outcome): acknowledging now could lose a queued job, which the reaper
        # does not look for.  Come back once any lease taken on the way has lapsed.
        delay = runner().settings.job_lease_seconds * (1 + random.random())
        log.warning("job %s: Redis failed (%s); trying again in %.1fs", job_id, exc, delay)
        raise self.retry(kwargs={"job_id": job_id, "token": token}, countdown=delay) from exc
    return outcome.status.value if outcome.status else None


def enqueue(
    job: Job,
    settings: Settings | None = None,
    celery_app: Celery | None = None,
    token: str | None = None,
) -> None:
    """Queue a job from the worker side (the reaper, tests) with ``celery_app`` or this
    worker's app; see :func:`worker.queues.send_job`."""
    send_job(celery_app or app, job, settings or get_settings(), token)


def queue_due_jobs(run: JobRunner, celery_app: Celery | None = None) -> list[str]:
    """Queue jobs whose next attempt is due or whose worker is gone; returns their ids."""
    store, settings = run.store, run.settings
    queued = []
    for job_id in store.due_jobs(limit=100):
        token = new_owner()
        # If the message is not taken by then, queue another: the broker gives back
        # a message taken by a worker that died after the visibility timeout, too.
        reason = store.claim_due(job_id, token, pickup=settings.visibility_timeout)
        job = store.get(job_id) if reason is not None else None
        if job is None:
            continue
        if reason is DueReason.LAPSED:
            log.warning("job %s: its worker is gone; re-queued", job_id)
        else:
            log.info("job %s: its next attempt is due; queued", job_id)
        enqueue(job, settings, celery_app, token)
        queued.append(job_id)
    return queued


def adopt_jobs_once(run: JobRunner, celery_app: Celery | None = None) -> int:
    """Put running jobs that an earlier version started on the jobs' lists."""
    if added := run.store.adopt_running_jobs():
        log.info("%d running jobs of an earlier version put on the reaper's list", added)
    return added


def reap_batches_once(run: JobRunner, celery_app: Celery | None = None) -> list[str]:
    """Act on batches left waiting (an end nobody acted on, a dead build); returns their ids."""
    batches = BatchStore(run.redis, run.keys, run.settings.job_ttl_seconds)
    return reap_batches(batches, run.settings, sender=celery_app or app, storage=run.storage)


def sweep_uploads_once(run: JobRunner, celery_app: Celery | None = None) -> bool:
    """Start this period's sweep of incomplete uploads, if it is this worker's turn
    (:func:`worker.storage.sweep.start_sweep`; it runs in a thread of its own), and
    the segment cache's sweep of what went unused (:func:`worker.jobs.cache.start_cache_sweep`)."""
    start_cache_sweep(run.storage, run.redis, run.keys, run.settings)
    return start_sweep(run.storage, run.redis, run.keys, run.settings)


def _reap_forever() -> None:
    run = runner()
    try:
        batches = BatchStore(run.redis, run.keys, run.settings.job_ttl_seconds)
        if added := batches.index_open_batches():
            log.info("%d unfinished batches of an earlier version put on the reaper's list", added)
    except Exception:  # retried at the next start; new batches are listed as they are made
        log.exception("listing earlier batches for the reaper failed")
    period = max(run.settings.job_lease_seconds / 2, LOOK_EVERY)
    chores: tuple[tuple[Callable[[JobRunner], object], float], ...] = (
        (queue_due_jobs, LOOK_EVERY),
        (reap_batches_once, period),
        (sweep_uploads_once, period),
        (adopt_jobs_once, ADOPT_EVERY),
    )
    next_at = dict.fromkeys((chore for chore, _ in chores), time.monotonic())
    while not _reaper_stop.wait(LOOK_EVERY):
        for chore, every in chores:
            if time.monotonic() < next_at[chore]:
                continue
            next_at[chore] = time.monotonic() + every
            try:
                chore(run)
            except Exception:  # the reaper must outlive a Redis hiccup
                log.exception("reaper pass failed (%s)", chore.__name__)


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    threading.Thread(target=_reap_forever, name="shoal-reaper", daemon=True).start()


@worker_shutting_down.connect
def _stop_reaper(**_: Any) -> None:
    _reaper_stop.set()


@worker_shutdown.connect
def _close_runner(**_: Any) -> None:
    # After the pool stopped: no attempt runs any more on the threads' event loops.
    with _runner_lock:
        if _runner is not None:
            _runner.close()
