"""Building a batch's end products: the combined audiobook and its manifest.

:func:`build_batch` runs in the ``shoal.assemble_batch`` task once every item
of a generation has succeeded:

1. take the batch's assembly lease (one builder at a time; renewed while it
   runs, so a dead builder is noticed when it lapses);
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

Transient failures (storage, Redis, the disk) are retried with backoff up to
:data:`MAX_ATTEMPTS` builds; anything else fails the build with a message,
emits ``batch.failed``, and leaves every chapter's own file in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from worker.audio import (
    ACX,
    AudioError,
    BookMeta,
    ChapterAudio,
    build_audiobook,
    chapter_from_file,
    format_info,
)
from worker.batches.lifecycle import (
    BatchEvent,
    BatchView,
    batch_summary,
    emit_batch_event,
    load_view,
    split_master,
)
from worker.batches.model import (
    AssemblyState,
    Batch,
    BatchItem,
    ChapterMaster,
    CombinedOutput,
    ManifestOutput,
)
from worker.batches.store import BatchStore
from worker.jobs.model import Job, JobStatus
from worker.jobs.truncation import AudioTruncated, check_duration
from worker.settings import Settings
from worker.storage.client import ObjectNotFound, Storage, StorageError
from worker.storage.model import validate_key

log = logging.getLogger(__name__)

#: Builds of one generation before it fails for good (transient errors only).
MAX_ATTEMPTS = 5


class BuildFailed(Exception):
    """The combined outputs cannot be built; ``message`` says why (permanent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """How a build ended: ``built``, ``skipped`` (nothing to do), ``failed`` or ``retry``."""

    status: str
    retry_in: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Products:
    combined: CombinedOutput | None
    manifest: ManifestOutput
    loudness: dict[str, Any] | None


def build_batch(
    batch_id: str,
    generation: int,
    *,
    settings: Settings,
    batches: BatchStore,
    storage: Storage,
    celery_app: Celery | None = None,
    attempt: int = 1,
) -> BuildOutcome:
    """Build and record the combined outputs of ``generation``; see the module docstring."""
    batch = batches.get(batch_id)
    if batch is None or not _wanted(batch, generation):
        return BuildOutcome("skipped")
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    lease = settings.job_lease_seconds
    if not batches.acquire_assembly(batch_id, owner, lease):
        log.info("batch %s: another worker is building it", batch_id)
        return BuildOutcome("skipped")
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(batches, batch_id, owner, lease, stop), daemon=True
    )
    renewer.start()
    started = time.monotonic()
    try:
        return _build_locked(batch_id, generation, settings, batches, storage, celery_app, attempt)
    finally:
        stop.set()
        renewer.join()
        batches.release_assembly(batch_id, owner)
        log.info("batch %s: build ended after %.1fs", batch_id, time.monotonic() - started)


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
    celery_app: Celery | None,
    attempt: int,
) -> BuildOutcome:
    batch = batches.get(batch_id)
    if batch is None or not _wanted(batch, generation):
        return BuildOutcome("skipped")
    view = load_view(batches, batch)
    if not all(s is JobStatus.SUCCEEDED for s in view.statuses):
        return BuildOutcome("skipped")  # a stale message: the items changed since

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

    if batches.update(batch_id, building) is None:
        return BuildOutcome("skipped")
    log.info("batch %s: building generation %d (attempt %d)", batch_id, generation, attempt)
    workdir = settings.spool_dir / f"{batch_id}-{uuid.uuid4().hex[:8]}"
    try:
        workdir.mkdir(parents=True)
        products = _build(view, generation, workdir, batches, storage)
    except (BuildFailed, AudioError, ValueError) as exc:
        return _fail(batches, view, generation, _message(exc), settings, celery_app)
    except (StorageError, redis.RedisError, OSError) as exc:
        retryable = not isinstance(exc, StorageError) or exc.retryable
        if retryable and attempt < MAX_ATTEMPTS:
            delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempt - 1))
            log.warning("batch %s: build failed (%s); retry in %.1fs", batch_id, exc, delay)
            _set_state(batches, batch_id, generation, AssemblyState.PENDING, f"retrying: {exc}")
            return BuildOutcome("retry", retry_in=delay, error=str(exc))
        message = f"gave up after {attempt} builds: {_message(exc)}" if retryable else _message(exc)
        return _fail(batches, view, generation, message, settings, celery_app)
    except Exception as exc:  # a bug: retrying would only repeat it
        log.exception("batch %s: build failed unexpectedly", batch_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return _fail(batches, view, generation, message, settings, celery_app)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _record(batches, storage, view, generation, products, settings, celery_app)


def _build(
    view: BatchView, generation: int, workdir: Path, batches: BatchStore, storage: Storage
) -> _Products:
    batch = view.batch
    produce = batch.produce
    masters = batches.masters(batch.id)
    jobs = [job for job in view.jobs if job is not None]
    chapters: list[ChapterAudio] = []
    entries: list[dict[str, Any]] = []
    for index, (item, job) in enumerate(zip(batch.items, jobs, strict=True)):
        if job.output is None:
            raise BuildFailed(f"item {index} ({item.title!r}) has no output")
        master = masters.get(job.id)
        duration = master.duration_s if master is not None else job.output.duration_s
        speed = job.request.prosody.speed if job.request.prosody else 1.0
        try:
            check_duration(duration, job.request.text, speed, what=f"item {index}")
        except AudioTruncated as exc:
            raise BuildFailed(f"item {index} ({item.title!r}): {exc.message}") from exc
        source = "master" if master is not None else "output"
        if produce.combined is not None:
            chapter, source = _chapter_audio(index, item, job, master, workdir, storage)
            chapters.append(chapter)
        entries.append(
            {"job_id": job.id, "source": source, "duration_s": duration, "file": job.output.key}
        )

    prefix = f"{batch.tenant}/{batch.id}/v{generation}"
    combined: CombinedOutput | None = None
    loudness: dict[str, Any] | None = None
    if produce.combined is not None:
        meta = BookMeta(
            title=batch.book.title,
            author=batch.book.author,
            cover=_cover(batch, workdir, storage),
            cover_type=batch.book.cover_type,
        )
        out = workdir / f"book.{produce.combined.value}"
        result = build_audiobook(
            chapters,
            out,
            produce.combined.value,
            meta,
            sample_rate=produce.sample_rate,
            bitrate_kbps=produce.bitrate_kbps,
            chapter_silence_ms=produce.chapter_silence_ms,
            head_silence_ms=produce.head_silence_ms,
            tail_silence_ms=produce.tail_silence_ms,
            loudness=ACX if produce.loudness is not None else None,
        )
        key = validate_key(f"{prefix}/book.{produce.combined.value}")
        storage.upload_file(
            out,
            key,
            content_type=result.content_type,
            metadata={"batch-id": batch.id, "duration-s": f"{result.duration_s:.3f}"},
        )
        out.unlink(missing_ok=True)
        combined = CombinedOutput(
            url=storage.url(key),
            key=key,
            bytes=result.bytes,
            duration_s=round(result.duration_s, 6),
            format=result.format.value,
            sample_rate=result.sample_rate,
            content_type=result.content_type,
            sha256=result.sha256,
        )
        manifest = result.manifest()
        manifest["file"] = key
        for chapter, entry in zip(manifest["chapters"], entries, strict=True):
            chapter["job_id"], chapter["source"] = entry["job_id"], entry["source"]
        loudness = manifest.get("loudness")
    else:
        manifest = {
            "title": batch.book.title,
            "author": batch.book.author,
            "format": None,
            "file": None,
            "duration_s": round(sum(e["duration_s"] for e in entries), 6),
            "chapters": [
                {
                    "index": i,
                    "title": item.title,
                    "duration_s": round(entry["duration_s"], 6),
                    "chars": item.chars,
                    "file": entry["file"],
                    "job_id": entry["job_id"],
                    "source": entry["source"],
                }
                for i, (item, entry) in enumerate(zip(batch.items, entries, strict=True))
            ],
            "loudness": None,
        }
    manifest = {"batch_id": batch.id, "generation": generation, **manifest}
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    key = validate_key(f"{prefix}/manifest.json")
    put = storage.put_bytes(key, data, content_type="application/json")
    return _Products(
        combined,
        ManifestOutput(url=storage.url(key), key=key, bytes=len(data), sha256=put.sha256),
        loudness,
    )


def _chapter_audio(
    index: int,
    item: BatchItem,
    job: Job,
    master: ChapterMaster | None,
    workdir: Path,
    storage: Storage,
) -> tuple[ChapterAudio, str]:
    """The chapter's audio for the book: its master, else its own output decoded."""
    assert job.output is not None
    folder = workdir / f"{index:05d}"
    folder.mkdir()
    if master is not None:
        source = folder / "master.pcm"
        try:
            storage.download_file(master.key, source)
        except ObjectNotFound:
            log.warning(
                "batch %s: master of job %s is gone; using its output", job.batch_id, job.id
            )
        else:
            if _sha256(source) != master.sha256:
                raise BuildFailed(f"item {index}: the chapter master does not match its checksum")
            parts = split_master(master, source, folder)
            source.unlink()
            chapter = ChapterAudio(
                title=item.title,
                pcm=tuple(parts),
                sample_rate=parts[0].sample_rate,
                chars=item.chars,
                file=job.output.key,
            )
            return chapter, "master"
    encoded = folder / f"output{format_info(job.output.format).extension}"
    try:
        storage.download_file(job.output.key, encoded)
    except ObjectNotFound as exc:
        raise BuildFailed(f"item {index} ({item.title!r}): its audio is gone") from exc
    chapter = chapter_from_file(
        item.title, encoded, folder / "decoded.pcm", chars=item.chars, file=job.output.key
    )
    encoded.unlink()
    return chapter, "output"


def _cover(batch: Batch, workdir: Path, storage: Storage) -> bytes | None:
    if batch.book.cover_key is None:
        return None
    path = workdir / "cover"
    try:
        storage.download_file(batch.book.cover_key, path)
    except ObjectNotFound:
        log.warning("batch %s: cover image is gone; building without it", batch.id)
        return None
    return path.read_bytes()


def _record(
    batches: BatchStore,
    storage: Storage,
    view: BatchView,
    generation: int,
    products: _Products,
    settings: Settings,
    celery_app: Celery | None,
) -> BuildOutcome:
    batch_id = view.batch.id
    previous: list[str] = []
    now = time.time()

    def done(b: Batch) -> Batch | None:
        if b.canceled_at is not None or b.assembly.generation != generation:
            return None
        old = b.assembly
        previous[:] = [o.key for o in (old.combined, old.manifest) if o is not None]
        assembly = old.model_copy(
            update={
                "state": AssemblyState.DONE,
                "built_generation": generation,
                "combined": products.combined,
                "manifest": products.manifest,
                "loudness": products.loudness,
                "error": None,
                "finished_at": now,
            }
        )
        return b.model_copy(update={"assembly": assembly, "finished_at": now})

    recorded = batches.update(batch_id, done)
    mine = [o.key for o in (products.combined, products.manifest) if o is not None]
    if recorded is None:
        log.info("batch %s: generation %d is stale; its outputs are dropped", batch_id, generation)
        _delete_quietly(storage, mine)
        return BuildOutcome("skipped")
    _delete_quietly(storage, [key for key in previous if key not in mine])
    _drop_replaced_masters(batches, storage, recorded)
    batches.schedule_staging_cleanup(batch_id, now + batches.ttl_seconds)
    final = load_view(batches, recorded)
    log.info("batch %s: generation %d built (%s)", batch_id, generation, final.status)
    emit_batch_event(
        recorded,
        BatchEvent.SUCCEEDED,
        settings=settings,
        celery_app=celery_app,
        data=batch_summary(final),
        sequence=generation,
    )
    return BuildOutcome("built")


def _fail(
    batches: BatchStore,
    view: BatchView,
    generation: int,
    message: str,
    settings: Settings,
    celery_app: Celery | None,
) -> BuildOutcome:
    log.warning("batch %s: build of generation %d failed: %s", view.batch.id, generation, message)
    failed = _set_state(batches, view.batch.id, generation, AssemblyState.FAILED, message)
    if failed is not None:
        batches.schedule_staging_cleanup(failed.id, time.time() + batches.ttl_seconds)
        emit_batch_event(
            failed,
            BatchEvent.FAILED,
            settings=settings,
            celery_app=celery_app,
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


def _renew(
    batches: BatchStore, batch_id: str, owner: str, lease: float, stop: threading.Event
) -> None:
    while not stop.wait(lease / 3):
        try:
            if not batches.renew_assembly(batch_id, owner, lease):
                log.warning("batch %s: assembly lease lost", batch_id)
                return
        except redis.RedisError:
            log.warning("batch %s: assembly lease renewal failed; will try again", batch_id)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)
