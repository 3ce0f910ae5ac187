"""Batch orchestration: what happens when a batch's jobs end, and the hooks the runner calls.

The job runner knows nothing of batches beyond three calls into this module:

* :func:`governor_priority` — the priority a job's segments wait with for a
  provider slot: batch work always queues behind narration jobs;
* :func:`keep_chapter_master` — before a batch job's staging is cleaned, its
  segment PCM is kept as one lossless *chapter master* object, so the
  combined book is encoded once, from the provider's own samples, and an
  M4B's chapter section is encoded from it
  (:func:`keep_chapter_master_alongside` does it on a thread of its own while
  the job encodes its own file);
* :func:`on_job_terminal` — after a job ends (succeeded, failed, canceled):
  queues the item's ``batch.item.*`` callback, and when every item of the batch
  has ended, acts on it exactly once (:func:`maybe_finalize`): queues
  ``shoal.assemble_batch`` if every item succeeded, else reports the batch.

A lost message or a dead worker delays the end of a batch but never loses it:
the reaper thread of every worker (:mod:`worker.jobs.tasks`) runs
:func:`reap_batches`, which looks at open batches nobody has touched for a
lease period and acts on an end nobody acted on, or re-queues a build whose
worker died.  The API only reads batches (``GET`` changes nothing); it acts on
the end of a batch only when it cancels one.

Staging of a batch (masters, cover) lives under ``<staging>/<batch id>/`` and is
kept while items may still be retried — until the batch expires — then
deleted by :func:`sweep_staging`; a canceled batch's goes at once.

Callbacks of a batch (:class:`~worker.callbacks.emit.BatchEvent`) go to its
``callback_url`` through :mod:`worker.callbacks.emit`, signed and retried like
job callbacks; their ids are stable per batch and generation.  Nothing here
knows a Celery app: whoever calls passes a ``sender`` (:class:`worker.queues.Sender`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.audio import SegmentAudio
from worker.batches.model import (
    AssemblyState,
    Batch,
    BatchStatus,
    ChapterMaster,
    MasterPiece,
    derive_status,
)
from worker.batches.sections import keep_section
from worker.batches.store import BatchNotFound, BatchStore
from worker.callbacks.emit import ITEM_EVENTS, BatchEvent, emit_batch_event, emit_item_event
from worker.digest import Digest
from worker.jobs.model import Job, JobStatus
from worker.jobs.store import JobStore
from worker.queues import Sender, send_assembly
from worker.settings import Settings
from worker.storage.client import Storage, StorageError

__all__ = [
    "BATCH_PRIORITY_OFFSET",
    "BatchView",
    "batch_summary",
    "clean_staging",
    "governor_priority",
    "keep_chapter_master",
    "load_view",
    "master_key",
    "maybe_finalize",
    "on_job_terminal",
    "queue_assembly",
    "reap_batches",
    "split_master",
    "sweep_staging",
]

log = logging.getLogger(__name__)

#: Batch jobs wait for provider slots this far below narration jobs of the same priority.
BATCH_PRIORITY_OFFSET = 10
_COPY_CHUNK = 1 << 20


# -- runner hooks -------------------------------------------------------------------


def governor_priority(job: Job) -> int:
    """The priority of ``job``'s segments at the provider governor.

    Narration jobs keep their own (0–9); batch jobs get theirs minus
    :data:`BATCH_PRIORITY_OFFSET`, so a book never holds back a short job that
    waits for a provider slot, whatever priorities they were given.
    """
    priority = job.request.priority
    return priority - BATCH_PRIORITY_OFFSET if job.batch_id else priority


def master_key(storage: Storage, batch_id: str, job_id: str) -> str:
    """Staging key of a job's chapter master."""
    return storage.staging_key(batch_id, f"masters/{job_id}.pcm")


def keep_chapter_master_alongside(
    job: Job, parts: Sequence[SegmentAudio], *, storage: Storage, store: JobStore
) -> Callable[[], ChapterMaster | None]:
    """:func:`keep_chapter_master` on a thread of its own; returns what waits for it.

    The wait returns the master, or raises what keeping it raised.  Wait
    before ``parts`` are removed, whether the job goes on or fails.
    """
    if job.batch_id is None or not parts:
        return lambda: None
    done: list[ChapterMaster | None] = []
    failed: list[BaseException] = []

    def keep() -> None:
        try:
            done.append(keep_chapter_master(job, parts, storage=storage, store=store))
        except BaseException as exc:  # handed to whoever waits
            failed.append(exc)

    thread = threading.Thread(target=keep, name=f"master {job.id}", daemon=True)
    thread.start()

    def wait() -> ChapterMaster | None:
        thread.join()
        if failed:
            raise failed[0]
        return done[0]

    return wait


