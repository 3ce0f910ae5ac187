"""Delivering callback events: the ``shoal.deliver_callback`` task and its attempts.

Each message is one attempt at one :class:`~worker.callbacks.emit.Delivery`: POST
the body, signed the Standard Webhooks way with the tenant's ``webhook_secret``
(:mod:`worker.callbacks.signing`), and classify the answer.  Timeouts,
connection errors, 429 and 5xx are retried on
:data:`worker.retry.CALLBACK_SCHEDULE` (seconds to hours; each retry is a new
message with the attempt number and due time, see :func:`handle_delivery`).
Every attempt is recorded on the job (``Job.callbacks``); none of this ever
changes the job's status.

Choices worth knowing:

- A tenant without a ``webhook_secret`` gets no callbacks: the attempt is
  recorded with the error "tenant has no webhook secret" and not retried.
  Unsigned callbacks would teach receivers to skip verification.
- Redirects are not followed (a 3xx is a failed, unretried attempt), and the
  callback host is resolved again at delivery time and refused when it is
  private or loopback, unless ``allow_private_callbacks`` is set: DNS may have
  changed since the API accepted the URL (:mod:`worker.callbacks.urls`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import redis
from celery import Task

from worker.callbacks.emit import PUBLISH_RETRY, Delivery
from worker.callbacks.signing import InvalidSecret, sign
from worker.callbacks.urls import callback_url_problem
from worker.celery import app
from worker.jobs.model import CallbackAttempt
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.queues import DELIVER_CALLBACK, queue_names
from worker.retry import CALLBACK_SCHEDULE
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Seconds a receiver has to answer one delivery.
DELIVERY_TIMEOUT = 10.0
#: Delivery attempts kept on a job record, newest last.
MAX_RECORDED_ATTEMPTS = 50
USER_AGENT = "shoal-webhooks/1"


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
