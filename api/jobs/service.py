"""What the job routes do, apart from HTTP: submit, cancel, and show a job.

Submitting runs, in order: every check (nothing stored yet), the
Idempotency-Key claim, the tenant's in-flight limit, then the store and the
queue.  A failure after the claim undoes what was done, so a request either
makes exactly one queued job or leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from api.deps import ApiContext
from api.errors import Conflict, InvalidInput, RateLimited, Unavailable
from api.limits import Claim, fingerprint
from api.schemas import (
    BillingOut,
    JobCreate,
    JobErrorOut,
    JobLinks,
    JobOut,
    JobSettingsOut,
    OutputOut,
    ProgressOut,
    ProsodyIn,
)
from api.validation import build_request
from worker.callbacks import delivery as callbacks
from worker.jobs.model import Job, JobStatus, estimate_billing, new_job_id
from worker.jobs.tasks import enqueue
from worker.settings import TenantConfig
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)

#: How long a retried request waits for the job its Idempotency-Key is still creating.
IDEMPOTENT_WAIT_SECONDS = 5.0
_IDEMPOTENCY_KEY_MAX = 255


@dataclass(frozen=True, slots=True)
class Submission:
    """A submitted job, and whether this request created it (False: a replay)."""

    job: Job
    created: bool


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _output(job: Job, storage: Storage) -> OutputOut | None:
    out = job.output
    if out is None:
        return None
    url: str | None = None
    expires: datetime | None = None
    if job.status is JobStatus.SUCCEEDED:
        try:
            url = storage.presign_get(out.key, filename=PurePosixPath(out.key).name)
            expires = datetime.now(UTC) + timedelta(seconds=storage.presign_expiry)
        except StorageError as exc:
            log.warning("job %s: cannot presign %s: %s", job.id, out.url, exc)
    return OutputOut(
        url=out.url,
        key=out.key,
        download_url=url,
        download_expires_at=expires,
        bytes=out.bytes,
        duration_s=out.duration_s,
        format=out.format,
        sample_rate=out.sample_rate,
        content_type=out.content_type,
        sha256=out.sha256,
    )


def job_view(job: Job, storage: Storage) -> JobOut:
    """The job as its tenant sees it, with a presigned ``download_url`` once it succeeded."""
    req, prog = job.request, job.progress
    base = f"/v1/jobs/{job.id}"
    percent = 100.0 * prog.chars_done / prog.chars_total if prog.chars_total else 0.0
    if job.status is JobStatus.SUCCEEDED:
        percent = 100.0
    return JobOut(
        id=job.id,
        status=job.status,
        batch_id=job.batch_id,
        attempts=job.attempts,
        progress=ProgressOut(**prog.model_dump(), percent=round(min(percent, 100.0), 2)),
        output=_output(job, storage),
        error=JobErrorOut(**job.error.model_dump()) if job.error else None,
        billing=BillingOut(**job.billing.model_dump()),
        request=JobSettingsOut(
            characters=len(req.text),
            reference_id=req.reference_id,
            references=len(req.references),
            model=req.model,
            format=req.format,
            sample_rate=req.sample_rate,
            bitrate_kbps=req.bitrate_kbps,
            prosody=ProsodyIn(**req.prosody.model_dump()) if req.prosody else None,
            latency=req.latency,
            normalize=req.normalize,
            temperature=req.temperature,
            top_p=req.top_p,
            repetition_penalty=req.repetition_penalty,
            paragraph_silence_ms=req.paragraph_silence_ms,
            output_key=req.output_key,
            callback_url=req.callback_url,
            priority=req.priority,
        ),
        metadata=job.metadata,
        created_at=_when(job.created_at) or datetime.now(UTC),
        updated_at=_when(job.updated_at) or datetime.now(UTC),
        started_at=_when(job.started_at),
        finished_at=_when(job.finished_at),
        links=JobLinks(
            self=base, cancel=f"{base}/cancel", audio=f"{base}/audio", events=f"{base}/events"
        ),
    )


def check_idempotency_key(key: str | None) -> str | None:
    """The header's value if usable as a key: 1–255 printable ASCII characters."""
    if key is None:
        return None
    if not 0 < len(key) <= _IDEMPOTENCY_KEY_MAX or not all(33 <= ord(c) < 127 for c in key):
        raise InvalidInput(
            "Idempotency-Key: must be 1 to 255 printable ASCII characters without spaces",
            field="Idempotency-Key",
        )
    return key


