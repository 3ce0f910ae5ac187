"""What the job routes do, apart from HTTP: submit, cancel, and show a job.

Submitting runs, in order: every check (nothing stored yet), the
Idempotency-Key claim (:func:`api.idempotency.create_once`), the tenant's
in-flight limit, then the store and the queue.  A failure after the claim
undoes what was done, so a request either makes exactly one queued job or
leaves nothing behind.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import TypeVar

from api.deps import ApiContext
from api.errors import Conflict, RateLimited, Unavailable
from api.idempotency import Claim, Created, check_idempotency_key, create_once, fingerprint
from api.jobs.schemas import (
    CaptionsOut,
    JobCreate,
    JobLinks,
    JobOut,
    JobSettingsOut,
    ProgressOut,
)
from api.lexicons.service import resolve_lexicons
from api.schemas import BillingOut, JobErrorOut, OutputOut, StoredFileOut, percent, when
from api.validation import build_request
from api.voices.service import with_voice
from worker.callbacks.emit import EventType, emit_job_event
from worker.jobs.model import (
    Billing,
    Job,
    JobStatus,
    StoredFile,
    billing_for_bytes,
    estimate_billing,
    new_job_id,
)
from worker.settings import TenantConfig
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=StoredFileOut)


def file_out(model: type[F], stored: StoredFile, storage: Storage, filename: str | None) -> F:
    """A stored file as ``model``, with a presigned download URL named ``filename``.

    No URL without a ``filename`` (the file is not final yet), nor when
    storage cannot presign now: showing a job or batch never fails for it.
    """
    url: str | None = None
    expires: datetime | None = None
    if filename is not None:
        try:
            url = storage.presign_get(stored.key, filename=filename)
            expires = datetime.now(UTC) + timedelta(seconds=storage.presign_expiry)
        except StorageError as exc:
            log.warning("cannot presign %s: %s", storage.url(stored.key), exc)
    fields = stored.model_dump() | {"download_url": url, "download_expires_at": expires}
    return model.model_validate(fields)


def _settings(job: Job) -> JobSettingsOut:
    """The job's request as accepted: its settings, without the text and reference audio."""
    req = job.request
    fields = req.model_dump(exclude={"text", "references", "source_text", "passage_voices"})
    return JobSettingsOut(
        **fields,
        characters=len(req.text),
        references=len(req.references),
        passage_voices=list(req.passage_voices),
    )


def billing_view(estimate: Billing, sent_bytes: int, cached_bytes: int) -> BillingOut:
    """The estimate, and what the finished segments sent to the provider and took from
    the segment cache (the sent bytes at the estimate's price)."""
    per_million = (
        estimate.estimated_cost_usd / estimate.utf8_bytes * 1e6 if estimate.utf8_bytes else 0.0
    )
    sent = billing_for_bytes(sent_bytes, per_million)
    return BillingOut(
        **estimate.model_dump(),
        sent_utf8_bytes=sent.utf8_bytes,
        sent_cost_usd=sent.estimated_cost_usd,
        cached_utf8_bytes=cached_bytes,
    )


def job_view(job: Job, storage: Storage) -> JobOut:
    """The job as its tenant sees it, with a presigned ``download_url`` once it succeeded."""
    prog = job.progress
    base = f"/v1/jobs/{job.id}"
    succeeded = job.status is JobStatus.SUCCEEDED
    share = 100.0 if succeeded else percent(prog.chars_done, prog.chars_total)
    output = None
    captions = []
    if job.output is not None:
        name = PurePosixPath(job.output.key).name if succeeded else None
        output = file_out(OutputOut, job.output, storage, name)
        captions = [
            file_out(CaptionsOut, c, storage, PurePosixPath(c.key).name if succeeded else None)
            for c in job.output.captions
        ]
    return JobOut(
        id=job.id,
        status=job.status,
        batch_id=job.batch_id,
        attempts=job.attempts,
        progress=ProgressOut(**prog.model_dump(), percent=share),
        output=output,
        captions=captions,
        error=JobErrorOut(**job.error.model_dump()) if job.error else None,
        billing=billing_view(job.billing, prog.utf8_bytes_sent, prog.utf8_bytes_cached),
        request=_settings(job),
        metadata=job.metadata,
        created_at=when(job.created_at) or datetime.now(UTC),
        updated_at=when(job.updated_at) or datetime.now(UTC),
        started_at=when(job.started_at),
        finished_at=when(job.finished_at),
        links=JobLinks(
            self=base,
            cancel=f"{base}/cancel",
            audio=f"{base}/audio",
            events=f"{base}/events",
            captions=f"{base}/captions" if job.request.timestamps else None,
        ),
    )


