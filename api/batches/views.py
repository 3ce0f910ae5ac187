"""What ``GET /v1/batches/{id}`` shows: the batch, its items' jobs, presigned outputs.

Showing a batch only reads it: acting on an end nobody has acted on (a lost
message, a dead worker) is the worker's reaper's job
(:func:`worker.batches.lifecycle.reap_batches`).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

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
    ItemProgressOut,
    ProduceIn,
)
from api.batches.service import batches_of
from api.deps import ApiContext
from api.jobs.service import billing_view, file_out
from api.schemas import JobErrorOut, ManifestOut, OutputOut, percent, when
from worker.audio import format_info
from worker.batches.lifecycle import BatchView, load_view
from worker.batches.model import AssemblyState, Batch, BatchItem, BatchStatus
from worker.jobs.model import Job, JobStatus
from worker.storage.client import Storage

log = logging.getLogger(__name__)


def _filename(title: str, ext: str, number: int | None = None) -> str:
    clean = re.sub(r"[\x00-\x1f/\\]+", " ", title).strip() or "untitled"
    return f"{number:03d} {clean}.{ext}" if number is not None else f"{clean}.{ext}"


def current_view(ctx: ApiContext, batch: Batch) -> BatchView:
    """The batch and its items now, read only."""
    return load_view(batches_of(ctx), batch)


def _item_out(
    base: str, index: int, item: BatchItem, job: Job | None, storage: Storage
) -> tuple[BatchItemOut, float]:
    """Item ``index`` and its current job (None: the job record expired), and its audio seconds."""
    status = job.status if job else JobStatus.FAILED
    output = None
    if job is not None and job.output is not None and status is JobStatus.SUCCEEDED:
        ext = format_info(job.output.format).extension.lstrip(".")
        filename = _filename(item.title, ext, index + 1)
        output = file_out(OutputOut, job.output, storage, filename)
    prog = job.progress if job else None
    done = item.chars if status is JobStatus.SUCCEEDED else (prog.chars_done if prog else 0)
    done = min(done, item.chars)
    seconds = prog.audio_seconds if prog else 0.0
    if output is not None:
        seconds = output.duration_s
    error = None
    if job is None:
        error = JobErrorOut(code="gone", message="the job record expired", retryable=False)
    elif job.error is not None:
        error = JobErrorOut(**job.error.model_dump())
    out = BatchItemOut(
        index=index,
        title=item.title,
        chars=item.chars,
        utf8_bytes=item.utf8_bytes,
        source=item.source,
        job_id=item.job_id,
        status=status,
        attempts=job.attempts if job else 0,
        progress=ItemProgressOut(
            chars_done=done,
            chars_total=item.chars,
            audio_seconds=round(seconds, 3),
            percent=percent(done, item.chars),
        ),
        output=output,
        error=error,
        replaced_jobs=item.replaced,
        links=BatchItemLinks(job=f"/v1/jobs/{item.job_id}", retry=f"{base}/items/{index}/retry"),
    )
    return out, seconds


def _outputs(batch: Batch, storage: Storage) -> BatchOutputsOut:
    """The combined book and the manifest, with presigned URLs, and how their build goes."""
    a, title = batch.assembly, batch.book.title
    combined = manifest = None
    if a.combined is not None:
        combined = file_out(OutputOut, a.combined, storage, _filename(title, a.combined.format))
    if a.manifest is not None:
        manifest = file_out(ManifestOut, a.manifest, storage, _filename(title, "json"))
    read_along = None
    if a.read_along is not None:
        read_along = file_out(ManifestOut, a.read_along, storage, _filename(title, "epub"))
    assembly = AssemblyOut.model_validate(a, from_attributes=True)
    return BatchOutputsOut(
        combined=combined, manifest=manifest, read_along=read_along, assembly=assembly
    )


def _error(view: BatchView, counts: dict[str, int]) -> str | None:
    """Why the batch did not succeed: its build's error, or how many items did not."""
    a = view.batch.assembly
    if a.state is AssemblyState.FAILED and a.error is not None:
        return a.error
    if view.status in (BatchStatus.FAILED, BatchStatus.PARTIALLY_FAILED):
        bad = counts["failed"] + counts["canceled"]
        total = len(view.batch.items)
        return f"{bad} of {total} items did not succeed; retry them to finish the batch"
    return None


def batch_out(view: BatchView, storage: Storage) -> BatchOut:
    """The batch as its tenant sees it, with presigned URLs of everything finished."""
    batch = view.batch
    base = f"/v1/batches/{batch.id}"
    shown = [
        _item_out(base, index, item, job, storage)
        for index, (item, job) in enumerate(zip(batch.items, view.jobs, strict=True))
    ]
    items = [item for item, _ in shown]
    counts = {status.value: 0 for status in JobStatus}
    for item in items:
        counts[item.status.value] += 1
    chars_done = sum(item.progress.chars_done for item in items)
    chars_total = sum(item.chars for item in batch.items)
    book = batch.book.model_dump() | {"cover": batch.book.cover_key is not None}
    return BatchOut(
        id=batch.id,
        status=view.status,
        items_total=len(batch.items),
        items_done=counts["succeeded"],
        items_failed=counts["failed"] + counts["canceled"],
        counts=BatchCountsOut(total=len(batch.items), **counts),
        progress=BatchProgressOut(
            chars_done=chars_done,
            chars_total=chars_total,
            audio_seconds=round(sum(seconds for _, seconds in shown), 3),
            percent=percent(chars_done, chars_total),
        ),
        # What the items' current jobs sent and took from the segment cache so far.
        billing=billing_view(
            batch.billing,
            sum(job.progress.utf8_bytes_sent for job in view.jobs if job is not None),
            sum(job.progress.utf8_bytes_cached for job in view.jobs if job is not None),
        ),
        book=BookInfoOut.model_validate(book),
        produce=ProduceIn(**batch.produce.model_dump()),
        defaults=batch.defaults,
        callback_url=batch.callback_url,
        metadata=batch.metadata,
        items=items,
        outputs=_outputs(batch, storage),
        error=_error(view, counts),
        created_at=when(batch.created_at) or datetime.now(UTC),
        updated_at=when(batch.updated_at) or datetime.now(UTC),
        canceled_at=when(batch.canceled_at),
        finished_at=when(batch.finished_at) if view.status.terminal else None,
        links=BatchLinks(self=base, cancel=f"{base}/cancel", jobs=f"/v1/jobs?batch_id={batch.id}"),
    )
