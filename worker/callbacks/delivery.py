"""Job callbacks: signed webhook events, delivered by their own Celery task.

A job whose request has a ``callback_url`` is told about ``job.started``,
``job.progress`` (throttled), ``job.succeeded``, ``job.failed`` and
``job.canceled``.  :func:`emit_job_event` builds the event once — its body and
its stable id — and queues ``shoal.deliver_callback`` on the callbacks queue.
The task POSTs the body, signed the Standard Webhooks way with the tenant's
``webhook_secret``, and retries timeouts, connection errors, 429 and 5xx on
:data:`worker.retry.CALLBACK_SCHEDULE` (seconds to hours; each retry is a new
message with the attempt number and due time, see :func:`handle_delivery`).
Every attempt is recorded on the job (``Job.callbacks``); none of this ever
changes the job's status.

What a receiver gets::

    POST <callback_url>
    content-type: application/json
    webhook-id: msg_...            the same on every attempt of one event: de-duplicate on it
    webhook-timestamp: 1718000000  unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

    {"type": "job.succeeded", "timestamp": "2024-06-10T06:13:20.123456Z",
     "data": {"id": ..., "status": ..., "progress": {...}, "output": {...},
              "error": null, "metadata": {...}, "batch_id": null}}

Choices worth knowing:

- A tenant without a ``webhook_secret`` gets no callbacks: the attempt is
  recorded with the error "tenant has no webhook secret" and not retried.
  Unsigned callbacks would teach receivers to skip verification.
- Redirects are not followed (a 3xx is a failed, unretried attempt), and the
  callback host is resolved again at delivery time and refused when it is
  private or loopback, unless ``allow_private_callbacks`` is set: DNS may have
  changed since the API accepted the URL.
- Events of one job are separate deliveries and may arrive out of order after
  a retry; the body's ``timestamp`` orders them.

Errors::

    CallbackError
    ├── InvalidSecret             a secret that is not ``whsec_<base64>`` (also a ValueError)
    └── WebhookVerificationError  verify(): headers missing, timestamp stale, no signature matches
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from celery import Celery, Task

from worker.celery import app, queue_names
from worker.jobs.model import CallbackAttempt, Job, JobStatus, Progress
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.retry import CALLBACK_SCHEDULE
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

DELIVER_CALLBACK = "shoal.deliver_callback"
#: Seconds a receiver has to answer one delivery.
DELIVERY_TIMEOUT = 10.0
#: At most one ``job.progress`` per job in this many seconds (the last segment always goes).
PROGRESS_INTERVAL = 2.0
#: Delivery attempts kept on a job record, newest last.
MAX_RECORDED_ATTEMPTS = 50
#: Default age, in seconds, beyond which :func:`verify` refuses a message.
TOLERANCE = 300
USER_AGENT = "shoal-webhooks/1"
#: Queueing a callback gives up after about a second: the job must not wait on a broker outage.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class EventType(StrEnum):
    """The callback events of a job."""

    STARTED = "job.started"  # a worker took the job (queued → running), once
    PROGRESS = "job.progress"  # segments finished; throttled, the last one always sent
    SUCCEEDED = "job.succeeded"  # output uploaded; terminal
    FAILED = "job.failed"  # permanent error or retries exhausted; terminal
    CANCELED = "job.canceled"  # canceled by the user; terminal


#: The status an event reports, whatever the (possibly stale) job passed in says.
EVENT_STATUS: dict[EventType, JobStatus] = {
    EventType.STARTED: JobStatus.RUNNING,
    EventType.PROGRESS: JobStatus.RUNNING,
    EventType.SUCCEEDED: JobStatus.SUCCEEDED,
    EventType.FAILED: JobStatus.FAILED,
    EventType.CANCELED: JobStatus.CANCELED,
}


class CallbackError(Exception):
    """Root of this module's errors."""


class InvalidSecret(CallbackError, ValueError):
    """A webhook secret that is not ``whsec_`` followed by non-empty base64."""


class WebhookVerificationError(CallbackError):
    """A webhook that does not verify: headers missing, timestamp stale, or no signature matches."""


