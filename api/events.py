"""A job's Server-Sent Events: its state now, then progress and state changes as they happen.

The stream subscribes to the job's Redis channel (``Keys.job_events``, where
the store publishes every progress update and transition) *before* reading the
record, so nothing that happens in between is lost.  Events::

    event: status           data: the job, as GET /v1/jobs/{id} shows it
    event: progress         data: {"job_id": ..., "progress": {...}}
    event: attempt_failed   data: {"job_id": ..., "error": {...}}   (it will be retried)

The first event is always ``status``; the stream ends after a ``status`` whose
job is succeeded, failed or canceled.  While nothing is published the record
is re-read every few seconds, so a message lost in a Redis reconnect cannot
leave a stream open forever, and a client that went away is noticed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import redis.asyncio
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import ServerSentEvent

from api.deps import ApiContext
from api.jobs.schemas import ProgressOut
from api.jobs.service import job_view
from api.schemas import JobErrorOut
from worker.jobs.model import Job, JobError, Progress

log = logging.getLogger(__name__)

#: Seconds without a message after which the record is re-read.
RECHECK_SECONDS = 5.0


async def _status(ctx: ApiContext, job: Job) -> ServerSentEvent:
    view = await run_in_threadpool(job_view, job, ctx.storage)  # presigning may do I/O
    return ServerSentEvent(event="status", data=view)


def _progress(job_id: str, raw: dict[str, Any]) -> ServerSentEvent:
    progress = Progress.model_validate(raw)
    done, total = progress.chars_done, progress.chars_total
    view = ProgressOut(
        **progress.model_dump(), percent=round(min(100.0 * done / total, 100.0), 2) if total else 0
    )
    return ServerSentEvent(event="progress", data={"job_id": job_id, "progress": view})


def _attempt_failed(job_id: str, raw: dict[str, Any]) -> ServerSentEvent:
    error = JobErrorOut(**JobError.model_validate(raw).model_dump())
    return ServerSentEvent(event="attempt_failed", data={"job_id": job_id, "error": error})


async def job_event_stream(
    ctx: ApiContext, job: Job, request: Request
) -> AsyncIterator[ServerSentEvent]:
    """The events of ``job`` (already checked to be the caller's) until it finishes."""
    client = redis.asyncio.Redis.from_url(ctx.settings.redis_url, socket_connect_timeout=3)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(ctx.keys.job_events(job.id))
        current = await run_in_threadpool(ctx.store.get, job.id) or job
        yield await _status(ctx, current)
        while not current.status.terminal:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=RECHECK_SECONDS
            )
            if message is None:
                if await request.is_disconnected():
                    return
                latest = await run_in_threadpool(ctx.store.get, job.id)
                if latest is None:  # expired or deleted meanwhile: nothing more will come
                    return
                if latest.status != current.status:
                    current = latest
                    yield await _status(ctx, current)
                continue
            try:
                event = json.loads(message["data"])
                kind = event.get("type")
                if kind == "progress":
                    yield _progress(job.id, event["progress"])
                elif kind == "error":
                    yield _attempt_failed(job.id, event["error"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("job %s: unreadable event skipped: %s", job.id, exc)
                continue
            if kind == "status":
                latest = await run_in_threadpool(ctx.store.get, job.id)
                if latest is None:
                    return
                if latest.status != current.status:  # the read before may have seen it
                    current = latest
                    yield await _status(ctx, current)
    finally:
        # Shielded: when the client goes away this runs inside a cancelled scope,
        # and an unshielded await would be cancelled before the connection closed.
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()