def keep_chapter_master(
    job: Job, parts: Sequence[SegmentAudio], *, storage: Storage, store: JobStore
) -> ChapterMaster | None:
    """Keep a batch job's segment PCM as one staging object; a no-op for other jobs.

    Call it once the job's output is assembled, while ``parts`` (the segment
    files, in order, with their pauses) are still on disk and before the job's
    staging is cleaned.  The concatenation is written beside the first part,
    uploaded to ``<staging>/<batch>/masters/<job>.pcm`` and recorded on the
    batch, then removed.  For an M4B book the chapter's section is encoded
    and kept too (:func:`~worker.batches.sections.keep_section`).  Raises
    :class:`~worker.storage.client.StorageError` (a failed upload: the
    attempt should be retried like any other upload).
    """
    if job.batch_id is None or not parts:
        return None
    path = parts[0].path.parent / f"master-{job.id}.pcm"
    key = master_key(storage, job.batch_id, job.id)
    try:
        pieces, sha256 = _concatenate(parts, path)
        storage.upload_file(
            path,
            key,
            content_type="application/octet-stream",
            metadata={"job-id": job.id, "batch-id": job.batch_id},
        )
    finally:
        path.unlink(missing_ok=True)
    total = sum(p.bytes for p in pieces)
    master = ChapterMaster(job_id=job.id, key=key, bytes=total, sha256=sha256, pieces=pieces)
    batches = _batches(store)
    batches.set_master(job.batch_id, master)
    batch = batches.get(job.batch_id)
    if batch is None or batch.canceled_at is not None:
        # Canceled while this job ran: the batch's staging is cleaned without waiting for it.
        storage.delete(key)
        batches.drop_masters(job.batch_id, [job.id])
        return None
    log.info("job %s: chapter master kept (%d bytes, %.1f s)", job.id, total, master.duration_s)
    keep_section(batch, job.id, master, parts, storage)
    return master


def _concatenate(parts: Sequence[SegmentAudio], path: Path) -> tuple[list[MasterPiece], str]:
    """Write ``parts`` one after another to ``path``; their pieces and the SHA-256 of all."""
    digest = Digest()
    pieces = []
    with path.open("wb") as out:
        for part in parts:
            size = 0
            with part.path.open("rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            pieces.append(
                MasterPiece(
                    bytes=size, sample_rate=part.sample_rate, silence_after_ms=part.silence_after_ms
                )
            )
    return pieces, digest.hexdigest()


def on_job_terminal(
    job_id: str,
    settings: Settings,
    *,
    store: JobStore,
    sender: Sender,
    storage: Storage | None = None,
) -> None:
    """Tell the job's batch (if any) that the job ended.  Never raises.

    Safe to call more than once, from any worker: callbacks are queued once per
    job and the end of the batch is acted on once.
    """
    try:
        job = store.get(job_id)
        if job is None or job.batch_id is None or not job.status.terminal:
            return
        batches = _batches(store, settings)
        batch = batches.get(job.batch_id)
        if batch is None:
            return
        index = batch.item_of(job.id)
        if index is None:
            return  # replaced by a retry: the item's new job speaks for it
        if batch.callback_url and job.status in ITEM_EVENTS and batches.claim_item_event(job.id):
            emit_item_event(batch, index, job, settings=settings, sender=sender)
        maybe_finalize(batches, batch.id, settings, sender=sender, storage=storage)
    except Exception:  # the job's own outcome must never depend on its batch
        log.exception("job %s: batch bookkeeping failed", job_id)


# -- the end of a batch -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch with its items' jobs (None where a record is gone) and its derived status."""

    batch: Batch
    jobs: list[Job | None]
    status: BatchStatus

    @property
    def statuses(self) -> list[JobStatus | None]:
        return [job.status if job else None for job in self.jobs]


def load_view(batches: BatchStore, batch: Batch) -> BatchView:
    """Load the batch's current jobs and derive its status."""
    jobs = batches.jobs(batch.job_ids)
    statuses = [job.status if job else None for job in jobs]
    return BatchView(batch, jobs, derive_status(batch, statuses))


