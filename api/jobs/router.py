"""``/v1/jobs``: submit, show, list, cancel, download, and follow jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated

import redis
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.bodies import BodyRoute
from api.deps import Ctx, OwnedJob, StorageDep, StoreDep, Tenant
from api.errors import Conflict, InvalidInput, NotFound
from api.events import job_event_stream
from api.idempotency import IdempotencyKey, answer_created
from api.jobs.schemas import JobCreate, JobList, JobOut
from api.jobs.service import cancel_job, job_view, submit_job
from api.schemas import (
    CREATE_ERRORS,
    V1_ERROR_DESCRIPTIONS,
    V1_ERRORS,
    error_responses,
    json_error_responses,
)
from worker.jobs.model import CaptionFormat, JobStatus
from worker.jobs.store import InvalidCursor

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=V1_ERRORS, route_class=BodyRoute)

_NOT_FOUND = error_responses({404: "no such job for this tenant"})
#: A time filter of the list.  The document says epoch seconds too, since the API takes
#: them (pydantic reads a number as one), so a client generated from it may send them.
_WHEN = Query(
    description="ISO 8601 or epoch seconds; exclusive",
    json_schema_extra={
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}]
    },
)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses={
        200: {
            "model": JobOut,
            "description": "the job an earlier request with this Idempotency-Key created",
        },
        **CREATE_ERRORS,
        **error_responses({413: "text over the limit (UTF-8 bytes), or the whole body"}),
    },
)
def create_job(
    body: JobCreate,
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue one text for narration; answers 202 with the job and its ``Location``."""
    submission = submit_job(ctx, tenant, body, idempotency_key)
    job = submission.value
    answer_created(response, f"/v1/jobs/{job.id}", submission.created)
    return job_view(job, ctx.storage)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    return value


@router.get("", response_model=JobList, summary="List jobs")
def list_jobs(
    tenant: Tenant,
    store: StoreDep,
    storage: StorageDep,
    status: JobStatus | None = None,
    batch_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    created_after: Annotated[datetime | None, _WHEN] = None,
    created_before: Annotated[datetime | None, _WHEN] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> JobList:
    """The tenant's jobs, newest first (a batch in item order), one page at a time."""
    try:
        jobs, next_cursor = store.list(
            tenant=tenant.id,
            status=status,
            batch_id=batch_id,
            created_after=_utc(created_after),
            created_before=_utc(created_before),
            limit=limit,
            cursor=cursor,
        )
    except (InvalidCursor, redis.ResponseError) as exc:
        if cursor is None:
            raise
        raise InvalidInput("cursor: not a cursor this API handed out", field="cursor") from exc
    return JobList(data=[job_view(job, storage) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, summary="Show a job", responses=_NOT_FOUND)
def get_job(job: OwnedJob, storage: StorageDep) -> JobOut:
    """The job record; ``output.download_url`` is a presigned URL once it succeeded."""
    return job_view(job, storage)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job",
    responses={**_NOT_FOUND, **error_responses({409: "the job has already finished"})},
)
def cancel(job: OwnedJob, ctx: Ctx) -> JobOut:
    """Cancel a queued or running job; a worker stops streaming it within moments."""
    return job_view(cancel_job(ctx, job), ctx.storage)


@router.get(
    "/{job_id}/audio",
    status_code=307,
    response_class=RedirectResponse,
    response_model=None,
    summary="Download a job's audio",
    responses={
        **_NOT_FOUND,
        307: {"description": "redirect to a presigned URL of the audio"},
        **error_responses({409: "the job has not succeeded (yet)"}),
    },
)
def audio(job: OwnedJob, storage: StorageDep) -> RedirectResponse:
    """Redirect (307) to a presigned download URL of the finished audio."""
    if job.status is not JobStatus.SUCCEEDED or job.output is None:
        later = "" if job.status.terminal else "; try again once it has succeeded"
        raise Conflict(f"job {job.id} is {job.status.value}: no audio{later}", code="not_ready")
    url = storage.presign_get(job.output.key, filename=PurePosixPath(job.output.key).name)
    return RedirectResponse(url, status_code=307)


@router.get(
    "/{job_id}/captions",
    status_code=307,
    response_class=RedirectResponse,
    response_model=None,
    summary="Download a job's captions",
    responses={
        **_NOT_FOUND,
        307: {"description": "redirect to a presigned URL of the captions"},
        **error_responses({409: "the job has not succeeded (yet)"}),
    },
)
def captions(
    job: OwnedJob,
    storage: StorageDep,
    format: Annotated[
        CaptionFormat, Query(description="vtt (WebVTT), srt (SubRip) or json (the marks)")
    ] = CaptionFormat.VTT,
) -> RedirectResponse:
    """Redirect (307) to a presigned URL of the job's captions in ``format``."""
    if job.request.timestamps is None:
        raise NotFound(
            f"job {job.id} has no captions: it did not ask for timestamps", code="no_captions"
        )
    found = job.output.caption(format) if job.output is not None else None
    if job.status is not JobStatus.SUCCEEDED or found is None:
        later = "" if job.status.terminal else "; try again once it has succeeded"
        raise Conflict(f"job {job.id} is {job.status.value}: no captions{later}", code="not_ready")
    url = storage.presign_get(found.key, filename=PurePosixPath(found.key).name)
    return RedirectResponse(url, status_code=307)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_model=None,
    summary="Follow a job (Server-Sent Events)",
    responses={
        # The stream is text/event-stream; an error before it starts is JSON as anywhere.
        **json_error_responses({**V1_ERROR_DESCRIPTIONS, 404: "no such job for this tenant"}),
        200: {
            "description": "`status` (the job), `progress` and `attempt_failed` events; "
            "ends after the job finishes",
            "content": {"text/event-stream": {}},
        },
    },
)
async def events(job: OwnedJob, ctx: Ctx, request: Request) -> AsyncIterator[ServerSentEvent]:
    """The job's state now, then its progress and state changes until it finishes."""
    async for event in job_event_stream(ctx, job, request):
        yield event
