"""A batch's build: its lease, its attempts, and the record of what it made.

:func:`build_batch` runs in the ``shoal.assemble_batch`` task once every item
of a generation has succeeded (steps 2-4 are :mod:`worker.batches.products`):

1. take the batch's assembly lease (one builder at a time; renewed while it
   runs, so a dead builder is noticed when it lapses).  A builder that loses
   it stops at the next step — no upload, no record — and leaves the build to
   the worker that took it (:mod:`worker.lease`);
2. fetch each chapter's *master* — the lossless segment PCM its job kept in
   staging — and cut it back into the segments it was rendered from; a
   chapter whose master is gone is decoded from its own output file instead
   (one more lossy generation; the manifest says ``"source": "output"``);
3. check each chapter's duration against its text (nothing silently missing);
4. build the M4B or MP3 with :func:`worker.audio.build_audiobook` (same
   inputs, same bytes: a rebuild after one item was retried changes only that
   chapter), upload it and the manifest under ``<tenant>/<batch>/v<generation>/``;
5. record them on the batch — unless the batch was canceled or retried
   meanwhile, when they are deleted instead — remove the previous
   generation's outputs and the masters of replaced jobs, and emit
   ``batch.succeeded``.

Transient failures (storage, Redis, the disk) are retried with the jobs'
backoff, :func:`worker.retry.job_policy`, up to ``max_attempts`` builds of the
generation, counted on the batch record so builds whose worker died count too;
anything else fails the build with a message, emits ``batch.failed``, and
leaves every chapter's own file in place.  Each build logs one line when it
starts and one when it ends, with its duration and outcome.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.audio import AudioError
from worker.batches.lifecycle import BatchView, batch_summary, load_view
from worker.batches.model import AssemblyState, Batch
from worker.batches.products import BuildFailed, Products, make_products
from worker.batches.store import BatchStore
from worker.callbacks.emit import BatchEvent, emit_batch_event
from worker.jobs.model import JobStatus
from worker.lease import Lease, LeaseLost, assembly_lease
from worker.queues import Sender
from worker.retry import give_up_message, job_policy
from worker.settings import Settings
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """How a build ended: ``built``, ``skipped`` (nothing to do), ``failed``, ``retry``,
    or ``lost`` (another worker took the lease and carries on)."""

    status: str
    retry_in: float | None = None
    error: str | None = None


def build_batch(
    batch_id: str,
    generation: int,
    *,
    settings: Settings,
    batches: BatchStore,
    storage: Storage,
    celery_app: Sender,
    attempt: int = 1,
) -> BuildOutcome:
    """Build and record the combined outputs of ``generation``; see the module docstring.

    ``attempt`` is the task's own count, kept for messages queued by older
    workers; the batch record's count of builds decides when to give up.
    """
    batch = batches.get(batch_id)
    if batch is None or not _wanted(batch, generation):
        return BuildOutcome("skipped")
    lease = assembly_lease(batches, batch_id, settings.job_lease_seconds)
    if not lease.acquire():
        log.info("batch %s: another worker is building it", batch_id)
        return BuildOutcome("skipped")
    started = time.monotonic()
    outcome = BuildOutcome("failed", error="stopped by an error")
    try:
        with lease.renewing():
            outcome = _build_locked(
                batch_id, generation, settings, batches, storage, celery_app, lease
            )
        return outcome
    finally:
        lease.release()
        how = outcome.status + (f": {outcome.error}" if outcome.error else "")
        if outcome.retry_in is not None:
            how += f"; retry in {outcome.retry_in:.1f}s"
        elapsed = time.monotonic() - started
        log.info(
            "batch %s: build of generation %d ended after %.1fs: %s",
            batch_id,
            generation,
            elapsed,
            how,
        )


def _wanted(batch: Batch, generation: int) -> bool:
    a = batch.assembly
    if batch.canceled_at is not None or a.generation != generation:
        return False
    return not (
        a.state in (AssemblyState.DONE, AssemblyState.FAILED) and a.built_generation == generation
    )


def _build_locked(
    batch_id: str,
    generation: int,
    settings: Settings,
    batches: BatchStore,
    storage: Storage,
    celery_app: Sender,
    lease: Lease,
) -> BuildOutcome:
    batch = batches.get(batch_id)
    if batch is None or not _wanted(batch, generation):
        return BuildOutcome("skipped")
    view = load_view(batches, batch)
    if not all(s is JobStatus.SUCCEEDED for s in view.statuses):
        return BuildOutcome("skipped")  # a stale message: the items changed since
    policy = job_policy(settings)
    if batch.assembly.attempts >= policy.max_attempts:
        # The builds so far ended with their worker (killed, out of memory):
        # one more would likely do the same.
        last = (batch.assembly.error or "the worker building it stopped").removeprefix("retrying: ")
        message = give_up_message(batch.assembly.attempts, last, unit="build")
        return _fail(batches, view, generation, message, settings, celery_app)
    building = batches.update(batch_id, _mark_building(generation))
    if building is None:
        return BuildOutcome("skipped")
    attempt = building.assembly.attempts
    log.info("batch %s: building generation %d (build %d)", batch_id, generation, attempt)
    workdir = settings.spool_dir / f"{batch_id}-{uuid.uuid4().hex[:8]}"
    try:
        workdir.mkdir(parents=True)
        products = make_products(view, generation, workdir, batches, storage, lease)
        lease.check()  # the record is the last word: only the lease's holder writes it
    except Exception as exc:
        return _failed_build(exc, batches, view, generation, attempt, settings, celery_app, lease)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _record(batches, storage, view, generation, products, settings, celery_app)


def _mark_building(generation: int) -> Callable[[Batch], Batch | None]:
    """The record change that starts a build: one more build counted."""

    def building(b: Batch) -> Batch | None:
        if not _wanted(b, generation):
            return None
        assembly = b.assembly.model_copy(
            update={
                "state": AssemblyState.BUILDING,
                "attempts": b.assembly.attempts + 1,
                "started_at": time.time(),
            }
        )
        return b.model_copy(update={"assembly": assembly})

    return building


def _failed_build(
    exc: Exception,
    batches: BatchStore,
    view: BatchView,
    generation: int,
    attempt: int,
    settings: Settings,
    celery_app: Sender,
    lease: Lease,
) -> BuildOutcome:
    """Fail the build for a permanent error; schedule another for a transient one."""
    batch_id = view.batch.id
    if isinstance(exc, LeaseLost) or lease.lost.is_set():
        # Whatever went wrong, the build is another worker's now: nothing to record.
        return BuildOutcome("lost", error="lease lost; another worker carries on")
    if isinstance(exc, BuildFailed | AudioError | ValueError):
        return _fail(batches, view, generation, _message(exc), settings, celery_app)
    if isinstance(exc, StorageError | redis.RedisError | OSError):
        retryable = not isinstance(exc, StorageError) or exc.retryable
        policy = job_policy(settings)
        if policy.should_retry(attempt, retryable):
            delay = policy.delay(attempt, random.random())
            _set_state(batches, batch_id, generation, AssemblyState.PENDING, f"retrying: {exc}")
            return BuildOutcome("retry", retry_in=delay, error=str(exc))
        message = _message(exc)
        if retryable:
            message = give_up_message(attempt, message, unit="build")
        return _fail(batches, view, generation, message, settings, celery_app)
    # A bug: retrying would only repeat it.
    log.exception("batch %s: build failed unexpectedly", batch_id, exc_info=exc)
    message = f"internal error: {type(exc).__name__}: {exc}"
    return _fail(batches, view, generation, message, settings, celery_app)


def _record(
    batches: BatchStore,
    storage: Storage,
    view: BatchView,
    generation: int,
    products: Products,
    settings: Settings,
    celery_app: Sender,
) -> BuildOutcome:
    batch_id = view.batch.id
    previous: list[str] = []
    now = time.time()
    recorded = batches.update(batch_id, _mark_done(generation, products, now, previous))
    made = (products.combined, products.manifest, products.read_along)
    mine = [o.key for o in made if o is not None]
    if recorded is None:
        _delete_quietly(storage, mine)
        return BuildOutcome("skipped", error="the generation went stale; its outputs are dropped")
    _delete_quietly(storage, [key for key in previous if key not in mine])
    _drop_replaced_masters(batches, storage, recorded)
    batches.schedule_staging_cleanup(batch_id, now + batches.ttl_seconds)
    final = load_view(batches, recorded)
    emit_batch_event(
        recorded,
        BatchEvent.SUCCEEDED,
        settings=settings,
        sender=celery_app,
        data=batch_summary(final),
        sequence=generation,
    )
    return BuildOutcome("built")


def _mark_done(
    generation: int, products: Products, now: float, previous: list[str]
) -> Callable[[Batch], Batch | None]:
    """The record change of a finished build; ``previous`` receives the keys it replaces."""

    def done(b: Batch) -> Batch | None:
        if b.canceled_at is not None or b.assembly.generation != generation:
            return None
        old = b.assembly
        previous[:] = [o.key for o in (old.combined, old.manifest, old.read_along) if o is not None]
        assembly = old.model_copy(
            update={
                "state": AssemblyState.DONE,
                "built_generation": generation,
                "combined": products.combined,
                "manifest": products.manifest,
                "loudness": products.loudness,
                "read_along": products.read_along,
                "error": None,
                "finished_at": now,
            }
        )
        return b.model_copy(update={"assembly": assembly, "finished_at": now})

    return done


def _fail(
    batches: BatchStore,
    view: BatchView,
    generation: int,
    message: str,
    settings: Settings,
    celery_app: Sender,
) -> BuildOutcome:
    failed = _set_state(batches, view.batch.id, generation, AssemblyState.FAILED, message)
    if failed is not None:
        batches.schedule_staging_cleanup(failed.id, time.time() + batches.ttl_seconds)
        emit_batch_event(
            failed,
            BatchEvent.FAILED,
            settings=settings,
            sender=celery_app,
            data=batch_summary(load_view(batches, failed)),
            sequence=generation,
        )
    return BuildOutcome("failed", error=message)


def _set_state(
    batches: BatchStore, batch_id: str, generation: int, state: AssemblyState, error: str | None
) -> Batch | None:
    def change(b: Batch) -> Batch | None:
        if b.assembly.generation != generation or b.canceled_at is not None:
            return None
        update: dict[str, Any] = {"state": state, "error": error}
        finished: float | None = None
        if state is AssemblyState.FAILED:
            update |= {"built_generation": generation, "finished_at": time.time()}
            finished = update["finished_at"]
        assembly = b.assembly.model_copy(update=update)
        return b.model_copy(update={"assembly": assembly, "finished_at": finished})

    return batches.update(batch_id, change)


def _drop_replaced_masters(batches: BatchStore, storage: Storage, batch: Batch) -> None:
    current = set(batch.job_ids)
    stale = [m for job_id, m in batches.masters(batch.id).items() if job_id not in current]
    _delete_quietly(storage, [m.key for m in stale])
    batches.drop_masters(batch.id, [m.job_id for m in stale])


def _delete_quietly(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except StorageError:
            log.warning("could not delete %s; it may remain", storage.url(key))


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)
