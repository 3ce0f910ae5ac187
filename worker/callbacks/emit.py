"""The one place that builds a callback event and queues its delivery.

Jobs with a ``callback_url`` are told ``job.started``, ``job.progress``
(throttled), ``job.succeeded``, ``job.failed`` and ``job.canceled``; batches
with one are told of each item's end and of their own (:class:`BatchEvent`).
An event is built once — its body and its stable id — and queued as one
``shoal.deliver_callback`` message on the callbacks queue; the task
(:mod:`worker.callbacks.delivery`) signs, POSTs and retries it.  Queueing never
raises: a broker outage must not fail the job, batch or request that reports.

Nothing here knows a Celery app: every function takes a ``sender``
(:class:`worker.queues.Sender`) — the worker passes its app, the API its
dispatcher — so the API can emit (``job.canceled``) without loading the worker.

What a receiver gets (headers: :mod:`worker.callbacks.signing`)::

    {"type": "job.succeeded", "timestamp": "2024-06-10T06:13:20.123456Z",
     "data": {"id": ..., "status": ..., "progress": {...}, "output": {...},
              "error": null, "metadata": {...}, "batch_id": null}}

Events of one job are separate deliveries and may arrive out of order after a
retry; the body's ``timestamp`` orders them.  A batch's events::

    batch.item.succeeded / batch.item.failed   one per item job, data: {batch_id, index, title, job}
    batch.succeeded                            every item done, combined outputs and manifest built
    batch.failed                               items failed (or the outputs could not be built)
    batch.canceled                             the batch was canceled
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from worker.batches.model import Batch
from worker.callbacks.signing import event_id
from worker.jobs.model import Job, JobStatus, Progress
from worker.keys import Keys
from worker.queues import DELIVER_CALLBACK, Sender, queue_names
from worker.settings import Settings

log = logging.getLogger(__name__)

#: At most one ``job.progress`` per job in this many seconds (the last segment always goes).
PROGRESS_INTERVAL = 2.0
#: Queueing a callback gives up after about a second: the job must not wait on a broker outage.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class EventType(StrEnum):
    """The callback events of a job."""

    STARTED = "job.started"  # a worker took the job (queued → running), once
    PROGRESS = "job.progress"  # segments finished; throttled, the last one always sent
    SUCCEEDED = "job.succeeded"  # output uploaded; terminal
    FAILED = "job.failed"  # permanent error or retries exhausted; terminal
    CANCELED = "job.canceled"  # canceled by the user; terminal


class BatchEvent(StrEnum):
    """The callback events of a batch."""

    ITEM_SUCCEEDED = "batch.item.succeeded"  # an item's job succeeded (once per job)
    ITEM_FAILED = "batch.item.failed"  # an item's job failed for good (once per job)
    SUCCEEDED = "batch.succeeded"  # every item succeeded; combined outputs and manifest built
    FAILED = "batch.failed"  # items failed or were canceled, or the outputs failed to build
    CANCELED = "batch.canceled"  # the batch was canceled


#: The status an event reports, whatever the (possibly stale) job passed in says.
EVENT_STATUS: dict[EventType, JobStatus] = {
    EventType.STARTED: JobStatus.RUNNING,
    EventType.PROGRESS: JobStatus.RUNNING,
    EventType.SUCCEEDED: JobStatus.SUCCEEDED,
    EventType.FAILED: JobStatus.FAILED,
    EventType.CANCELED: JobStatus.CANCELED,
}

#: The item event of a batch job that ended, and the job event it carries.
ITEM_EVENTS: dict[JobStatus, tuple[BatchEvent, EventType]] = {
    JobStatus.SUCCEEDED: (BatchEvent.ITEM_SUCCEEDED, EventType.SUCCEEDED),
    JobStatus.FAILED: (BatchEvent.ITEM_FAILED, EventType.FAILED),
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one URL: the task's arguments, the same on every retry.

    ``job_id`` names the event's subject: a job, or a batch for a batch's own
    events; attempts are recorded on it when it is a job.
    """

    job_id: str
    tenant: str
    url: str
    event_id: str
    event_type: str
    body: str


# -- building (pure) ---------------------------------------------------------------