def _replay(ctx: ApiContext, tenant: TenantConfig, earlier: Claim, mine: Claim) -> Job:
    """The job an earlier request with the same Idempotency-Key made (or is making)."""
    if earlier.fingerprint != mine.fingerprint:
        raise Conflict(
            "Idempotency-Key: already used with a different request body",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    deadline = time.monotonic() + IDEMPOTENT_WAIT_SECONDS
    while True:
        job = ctx.store.get_for_tenant(earlier.job_id, tenant.id)
        if job is not None:
            return job
        if time.monotonic() > deadline:
            raise Conflict(
                "Idempotency-Key: the first request with this key is still being processed",
                field="Idempotency-Key",
                code="idempotency_in_progress",
            )
        time.sleep(0.05)


def submit_job(
    ctx: ApiContext, tenant: TenantConfig, body: JobCreate, idempotency_key: str | None
) -> Submission:
    """Check, store and enqueue one job; or return the one this Idempotency-Key made."""
    settings = ctx.settings
    request = build_request(body, tenant.id, settings)
    job = Job(
        id=new_job_id(),
        tenant=tenant.id,
        request=request,
        billing=estimate_billing(request.text, settings.price_per_million_bytes_usd),
        metadata=body.metadata,
    )
    claim = Claim(job.id, fingerprint(body.model_dump(mode="json")))
    if idempotency_key is not None:
        earlier = ctx.idempotency.claim(tenant.id, idempotency_key, claim)
        if earlier is not None:
            return Submission(_replay(ctx, tenant, earlier, claim), created=False)
    try:
        admission = ctx.in_flight.reserve(tenant.id, job.id, tenant.max_jobs_in_flight)
        if not admission.admitted:
            raise RateLimited(
                f"{tenant.max_jobs_in_flight} jobs are already queued or running; "
                "wait for some to finish",
                retry_after=admission.retry_after,
                code="too_many_jobs_in_flight",
            )
        _store_and_enqueue(ctx, tenant, job)
    except BaseException:
        if idempotency_key is not None:
            ctx.idempotency.release(tenant.id, idempotency_key, job.id)
        raise
    log.info("job %s: submitted by %s (%d bytes)", job.id, tenant.id, job.billing.utf8_bytes)
    return Submission(job, created=True)


def _store_and_enqueue(ctx: ApiContext, tenant: TenantConfig, job: Job) -> None:
    try:
        ctx.store.create(job)
    except BaseException:
        ctx.in_flight.release(tenant.id, job.id)
        raise
    try:
        enqueue(job, ctx.settings, ctx.celery)
    except Exception as exc:
        # Never leave a queued job that no message will ever run.
        log.warning("job %s: enqueue failed (%s); job removed", job.id, exc)
        ctx.store.delete(job.id)
        ctx.in_flight.release(tenant.id, job.id)
        raise Unavailable("the job queue (broker) is unreachable; try again shortly") from exc


def cancel_job(ctx: ApiContext, job: Job) -> Job:
    """Cancel a queued or running job; :class:`Conflict` if it has already finished."""
    if not job.status.terminal and ctx.store.transition(job.id, JobStatus.CANCELED):
        ctx.in_flight.release(job.tenant, job.id)
        canceled = ctx.store.get(job.id) or job.model_copy(update={"status": JobStatus.CANCELED})
        try:
            callbacks.emit_job_event(
                canceled, "job.canceled", settings=ctx.settings, celery_app=ctx.celery
            )
        except Exception:  # a callback problem must never undo or fail the cancel
            log.exception("job %s: job.canceled callback could not be queued", job.id)
        return canceled
    current = ctx.store.get(job.id) or job
    raise Conflict(
        f"job {job.id} is {current.status.value}: only queued or running jobs can be canceled",
        code="job_finished",
    )
