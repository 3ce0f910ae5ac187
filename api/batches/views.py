"""What ``GET /v1/batches/{id}`` shows: the batch, its items' jobs, presigned outputs.

Showing a batch also acts on an end nobody has acted on yet
(:func:`worker.batches.lifecycle.maybe_finalize`), so a lost message or a dead worker
never leaves a finished batch waiting.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from api.batches.schemas import (
    AssemblyOut,
    BatchCountsOut,
    BatchItemLinks,
    BatchItemOut,
    BatchLinks,
    BatchOut,
    BatchOutputsOut,
    BatchProgressOut,
    BookInfoOut,
    CombinedOut,
    ItemProgressOut,
    ManifestOut,
    ProduceIn,
)
from api.batches.service import batches_of
from api.deps import ApiContext
from api.schemas import BillingOut, JobErrorOut, OutputOut
from worker.audio import format_info
from worker.batches.lifecycle import BatchView, load_view, maybe_finalize
from worker.batches.model import AssemblyState, Batch, BatchStatus
from worker.jobs.model import JobStatus
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _presign(storage: Storage, key: str, filename: str) -> tuple[str | None, datetime | None]:
    try:
        url = storage.presign_get(key, filename=filename)
    except StorageError as exc:
        log.warning("cannot presign %s: %s", storage.url(key), exc)
        return None, None
    return url, datetime.now(UTC) + timedelta(seconds=storage.presign_expiry)


def _filename(title: str, ext: str, number: int | None = None) -> str:
    clean = re.sub(r"[\x00-\x1f/\\]+", " ", title).strip() or "untitled"
    return f"{number:03d} {clean}.{ext}" if number is not None else f"{clean}.{ext}"


def current_view(ctx: ApiContext, batch: Batch) -> BatchView:
    """The batch and its items now; acts on a batch end nobody has acted on yet."""
    batches = batches_of(ctx)
    try:
        view = maybe_finalize(
            batches, batch.id, ctx.settings, storage=ctx.storage, celery_app=ctx.celery
        )
    except Exception:  # showing a batch must not fail because the broker hiccups
        log.warning("batch %s: could not act on its end now", batch.id, exc_info=True)
        view = None
    return view or load_view(batches, batch)


def batch_out(view: BatchView, storage: Storage) -> BatchOut:
    """The batch as its tenant sees it, with presigned URLs of everything finished."""
    batch = view.batch
    counts = {status.value: 0 for status in JobStatus}
    items = []
    chars_done = audio = 0.0
    base = f"/v1/batches/{batch.id}"
    for index, (item, job) in enumerate(zip(batch.items, view.jobs, strict=True)):
        status = job.status if job else JobStatus.FAILED
        counts[status.value] += 1
        output = None
        if job is not None and job.output is not None and status is JobStatus.SUCCEEDED:
            ext = format_info(job.output.format).extension.lstrip(".")
            url, expires = _presign(storage, job.output.key, _filename(item.title, ext, index + 1))
            output = OutputOut(
                **job.output.model_dump(exclude={"bucket"}),
                download_url=url,
                download_expires_at=expires,
            )
        prog = job.progress if job else None
        done = item.chars if status is JobStatus.SUCCEEDED else (prog.chars_done if prog else 0)
        seconds = prog.audio_seconds if prog else 0.0
        if output is not None:
            seconds = output.duration_s
        chars_done += min(done, item.chars)
        audio += seconds
        job_error = job.error if job else None
        items.append(
            BatchItemOut(
                index=index,
                title=item.title,
                chars=item.chars,
                utf8_bytes=item.utf8_bytes,
                source=item.source,
                job_id=item.job_id,
                status=status,
                attempts=job.attempts if job else 0,
                progress=ItemProgressOut(
                    chars_done=min(done, item.chars),
                    chars_total=item.chars,
                    audio_seconds=round(seconds, 3),
                    percent=round(100.0 * min(done, item.chars) / item.chars, 2)
                    if item.chars
                    else 0.0,
                ),
                output=output,
                error=JobErrorOut(**job_error.model_dump())
                if job_error
                else (
                    JobErrorOut(code="gone", message="the job record expired", retryable=False)
                    if job is None
                    else None
                ),
                replaced_jobs=item.replaced,
                links=BatchItemLinks(
                    job=f"/v1/jobs/{item.job_id}", retry=f"{base}/items/{index}/retry"
                ),
            )
        )
    chars_total = sum(item.chars for item in batch.items)
    a = batch.assembly
    combined = manifest = None
    if a.combined is not None:
        url, expires = _presign(
            storage, a.combined.key, _filename(batch.book.title, a.combined.format)
        )
        combined = CombinedOut(
            **a.combined.model_dump(), download_url=url, download_expires_at=expires
        )
    if a.manifest is not None:
        url, expires = _presign(storage, a.manifest.key, _filename(batch.book.title, "json"))
        manifest = ManifestOut(
            **a.manifest.model_dump(), download_url=url, download_expires_at=expires
        )
    error = a.error if a.state is AssemblyState.FAILED else None
    if view.status in (BatchStatus.FAILED, BatchStatus.PARTIALLY_FAILED) and error is None:
        bad = counts["failed"] + counts["canceled"]
        error = f"{bad} of {len(batch.items)} items did not succeed; retry them to finish the batch"
    return BatchOut(
        id=batch.id,
        status=view.status,
        items_total=len(batch.items),
        items_done=counts["succeeded"],
        items_failed=counts["failed"] + counts["canceled"],
        counts=BatchCountsOut(total=len(batch.items), **counts),
        progress=BatchProgressOut(
            chars_done=int(chars_done),
            chars_total=chars_total,
            audio_seconds=round(audio, 3),
            percent=round(100.0 * chars_done / chars_total, 2) if chars_total else 0.0,
        ),
        billing=BillingOut(**batch.billing.model_dump()),
        book=BookInfoOut(
            title=batch.book.title,
            author=batch.book.author,
            language=batch.book.language,
            kind=batch.book.kind,
            filename=batch.book.filename,
            cover=batch.book.cover_key is not None,
            skipped=batch.book.skipped,
        ),
        produce=ProduceIn(**batch.produce.model_dump()),
        defaults=batch.defaults,
        callback_url=batch.callback_url,
        metadata=batch.metadata,
        items=items,
        outputs=BatchOutputsOut(
            combined=combined,
            manifest=manifest,
            assembly=AssemblyOut(
                state=a.state,
                generation=a.generation,
                built_generation=a.built_generation,
                attempts=a.attempts,
                error=a.error,
                loudness=a.loudness,
            ),
        ),
        error=error,
        created_at=_when(batch.created_at) or datetime.now(UTC),
        updated_at=_when(batch.updated_at) or datetime.now(UTC),
        canceled_at=_when(batch.canceled_at),
        finished_at=_when(batch.finished_at) if view.status.terminal else None,
        links=BatchLinks(self=base, cancel=f"{base}/cancel", jobs=f"/v1/jobs?batch_id={batch.id}"),
    )