def maybe_finalize(
    batches: BatchStore,
    batch_id: str,
    settings: Settings,
    *,
    sender: Sender,
    storage: Storage | None = None,
) -> bool:
    """Act on the end of the batch's current generation, once; True if this call acted.

    Every item ended: if all succeeded, queue the build of the combined outputs
    (again, if a build's worker died: its lease lapsed); otherwise record the
    batch as finished and emit ``batch.failed`` (or ``batch.canceled``).  Called
    after each job ends, by the reaper for batches left waiting, and by the API
    after a cancel.  Only the items' statuses are read until there is
    something to do.
    """
    batch = batches.get(batch_id)
    if batch is None:
        return False
    statuses = batches.statuses(batch.job_ids)
    if any(s is not None and not s.terminal for s in statuses):
        return False  # items still running (or a cancellation still reaching them)
    if batch.canceled_at is None and all(s is JobStatus.SUCCEEDED for s in statuses):
        return _build_or_rebuild(batches, batch, settings, sender)
    generation = batch.assembly.generation
    # A cancellation is its own end, even of a generation whose build was queued.
    claim = f"{generation}-canceled" if batch.canceled_at is not None else str(generation)
    if not batches.claim_finalize(batch.id, claim):
        return False
    _finish(batches, batch, settings, sender=sender, storage=storage)
    return True


def _finish(
    batches: BatchStore,
    batch: Batch,
    settings: Settings,
    *,
    sender: Sender,
    storage: Storage | None,
) -> None:
    """Record the end of a batch whose items did not all succeed, and report it."""
    generation = batch.assembly.generation

    def finish(b: Batch) -> Batch | None:
        if b.assembly.generation != generation or b.finished_at is not None:
            return None
        state = AssemblyState.SKIPPED if b.assembly.state is not AssemblyState.DONE else None
        assembly = b.assembly.model_copy(update={"state": state or b.assembly.state})
        return b.model_copy(update={"assembly": assembly, "finished_at": time.time()})

    finished = batches.update(batch.id, finish) or batch
    view = load_view(batches, finished)
    event = BatchEvent.CANCELED if view.status is BatchStatus.CANCELED else BatchEvent.FAILED
    log.info("batch %s: ended %s (generation %d)", batch.id, view.status, generation)
    emit_batch_event(
        finished,
        event,
        settings=settings,
        sender=sender,
        data=batch_summary(view),
        sequence=generation,
    )
    if view.status is BatchStatus.CANCELED and storage is not None:
        clean_staging(batches, storage, batch.id)
    else:
        batches.schedule_staging_cleanup(batch.id, time.time() + batches.ttl_seconds)


def _build_or_rebuild(
    batches: BatchStore, batch: Batch, settings: Settings, sender: Sender
) -> bool:
    generation = batch.assembly.generation
    if batches.claim_finalize(batch.id, str(generation)):
        queue_assembly(batches, batch.id, generation, settings, sender)
        return True
    # Claimed before: re-queue a build whose worker died (state building, lease gone).
    stalled = batch.assembly.state is AssemblyState.BUILDING and not batches.assembly_held(batch.id)
    if stalled and batches.claim_requeue(batch.id, settings.job_lease_seconds):
        log.warning("batch %s: its build's worker is gone; building again", batch.id)
        queue_assembly(batches, batch.id, generation, settings, sender)
        return True
    return False


def queue_assembly(
    batches: BatchStore, batch_id: str, generation: int, settings: Settings, sender: Sender
) -> None:
    """Mark the generation's build pending and queue ``shoal.assemble_batch`` on the bulk queue.

    If the broker cannot take it, the claim is released so the next look at the
    batch (the reaper's, at the latest) tries again.
    """

    def pending(b: Batch) -> Batch | None:
        if b.assembly.generation != generation or b.canceled_at is not None:
            return None
        if b.assembly.state is AssemblyState.DONE and b.assembly.built_generation == generation:
            return None
        assembly = b.assembly.model_copy(update={"state": AssemblyState.PENDING, "error": None})
        return b.model_copy(update={"assembly": assembly, "finished_at": None})

    try:
        if batches.update(batch_id, pending) is None:
            return
        send_assembly(sender, batch_id, generation, settings)
    except BatchNotFound:
        return
    except Exception:
        batches.release_finalize(batch_id, str(generation))
        raise
    log.info("batch %s: every item succeeded; build of generation %d queued", batch_id, generation)


