"""Cancelling a batch and re-rendering one of its items, apart from HTTP."""

from __future__ import annotations

import logging
import time
from typing import Any

from api.batches.schemas import ItemRetryIn, RerenderIn
from api.batches.service import (
    SETTINGS_FIELDS,
    VOICE_FIELDS,
    batch_billing,
    batches_of,
    new_item_job,
    without_text,
)
from api.batches.views import current_view
from api.deps import ApiContext
from api.errors import Conflict, InvalidInput, RateLimited, Unavailable
from api.lexicons.service import resolve_lexicons
from api.validation import check_text_size, decode_references, lexicon_fields
from api.voices.service import check_one_voice, voice_fields
from worker.batches.lifecycle import BatchView, load_view, maybe_finalize
from worker.batches.model import AssemblyState, Batch
from worker.fish.request import Prosody
from worker.jobs.model import Job, JobStatus

log = logging.getLogger(__name__)


def cancel_batch(ctx: ApiContext, batch: Batch) -> BatchView:
    """Cancel every unfinished item; :class:`Conflict` if the batch has already finished."""
    batches = batches_of(ctx)
    view = load_view(batches, batch)
    if view.status.terminal:
        raise Conflict(
            f"batch {batch.id} is {view.status.value}: only queued or running batches "
            "can be canceled",
            code="batch_finished",
        )

    def mark(b: Batch) -> Batch | None:
        return (
            None if b.canceled_at is not None else b.model_copy(update={"canceled_at": time.time()})
        )

    batches.update(batch.id, mark)
    canceled = 0
    for job_id, status in zip(batch.job_ids, view.statuses, strict=True):
        if status is not None and not status.terminal:
            if ctx.store.transition(job_id, JobStatus.CANCELED):
                canceled += 1
            ctx.in_flight.release(batch.tenant, job_id)
    log.info("batch %s: canceled (%d items stopped)", batch.id, canceled)
    try:  # the end of a cancellation: batch.canceled, staging cleaned
        maybe_finalize(batches, batch.id, ctx.settings, sender=ctx.dispatch, storage=ctx.storage)
    except Exception:  # the worker's reaper acts on it if this could not
        log.warning("batch %s: could not act on its cancellation now", batch.id, exc_info=True)
    return current_view(ctx, batches.get(batch.id) or batch)


def retry_item(ctx: ApiContext, batch: Batch, index: int, body: ItemRetryIn | None) -> BatchView:
    """Render item ``index`` again with a new job; the combined outputs are rebuilt after it.

    The new job takes the old one's settings, changed by ``body``; the old job
    stays as it was (listed in ``replaced_jobs``).
    """
    old = _retryable(ctx, batch, index)
    body = body or ItemRetryIn()
    title = body.title or batch.items[index].title
    job = _retry_job(ctx, batch, index, title, old, body)
    _reserve(ctx, batch.tenant, index, job)
    replaced = batch.items[index].job_id
    price = ctx.settings.price_per_million_bytes_usd
    batches = batches_of(ctx)
    swapped = batches.update(batch.id, lambda b: _swap(b, index, replaced, job, title, price))
    if swapped is None:
        ctx.store.delete(job.id)
        ctx.in_flight.release(batch.tenant, job.id)
        raise Conflict(
            f"item {index} changed meanwhile (another retry, or the batch was canceled)",
            code="item_changed",
        )
    # The batch index lists an item's current job only.
    ctx.redis.zrem(ctx.keys.jobs_by_batch(batch.id), replaced)
    batches.unschedule_staging_cleanup(batch.id)
    try:
        ctx.dispatch.enqueue(job)
    except Exception as exc:
        # The item now waits for a job no message will run: fail it visibly instead.
        log.warning("batch %s: item %d retry could not be queued: %s", batch.id, index, exc)
        ctx.store.transition(job.id, JobStatus.CANCELED)
        ctx.in_flight.release(batch.tenant, job.id)
        raise Unavailable("the job queue (broker) is unreachable; try again shortly") from exc
    log.info("batch %s: item %d re-rendered by job %s", batch.id, index, job.id)
    return load_view(batches, swapped)


def _retryable(ctx: ApiContext, batch: Batch, index: int) -> Job | None:
    """Item ``index``'s current job, if the item may be retried now (None: it expired)."""
    if not 0 <= index < len(batch.items):
        raise InvalidInput(f"n: batch {batch.id} has items 0 to {len(batch.items) - 1}", field="n")
    if batch.canceled_at is not None:
        raise Conflict(f"batch {batch.id} was canceled", code="batch_canceled")
    old = ctx.store.get(batch.items[index].job_id)
    if old is not None and not old.status.terminal:
        raise Conflict(
            f"item {index} is still {old.status.value}; retry it once it has ended",
            code="item_running",
        )
    return old


