"""The Celery task of batches: ``shoal.assemble_batch``, on the bulk queue.

Queued by :func:`worker.batches.lifecycle.queue_assembly` once every item of a batch
generation has succeeded; builds the combined outputs
(:func:`worker.batches.build.build_batch`).  Transient failures re-queue the
task with a countdown (a message, not a sleeping thread); on the way, staging
of batches whose retention has passed is swept.
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import Task

from worker.batches.build import build_batch
from worker.batches.lifecycle import sweep_staging
from worker.batches.store import BatchStore
from worker.celery import app
from worker.keys import Keys
from worker.queues import ASSEMBLE_BATCH
from worker.settings import Settings, get_settings
from worker.storage.client import Storage

log = logging.getLogger(__name__)

_resources: tuple[Settings, BatchStore, Storage] | None = None
_lock = threading.Lock()


def resources() -> tuple[Settings, BatchStore, Storage]:
    """This process's settings, batch store and storage, built on first use."""
    global _resources
    with _lock:
        if _resources is None:
            settings = get_settings()
            client = redis.Redis.from_url(settings.redis_url)
            batches = BatchStore(client, Keys(settings.key_prefix), settings.job_ttl_seconds)
            _resources = (settings, batches, Storage.from_settings(settings))
        return _resources


@app.task(
    bind=True,
    name=ASSEMBLE_BATCH,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def assemble_batch(self: Task, batch_id: str, generation: int, attempt: int = 1) -> str:
    """Build one generation of a batch's combined outputs; re-queue itself to retry."""
    settings, batches, storage = resources()
    try:
        sweep_staging(batches, storage)
    except Exception:  # housekeeping must never stand in the way of a build
        log.exception("staging sweep failed")
    outcome = build_batch(
        batch_id,
        generation,
        settings=settings,
        batches=batches,
        storage=storage,
        celery_app=self.app,
        attempt=attempt,
    )
    if outcome.retry_in is not None:
        raise self.retry(
            kwargs={"batch_id": batch_id, "generation": generation, "attempt": attempt + 1},
            countdown=outcome.retry_in,
        )
    return outcome.status