def submit_job(
    ctx: ApiContext, tenant: TenantConfig, body: JobCreate, idempotency_key: str | None
) -> Created[Job]:
    """Check, store and enqueue one job; or return the one this Idempotency-Key made."""
    key = check_idempotency_key(idempotency_key)
    settings = ctx.settings
    lexicons = resolve_lexicons(ctx, tenant.id, body.lexicons)
    request = with_voice(ctx, tenant.id, build_request(body, tenant.id, settings, lexicons))
    job = Job(
        id=new_job_id(),
        tenant=tenant.id,
        request=request,
        billing=estimate_billing(request.text, settings.price_per_million_bytes_usd),
        metadata=body.metadata,
    )
    submission = create_once(
        ctx.idempotency,
        tenant.id,
        key,
        Claim(job.id, fingerprint(body.model_dump(mode="json"))),
        create=lambda: _admit(ctx, tenant, job),
        load=lambda job_id: ctx.store.get_for_tenant(job_id, tenant.id),
        request="request body",
    )
    if submission.created:
        log.info("job %s: submitted by %s (%d bytes)", job.id, tenant.id, job.billing.utf8_bytes)
    return submission


def _admit(ctx: ApiContext, tenant: TenantConfig, job: Job) -> Job:
    """Count ``job`` against the tenant's in-flight limit, then store and enqueue it."""
    admission = ctx.in_flight.reserve(tenant.id, job.id, tenant.max_jobs_in_flight)
    if not admission.admitted:
        raise RateLimited(
            f"{tenant.max_jobs_in_flight} jobs are already queued or running; "
            "wait for some to finish",
            retry_after=admission.retry_after,
            code="too_many_jobs_in_flight",
        )
    try:
        ctx.store.create(job)
    except BaseException:
        ctx.in_flight.release(tenant.id, job.id)
        raise
    try:
        ctx.dispatch.enqueue(job)
    except Exception as exc:
        # Never leave a queued job that no message will ever run.
        log.warning("job %s: enqueue failed (%s); job removed", job.id, exc)
        ctx.store.delete(job.id)
        ctx.in_flight.release(tenant.id, job.id)
        raise Unavailable("the job queue (broker) is unreachable; try again shortly") from exc
    return job


def cancel_job(ctx: ApiContext, job: Job) -> Job:
    """Cancel a queued or running job; :class:`Conflict` if it has already finished."""
    if not job.status.terminal and ctx.store.transition(job.id, JobStatus.CANCELED):
        ctx.in_flight.release(job.tenant, job.id)
        canceled = ctx.store.get(job.id) or job.model_copy(update={"status": JobStatus.CANCELED})
        try:
            emit_job_event(canceled, EventType.CANCELED, settings=ctx.settings, sender=ctx.dispatch)
        except Exception:  # a callback problem must never undo or fail the cancel
            log.exception("job %s: job.canceled callback could not be queued", job.id)
        return canceled
    current = ctx.store.get(job.id) or job
    raise Conflict(
        f"job {job.id} is {current.status.value}: only queued or running jobs can be canceled",
        code="job_finished",
    )
