"""The Celery task of jobs, the worker side's enqueue, and the reaper.

A job is one ``shoal.synthesize`` message.  Backoff between attempts is a
re-queue with a countdown, not a sleep in a worker thread.  The reaper, a
thread in every worker process, re-queues running jobs whose worker died (their
job lease lapsed) — so a ``kill -9`` costs one lease period, not a visibility
timeout — and acts on batches whose end nobody acted on
(:func:`worker.batches.lifecycle.reap_batches`).  The API queues jobs through
:mod:`api.dispatch`, never through this module.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import redis
from celery import Celery, Task
from celery.signals import worker_ready, worker_shutting_down

from worker.batches.lifecycle import reap_batches
from worker.batches.store import BatchStore
from worker.celery import app
from worker.jobs.model import Job
from worker.jobs.runner import JobRunner
from worker.queues import SYNTHESIZE, send_job
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

_runner: JobRunner | None = None
_runner_lock = threading.Lock()
_reaper_stop = threading.Event()


def runner() -> JobRunner:
    """This process's job runner, built on first use from the settings."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = JobRunner(get_settings(), sender=app)
        return _runner


@app.task(bind=True, name=SYNTHESIZE, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def synthesize(self: Task, job_id: str, token: str | None = None) -> str | None:
    """Run one attempt of a job; re-queue itself with a countdown to retry."""
    try:
        outcome = runner().run(job_id, token)
    except redis.RedisError as exc:
        # Redis failed outside the attempt (taking the lease, starting, recording
        # the outcome): acknowledging now could lose a queued job, which the reaper
        # does not look for.  Come back once any lease taken on the way has lapsed.
        delay = runner().settings.job_lease_seconds * (1 + random.random())
        log.warning("job %s: Redis failed (%s); trying again in %.1fs", job_id, exc, delay)
        raise self.retry(kwargs={"job_id": job_id, "token": token}, countdown=delay) from exc
    if outcome.retry_in is not None:
        raise self.retry(
            kwargs={"job_id": job_id, "token": outcome.token}, countdown=outcome.retry_in
        )
    return outcome.status.value if outcome.status else None


def enqueue(job: Job, settings: Settings | None = None, celery_app: Celery | None = None) -> None:
    """Queue a job from the worker side (the reaper, tests) with ``celery_app`` or this
    worker's app; see :func:`worker.queues.send_job`."""
    send_job(celery_app or app, job, settings or get_settings())


def reap_once(run: JobRunner, celery_app: Celery | None = None) -> list[str]:
    """Re-queue running jobs whose worker is gone; returns their ids."""
    store, settings = run.store, run.settings
    requeued = []
    for job_id in store.orphaned_running_jobs(limit=100):
        if not store.claim_requeue(job_id, settings.job_lease_seconds):
            continue
        job = store.get(job_id)
        if job is None or job.status.terminal:
            continue
        log.warning("job %s: its worker is gone; re-queued", job_id)
        enqueue(job, settings, celery_app)
        requeued.append(job_id)
    return requeued


def reap_batches_once(run: JobRunner, celery_app: Celery | None = None) -> list[str]:
    """Act on batches left waiting (an end nobody acted on, a dead build); returns their ids."""
    batches = BatchStore(run.redis, run.keys, run.settings.job_ttl_seconds)
    return reap_batches(batches, run.settings, sender=celery_app or app, storage=run.storage)


def _reap_forever() -> None:
    run = runner()
    try:
        batches = BatchStore(run.redis, run.keys, run.settings.job_ttl_seconds)
        if added := batches.index_open_batches():
            log.info("%d unfinished batches of an earlier version put on the reaper's list", added)
    except Exception:  # retried at the next start; new batches are listed as they are made
        log.exception("listing earlier batches for the reaper failed")
    period = max(run.settings.job_lease_seconds / 2, 0.5)
    while not _reaper_stop.wait(period):
        for reap in (reap_once, reap_batches_once):
            try:
                reap(run)
            except Exception:  # the reaper must outlive a Redis hiccup
                log.exception("reaper pass failed (%s)", reap.__name__)


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    threading.Thread(target=_reap_forever, name="shoal-reaper", daemon=True).start()


@worker_shutting_down.connect
def _stop_reaper(**_: Any) -> None:
    _reaper_stop.set()