def _retry_job(
    ctx: ApiContext, batch: Batch, index: int, title: str, old: Job | None, body: ItemRetryIn
) -> Job:
    """The new job of item ``index``: the old job's text and settings, changed by ``body``."""
    spelled = _respelled(ctx, batch.tenant, old, body)
    if spelled is None:
        raise Conflict(f"item {index}'s job has expired; give its text", code="item_gone")
    text = str(spelled["text"])
    check_text_size(text, ctx.settings, field="text")
    return new_item_job(
        batch.tenant,
        batch.id,
        index,
        title,
        text,
        _retry_fields(old, body) | _retry_voice(ctx, batch.tenant, body) | without_text(spelled),
        batch.produce,
        old.request.priority if old else 0,
        ctx.settings.price_per_million_bytes_usd,
    )


def _respelled(
    ctx: ApiContext, tenant: str, old: Job | None, body: ItemRetryIn
) -> dict[str, object] | None:
    """The new job's text and lexicon fields: the text as first given (or ``body``'s),
    respelled with the current versions of its lexicons (or ``body``'s).  None if
    there is no text: the old job expired and ``body`` gives none."""
    if body.text is not None:
        source = body.text
    elif old is not None:
        source = old.request.source_text or old.request.text
    else:
        return None
    if body.lexicons is not None:
        ids = body.lexicons
    else:
        ids = [applied.id for applied in old.request.lexicons] if old else []
    return lexicon_fields(source, resolve_lexicons(ctx, tenant, ids))


def rerender(ctx: ApiContext, batch: Batch, body: RerenderIn) -> BatchView:
    """Render again every item whose text the lexicons now respell differently (every
    item with ``every_item``): one call after a lexicon changed.

    Every item concerned must have ended; nothing is retried otherwise.  Items
    whose text would not change keep their audio.
    """
    retry = ItemRetryIn(lexicons=body.lexicons)
    chosen: list[int] = []
    for index in range(len(batch.items)):
        old = _retryable(ctx, batch, index)
        spelled = _respelled(ctx, batch.tenant, old, retry)
        if spelled is None:
            raise Conflict(
                f"item {index}'s job has expired; retry it with its text", code="item_gone"
            )
        if body.every_item or old is None or spelled["text"] != old.request.text:
            chosen.append(index)
    view = load_view(batches_of(ctx), batch)
    for index in chosen:
        view = retry_item(ctx, batch, index, retry)
    log.info("batch %s: re-rendering items %s", batch.id, chosen)
    return view


def _reserve(ctx: ApiContext, tenant_id: str, index: int, job: Job) -> None:
    """Store ``job`` and count it in flight; :class:`RateLimited` (and no job) if full."""
    tenant = ctx.settings.tenant(tenant_id)
    limit = tenant.max_jobs_in_flight if tenant else 1000
    ctx.store.create(job, batch_item=index)
    if not ctx.in_flight.reserve(tenant_id, job.id, limit).admitted:
        ctx.store.delete(job.id)
        raise RateLimited(
            f"{limit} jobs are already queued or running; wait for some to finish",
            retry_after=ctx.in_flight.RETRY_AFTER,
            code="too_many_jobs_in_flight",
        )


def _swap(b: Batch, index: int, replaced: str, job: Job, title: str, price: float) -> Batch | None:
    """``b`` with ``job`` as item ``index``'s job in place of ``replaced``, and a new build.

    None if the item changed meanwhile or the batch was canceled.
    """
    if b.canceled_at is not None or b.items[index].job_id != replaced:
        return None
    items = list(b.items)
    items[index] = items[index].model_copy(
        update={
            "job_id": job.id,
            "title": title,
            "chars": len(job.request.text),
            "utf8_bytes": job.billing.utf8_bytes,
            "replaced": [*items[index].replaced, replaced],
        }
    )
    assembly = b.assembly.model_copy(
        update={
            "generation": b.assembly.generation + 1,
            "state": AssemblyState.WAITING,
            "attempts": 0,
            "error": None,
        }
    )
    return b.model_copy(
        update={
            "items": items,
            "assembly": assembly,
            "finished_at": None,
            "billing": batch_billing(items, price),
        }
    )


def _retry_voice(ctx: ApiContext, tenant: str, body: ItemRetryIn) -> dict[str, Any]:
    """The fields of the voice ``body`` names for the new rendering; none if it names none."""
    if body.voice is None:
        return {}
    check_one_voice(body.voice, body.reference_id, bool(body.references))
    return voice_fields(ctx, tenant, body.voice)


def _retry_fields(old: Job | None, body: ItemRetryIn) -> dict[str, Any]:
    """The new job's settings: the old job's, with what ``body`` changes."""
    fields: dict[str, Any] = {}
    if old is not None:
        for name in (*VOICE_FIELDS, *SETTINGS_FIELDS):
            value = getattr(old.request, name)
            if value is not None:
                fields[name] = value
    if body.reference_id is not None or body.references:
        if body.reference_id is not None and body.references:
            raise InvalidInput(
                "references: give reference_id or references, not both", field="references"
            )
        fields["reference_id"] = body.reference_id
        fields["references"] = decode_references(body.references or [])
    for name in SETTINGS_FIELDS:
        value = getattr(body, name)
        if value is not None:
            fields[name] = Prosody(**value.model_dump()) if name == "prosody" else value
    return fields