def reap_batches(
    batches: BatchStore,
    settings: Settings,
    *,
    sender: Sender,
    storage: Storage,
    now: float | None = None,
    limit: int = 100,
) -> list[str]:
    """Act on open batches nobody has touched for a lease period; returns the ids acted on.

    The fallback for an end nobody acted on (the worker that ran the last item
    died before telling the batch) and for a build whose worker died.  Each
    open batch is looked at by one reaper at a time, at most once a lease
    period, and costs one read of its items' statuses while they run.
    """
    now = time.time() if now is None else now
    acted = []
    for batch_id in batches.claim_quiet(now - settings.job_lease_seconds, now, limit):
        batch = batches.get(batch_id)
        if batch is None or batch.finished_at is not None:
            batches.forget_open(batch_id)  # gone, or finished by an older version
            continue
        if maybe_finalize(batches, batch_id, settings, sender=sender, storage=storage):
            log.warning("batch %s: its end was left waiting; acted on it now", batch_id)
            acted.append(batch_id)
    return acted


# -- staging ------------------------------------------------------------------------------


def clean_staging(batches: BatchStore, storage: Storage, batch_id: str) -> None:
    """Delete the batch's staging objects (masters, cover) and forget its masters."""
    try:
        storage.delete_prefix(storage.staging_key(batch_id, ""))
    except StorageError:
        log.warning("batch %s: staging cleanup failed; objects may remain", batch_id)
        batches.schedule_staging_cleanup(batch_id, time.time() + 3600)
        return
    batches.drop_masters(batch_id)
    batches.unschedule_staging_cleanup(batch_id)


def sweep_staging(batches: BatchStore, storage: Storage, now: float | None = None) -> list[str]:
    """Clean the staging of batches whose retention has passed; returns their ids."""
    done = []
    for batch_id in batches.due_staging_cleanups(time.time() if now is None else now):
        batch = batches.get(batch_id)
        if batch is not None and batch.finished_at is None:
            continue  # retried since: it needs its masters again
        clean_staging(batches, storage, batch_id)
        done.append(batch_id)
    return done


# -- callbacks --------------------------------------------------------------------------


def batch_summary(view: BatchView) -> dict[str, Any]:
    """What a batch event says about its batch: counts, failed items and outputs, no URLs."""
    batch = view.batch
    counts = {status.value: 0 for status in JobStatus}
    failed = []
    for index, (item, job) in enumerate(zip(batch.items, view.jobs, strict=True)):
        status = job.status if job else JobStatus.FAILED
        counts[status.value] += 1
        if status in (JobStatus.FAILED, JobStatus.CANCELED):
            error = job.error.model_dump(mode="json") if job and job.error else None
            failed.append(
                {"index": index, "title": item.title, "job_id": item.job_id, "error": error}
            )
    assembly = batch.assembly
    return {
        "id": batch.id,
        "status": view.status.value,
        "generation": assembly.generation,
        "items": {"total": len(batch.items), **counts},
        "failed_items": failed,
        "outputs": {
            "combined": assembly.combined.model_dump(mode="json") if assembly.combined else None,
            "manifest": assembly.manifest.model_dump(mode="json") if assembly.manifest else None,
        },
        "error": assembly.error,
        "metadata": batch.metadata,
    }


# -- helpers ------------------------------------------------------------------------------


def _batches(store: JobStore, settings: Settings | None = None) -> BatchStore:
    ttl = settings.job_ttl_seconds if settings is not None else store.ttl_seconds
    return BatchStore(store.redis, store.keys, ttl)


def split_master(master: ChapterMaster, source: Path, folder: Path) -> list[SegmentAudio]:
    """Cut a downloaded master back into its segment files in ``folder``, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    with source.open("rb") as src:
        for n, piece in enumerate(master.pieces):
            path = folder / f"{n:06d}.pcm"
            left = piece.bytes
            with path.open("wb") as out:
                while left:
                    chunk = src.read(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise ValueError(f"master of job {master.job_id} is shorter than recorded")
                    out.write(chunk)
                    left -= len(chunk)
            parts.append(SegmentAudio(path, piece.sample_rate, piece.silence_after_ms))
        if src.read(1):
            raise ValueError(f"master of job {master.job_id} is longer than recorded")
    return parts