# -- signing (pure) ----------------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("webhook secret is not whsec_<base64>") from exc
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    raw = body if isinstance(body, bytes) else body.encode()
    signed = f"{msg_id}.{int(timestamp)}.".encode() + raw
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: str | bytes,
    tolerance: float = TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Check a received webhook; raises :class:`WebhookVerificationError` unless one
    of its ``v1`` signatures matches and its timestamp is within ``tolerance`` seconds
    of ``now``.  ``headers`` may use any case; ``body`` must be the raw bytes received."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {stamp!r}") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("message timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("message timestamp too new")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        version, _, _ = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookVerificationError("no matching signature")


# -- events (pure) -----------------------------------------------------------------


def event_id(job_id: str, event_type: str, sequence: int = 0) -> str:
    """The stable id of one event: the same for every delivery attempt, and for every
    emission of the same event (a progress event is numbered by segments done)."""
    digest = hashlib.sha256(f"{job_id}\n{event_type}\n{sequence}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()


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
    """The event's id and its JSON body, exactly as they will be sent (and signed).

    ``data`` is merged over the job summary (a ``progress`` there also numbers a
    progress event).
    """
    kind = EventType(event_type)
    payload = job_summary(job, kind) | dict(data or {})
    sequence = 0
    if kind is EventType.PROGRESS:
        sequence = Progress.model_validate(payload["progress"]).segments_done
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    event = {
        "type": kind.value,
        "timestamp": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "data": payload,
    }
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return event_id(job.id, kind.value, sequence), body


def callback_url_problem(
    url: str, *, allow_private: bool, resolve: bool = True, port: int | None = None
) -> str | None:
    """Why ``url`` may not receive callbacks, or ``None`` if it may.

    Refuses anything but http(s) with a host and, unless ``allow_private``
    (``SHOAL_ALLOW_PRIVATE_CALLBACKS``), hosts that are or resolve to private,
    loopback, link-local, shared, multicast or reserved addresses — so a tenant
    cannot make shoal call into the network it runs in.  The API checks at
    submission and delivery checks again (DNS may have changed).
    ``resolve=False`` checks IP literals only.
    """
    try:
        parts = urlsplit(url)
        host, url_port = parts.hostname, parts.port
    except ValueError as exc:
        return f"callback_url is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return "callback_url must be an http or https URL with a host"
    if allow_private:
        return None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None
        default = 443 if scheme == "https" else 80
        try:
            infos = socket.getaddrinfo(host, port or url_port or default, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return f"callback_url: host {host!r} does not resolve ({exc})"
        # An IPv6 zone id ("fe80::1%eth0") is not part of the address.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not _is_public(address):
            return (
                f"callback_url: {host} resolves to {address}, a private, loopback, link-local "
                "or reserved address; callbacks go to public addresses only"
            )
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
    )


# -- emitting ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one URL: the task's arguments, the same on every retry."""

    job_id: str
    tenant: str
    url: str
    event_id: str
    event_type: str
    body: str


def emit_job_event(
    job: Job,
    event_type: str,
    *,
    settings: Settings,
    celery_app: Celery | None = None,
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
    try:
        (celery_app or app).send_task(
            DELIVER_CALLBACK,
            kwargs=asdict(delivery),
            queue=queue_names(settings)["callbacks"],
            ignore_result=True,  # else Celery subscribes to a result nobody reads
            retry_policy=PUBLISH_RETRY,
        )
    except Exception:  # a broker outage must not fail the job that is reporting
        log.warning("job %s: could not queue %s callback", job.id, kind.value, exc_info=True)
        return
    log.info("job %s: %s callback %s queued", job.id, kind.value, delivery_id)


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
    celery_app: Celery | None = None,
) -> bool:
    """Emit ``job.progress`` for ``progress`` unless throttled; True if it was queued.
    A job without a callback URL costs nothing (no Redis call)."""
    if not job.request.callback_url or not throttle.allow(job.id, progress):
        return False
    emit_job_event(
        job,
        EventType.PROGRESS,
        settings=settings,
        celery_app=celery_app,
        data={"progress": progress.model_dump(mode="json")},
    )
    return True


# -- delivering --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one delivery attempt went."""

    status_code: int | None = None  # the receiver's answer, if any
    error: str | None = None  # None when delivered
    retryable: bool = False  # worth another attempt later

    @property
    def delivered(self) -> bool:
        return self.error is None


def deliver_once(
    delivery: Delivery,
    *,
    settings: Settings,
    client: httpx.Client | None = None,
    now: float | None = None,
) -> AttemptResult:
    """POST one signed delivery and classify the answer; never raises."""
    tenant = settings.tenant(delivery.tenant)
    if tenant is None or tenant.webhook_secret is None:
        return AttemptResult(error="tenant has no webhook secret")
    secret = tenant.webhook_secret.get_secret_value()
    problem = callback_url_problem(delivery.url, allow_private=settings.allow_private_callbacks)
    if problem is not None:
        # An unresolvable host may be a DNS blip; a private one is a refusal.
        return AttemptResult(error=problem, retryable="does not resolve" in problem)
    timestamp = int(time.time() if now is None else now)
    body = delivery.body.encode()
    try:
        signature = sign(secret, delivery.event_id, timestamp, body)
    except InvalidSecret as exc:
        return AttemptResult(error=f"tenant's webhook secret is invalid: {exc}")
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    own = client is None
    http = client or httpx.Client(timeout=DELIVERY_TIMEOUT, follow_redirects=False)
    try:
        response = http.post(delivery.url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        return AttemptResult(error=f"receiver timed out ({type(exc).__name__})", retryable=True)
    except httpx.HTTPError as exc:
        return AttemptResult(error=f"{type(exc).__name__}: {exc}", retryable=True)
    finally:
        if own:
            http.close()
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(status_code=code)
    if code == 429 or code >= 500:
        return AttemptResult(status_code=code, error=f"receiver answered {code}", retryable=True)
    if 300 <= code < 400:
        return AttemptResult(
            status_code=code, error=f"receiver answered {code}; redirects are not followed"
        )
    return AttemptResult(status_code=code, error=f"receiver answered {code}; not retried")


def run_delivery(
    delivery: Delivery,
    attempt: int,
    *,
    settings: Settings,
    store: JobStore,
    client: httpx.Client | None = None,
) -> float | None:
    """One attempt, recorded on the job; returns the delay before the next attempt,
    or ``None`` when there is none (delivered, refused, or the schedule is used up)."""
    result = deliver_once(delivery, settings=settings, client=client)
    retry_in: float | None = None
    if result.delivered:
        outcome = "delivered"
    elif result.retryable and attempt <= len(CALLBACK_SCHEDULE):
        outcome, retry_in = "retrying", CALLBACK_SCHEDULE[attempt - 1]
    else:
        outcome = "gave_up"
    error = result.error
    if outcome == "gave_up" and result.retryable:
        error = f"{error}; gave up after {attempt} attempts"
    record = CallbackAttempt(
        event_id=delivery.event_id,
        type=delivery.event_type,
        attempt=attempt,
        status_code=result.status_code,
        error=error,
        outcome=outcome,
        at=round(time.time(), 3),
    )
    try:
        store.record_callback_attempt(delivery.job_id, record, cap=MAX_RECORDED_ATTEMPTS)
    except redis.RedisError:
        log.warning("job %s: callback attempt not recorded", delivery.job_id, exc_info=True)
    log.info(
        "job %s: %s callback %s attempt %d: %s%s",
        delivery.job_id,
        delivery.event_type,
        delivery.event_id,
        attempt,
        outcome,
        f" ({error})" if error else "",
    )
    return retry_in


_stores: dict[tuple[str, str], JobStore] = {}
_stores_lock = threading.Lock()


def _store(settings: Settings) -> JobStore:
    """This process's job store for ``settings`` (one Redis pool, shared by threads)."""
    key = (settings.redis_url, settings.key_prefix)
    with _stores_lock:
        if key not in _stores:
            client = redis.Redis.from_url(settings.redis_url)
            _stores[key] = JobStore(client, Keys(settings.key_prefix), settings.job_ttl_seconds)
        return _stores[key]


#: How the delivery task queues its next run: (task kwargs, countdown in seconds).
Schedule = Callable[[dict[str, Any], float], None]


def handle_delivery(
    delivery: Delivery,
    attempt: int,
    due_at: float | None,
    *,
    settings: Settings,
    store: JobStore,
    schedule: Schedule,
    client: httpx.Client | None = None,
) -> None:
    """One run of the delivery task: attempt now and schedule the next attempt if
    one is due, or, if this run came early, only wait on.

    Celery on Redis hands a message that a worker has held for longer than the
    visibility timeout to another worker, so a countdown of hours would come
    back as duplicates.  Long waits are therefore taken in hops of at most half
    the visibility timeout, each a fresh message carrying the attempt number
    and the time it is due.
    """
    hop = max(1.0, settings.visibility_timeout / 2)
    early = None if due_at is None else due_at - time.time()
    if early is not None and early > 0.5:
        schedule(asdict(delivery) | {"attempt": attempt, "due_at": due_at}, min(early, hop))
        return
    retry_in = run_delivery(delivery, attempt, settings=settings, store=store, client=client)
    if retry_in is not None:
        due = time.time() + retry_in
        schedule(asdict(delivery) | {"attempt": attempt + 1, "due_at": due}, min(retry_in, hop))


@app.task(bind=True, name=DELIVER_CALLBACK, acks_late=True, ignore_result=True)
def deliver_callback(
    self: Task, *, attempt: int = 1, due_at: float | None = None, **fields: Any
) -> None:
    """Deliver one event (``fields`` are a :class:`Delivery`); on failure queue the
    next attempt on :data:`~worker.retry.CALLBACK_SCHEDULE`."""
    settings = get_settings()
    delivery = Delivery(**fields)

    def schedule(kwargs: dict[str, Any], countdown: float) -> None:
        try:
            self.apply_async(
                kwargs=kwargs,
                countdown=countdown,
                queue=queue_names(settings)["callbacks"],
                ignore_result=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception:  # the broker is down: this event's remaining attempts are lost
            log.error(
                "job %s: %s callback %s: next attempt could not be queued",
                delivery.job_id,
                delivery.event_type,
                delivery.event_id,
                exc_info=True,
            )

    handle_delivery(
        delivery, attempt, due_at, settings=settings, store=_store(settings), schedule=schedule
    )