def event_body(event_type: str, data: Mapping[str, Any], at: float | None = None) -> str:
    """The JSON body of an event, exactly as it will be sent (and signed)."""
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    event = {
        "type": event_type,
        "timestamp": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "data": dict(data),
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def job_summary(job: Job, event_type: EventType) -> dict[str, Any]:
    """What an event says about its job: nothing secret (no text, no presigned URLs)."""
    return {
        "id": job.id,
        "status": EVENT_STATUS[event_type].value,
        "progress": job.progress.model_dump(mode="json"),
        "output": job.output.model_dump(mode="json") if job.output else None,
        "error": job.error.model_dump(mode="json") if job.error else None,
        "metadata": job.metadata,
        "batch_id": job.batch_id,
    }


def build_event(
    job: Job, event_type: str, *, data: Mapping[str, Any] | None = None, at: float | None = None
) -> tuple[str, str]:
    """A job event's id and its JSON body.

    ``data`` is merged over the job summary (a ``progress`` there also numbers a
    progress event).
    """
    kind = EventType(event_type)
    payload = job_summary(job, kind) | dict(data or {})
    sequence = 0
    if kind is EventType.PROGRESS:
        sequence = Progress.model_validate(payload["progress"]).segments_done
    return event_id(job.id, kind.value, sequence), event_body(kind.value, payload, at)


# -- queueing -----------------------------------------------------------------------


def _queue(delivery: Delivery, settings: Settings, sender: Sender, subject: str) -> bool:
    """Queue one delivery; False (logged) if the broker would not take it."""
    try:
        sender.send_task(
            DELIVER_CALLBACK,
            kwargs=asdict(delivery),
            queue=queue_names(settings)["callbacks"],
            ignore_result=True,  # else Celery subscribes to a result nobody reads
            retry_policy=PUBLISH_RETRY,
        )
    except Exception:  # a broker outage must not fail what is reporting
        log.warning("%s: could not queue %s callback", subject, delivery.event_type, exc_info=True)
        return False
    log.info("%s: %s callback %s queued", subject, delivery.event_type, delivery.event_id)
    return True


def emit_job_event(
    job: Job,
    event_type: str,
    *,
    settings: Settings,
    sender: Sender,
    data: dict[str, Any] | None = None,
) -> None:
    """Queue delivery of ``event_type`` (e.g. ``job.succeeded``) to the job's
    ``callback_url``, if it has one.  Never raises for delivery problems.

    The event reports the status its type implies, with the rest (progress,
    output, error) from ``job``: pass the record as stored after the transition.
    ``data`` is merged over that summary.  An unknown ``event_type`` is a
    programming error (``ValueError``).
    """
    kind = EventType(event_type)
    url = job.request.callback_url
    if not url:
        return
    delivery_id, body = build_event(job, kind, data=data)
    delivery = Delivery(job.id, job.tenant, url, delivery_id, kind.value, body)
    _queue(delivery, settings, sender, f"job {job.id}")


class ProgressThrottle:
    """At most one ``job.progress`` per job per ``interval`` seconds, across all
    workers (a Redis key with a TTL), and always the last segment's."""

    def __init__(self, client: redis.Redis, keys: Keys, interval: float = PROGRESS_INTERVAL):
        self.redis = client
        self.keys = keys
        self.interval = interval

    def allow(self, job_id: str, progress: Progress) -> bool:
        """True if a progress event for ``progress`` should go now (claims the slot)."""
        if progress.segments_total and progress.segments_done >= progress.segments_total:
            return True
        try:
            ttl = max(1, int(self.interval * 1000))
            return bool(self.redis.set(self.keys.callback_progress(job_id), "1", nx=True, px=ttl))
        except redis.RedisError:
            log.debug("job %s: progress throttle unavailable; event skipped", job_id)
            return False


def emit_progress(
    job: Job,
    progress: Progress,
    *,
    settings: Settings,
    throttle: ProgressThrottle,
    sender: Sender,
) -> bool:
    """Emit ``job.progress`` for ``progress`` unless throttled; True if it was queued.
    A job without a callback URL costs nothing (no Redis call)."""
    if not job.request.callback_url or not throttle.allow(job.id, progress):
        return False
    emit_job_event(
        job,
        EventType.PROGRESS,
        settings=settings,
        sender=sender,
        data={"progress": progress.model_dump(mode="json")},
    )
    return True


def emit_batch_event(
    batch: Batch,
    event: BatchEvent,
    *,
    settings: Settings,
    sender: Sender,
    data: Mapping[str, Any] | None = None,
    sequence: int = 0,
    job_id: str | None = None,
) -> None:
    """Queue ``event`` for the batch's ``callback_url``, if it has one; never raises
    for delivery problems.

    Item events are recorded on the item's job (``job_id``); the id of an event
    is stable for (batch or job, type, ``sequence``): a batch's end is numbered
    by its generation.
    """
    url = batch.callback_url
    if not url:
        return
    subject = job_id or batch.id
    delivery = Delivery(
        job_id=subject,
        tenant=batch.tenant,
        url=url,
        event_id=event_id(subject, event.value, sequence),
        event_type=event.value,
        body=event_body(event.value, data or {}),
    )
    _queue(delivery, settings, sender, f"batch {batch.id}")


def emit_item_event(
    batch: Batch, index: int, job: Job, *, settings: Settings, sender: Sender
) -> None:
    """Queue ``batch.item.succeeded`` or ``batch.item.failed`` for item ``index``, whose
    job ``job`` ended; nothing for a canceled job (the batch's own end reports it)."""
    kinds = ITEM_EVENTS.get(job.status)
    if kinds is None:
        return
    event, job_event = kinds
    data = {
        "batch_id": batch.id,
        "index": index,
        "title": batch.items[index].title,
        "job": job_summary(job, job_event),
    }
    emit_batch_event(batch, event, settings=settings, sender=sender, data=data, job_id=job.id)
