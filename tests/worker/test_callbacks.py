"""Callbacks: Standard Webhooks signing, events, delivery and its record.

Tiers: pure tests of signing (against the specification's published test
vector), event ids, bodies and URL checks; deliveries in-process to a real HTTP
receiver on 127.0.0.1:0 with the record in a real Redis; and end to end through
a real Celery worker subprocess (``tests/stack.py``), where the receiver sees a
redelivery with the same ``webhook-id`` after it answered 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.batches.model import Batch, BatchItem, BookInfo, new_batch_id
from worker.callbacks.delivery import deliver_once, handle_delivery, run_delivery
from worker.callbacks.emit import (
    BatchEvent,
    Delivery,
    EventType,
    ProgressThrottle,
    build_event,
    emit_batch_event,
    emit_item_event,
    emit_job_event,
    emit_progress,
)
from worker.callbacks.signing import (
    InvalidSecret,
    WebhookVerificationError,
    event_id,
    secret_key,
    sign,
    verify,
)
from worker.callbacks.urls import callback_url_problem
from worker.celery import create_app
from worker.jobs.model import (
    CallbackAttempt,
    Job,
    JobError,
    JobRequest,
    JobStatus,
    Output,
    Progress,
    estimate_billing,
    new_job_id,
)
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.queues import DELIVER_CALLBACK
from worker.retry import CALLBACK_SCHEDULE
from worker.settings import Settings, TenantConfig

# The Standard Webhooks specification's test vector (its reference libraries test
# against it): github.com/standard-webhooks/standard-webhooks, libraries/*/tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def make_job(callback_url: str | None = None, tenant: str = "t1", **fields: Any) -> Job:
    text = "Hello there. General Kenobi."
    return Job(
        id=new_job_id(),
        tenant=tenant,
        request=JobRequest(text=text, callback_url=callback_url),
        billing=estimate_billing(text, 15.0),
        metadata={"chapter": 3},
        **fields,
    )


def tenants_json(secret: str | None = SECRET) -> str:
    return json.dumps([{"id": "t1", "key_sha256": ["0" * 64], "webhook_secret": secret}])


# -- a real receiver -------------------------------------------------------------------


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check written out from the specification, independent
    of ``worker.callbacks.signing``: HMAC-SHA256 over ``{id}.{timestamp}.{body}``, base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.startswith("v1,") and hmac.compare_digest(part[3:], expected)
        for part in headers["webhook-signature"].split()
    )


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """An HTTP server on 127.0.0.1:0 that records webhooks and verifies their signatures.

    ``answers`` are the statuses of the first requests, in order; then it answers 200.
    """

    def __init__(self, secret: str = SECRET, answers: Iterable[int] = (), delay: float = 0.0):
        self.secret = secret
        self.answers = deque(answers)
        self.delay = delay
        self.received: list[Received] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    ok = spec_verify(receiver.secret, headers, body)
                except (KeyError, ValueError):
                    ok = False
                time.sleep(receiver.delay)
                with receiver.changed:
                    code = receiver.answers.popleft() if receiver.answers else 200
                    receiver.received.append(Received(headers, body, code, ok))
                    receiver.changed.notify_all()
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("location", "/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/shoal"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver got only {self.received}")
                self.changed.wait(left)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL on a port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"


# -- signing ---------------------------------------------------------------------------


def test_sign_reproduces_the_specification_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.encode()) == SPEC_SIGNATURE
    # The prefix is optional, as in the reference libraries.
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def spec_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    return headers | overrides


def test_verify_accepts_the_specification_test_vector() -> None:
    verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)
    verify(SPEC_SECRET, spec_headers(), SPEC_BODY.encode(), now=SPEC_TIMESTAMP + 299)
    # Any case of header names; several signatures (key rotation), one of which matches.
    upper = {k.upper(): v for k, v in spec_headers().items()}
    verify(SPEC_SECRET, upper, SPEC_BODY, now=SPEC_TIMESTAMP)
    several = spec_headers(**{"webhook-signature": f"v1,bm9wZQ== v2,xyz {SPEC_SIGNATURE}"})
    verify(SPEC_SECRET, several, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    ("headers", "body", "now", "message"),
    [
        (spec_headers(), '{"test": 2432232315}', SPEC_TIMESTAMP, "no matching signature"),
        (spec_headers(**{"webhook-id": "msg_other"}), SPEC_BODY, SPEC_TIMESTAMP, "no matching"),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 301, "too old"),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP - 301, "too new"),
        (spec_headers(**{"webhook-timestamp": "soon"}), SPEC_BODY, SPEC_TIMESTAMP, "integer"),
        (spec_headers(**{"webhook-signature": "v2,abc"}), SPEC_BODY, SPEC_TIMESTAMP, "no match"),
        ({"webhook-id": SPEC_ID}, SPEC_BODY, SPEC_TIMESTAMP, "missing"),
    ],
)
def test_verify_refuses_what_does_not_check_out(
    headers: dict[str, str], body: str, now: float, message: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify(SPEC_SECRET, headers, body, now=now)


def test_verify_refuses_another_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", ""])
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        secret_key(secret)


# -- events ----------------------------------------------------------------------------


def test_event_ids_are_stable_and_distinct() -> None:
    a = event_id("job_1", "job.succeeded")
    assert a == event_id("job_1", "job.succeeded")
    assert a.startswith("msg_") and len(a) == 4 + 24
    others = {
        event_id("job_2", "job.succeeded"),
        event_id("job_1", "job.started"),
        event_id("job_1", "job.progress", 1),
        event_id("job_1", "job.progress", 2),
    }
    assert a not in others and len(others) == 4


def test_event_body_summarises_the_job_without_its_text() -> None:
    output = Output(
        url="s3://b/t1/x.mp3",
        bucket="b",
        key="t1/x.mp3",
        bytes=10,
        duration_s=1.5,
        format="mp3",
        sample_rate=44100,
        content_type="audio/mpeg",
        sha256="0" * 64,
    )
    # A stale record (still queued) is reported with the status its event implies.
    job = make_job("https://example.com/hook", output=output)
    eid, body = build_event(job, "job.succeeded", at=1_718_000_000.5)
    event = json.loads(body)
    assert eid == event_id(job.id, "job.succeeded")
    assert event["type"] == "job.succeeded"
    assert event["timestamp"] == "2024-06-10T06:13:20.500000Z"
    data = event["data"]
    assert data["id"] == job.id and data["status"] == "succeeded"
    assert data["output"]["key"] == "t1/x.mp3" and data["error"] is None
    assert data["metadata"] == {"chapter": 3} and data["batch_id"] is None
    assert set(data["progress"]) == set(Progress.model_fields)
    assert "General Kenobi" not in body and "callback_url" not in body

    failed = job.model_copy(update={"error": JobError(code="x", message="boom")})
    assert json.loads(build_event(failed, "job.failed")[1])["data"]["error"]["message"] == "boom"
    with pytest.raises(ValueError):
        build_event(job, "job.exploded")


def test_progress_events_are_numbered_by_segments_done() -> None:
    job = make_job("https://example.com/hook")
    p = Progress(segments_done=3, segments_total=5, chars_done=30, chars_total=50)
    eid, body = build_event(job, "job.progress", data={"progress": p.model_dump()})
    assert eid == event_id(job.id, "job.progress", 3)
    assert json.loads(body)["data"]["progress"]["segments_done"] == 3
    assert json.loads(body)["data"]["status"] == "running"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://8.8.8.8/hook", True),
        ("http://[2606:4700:4700::1111]:8080/hook", True),
        ("ftp://8.8.8.8/hook", False),
        ("https:///nohost", False),
        ("http://127.0.0.1:9000/hook", False),
        ("http://10.1.2.3/hook", False),
        ("http://192.168.0.10/hook", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://100.64.0.1/hook", False),
        ("http://[::1]/hook", False),
        ("http://[::ffff:127.0.0.1]/hook", False),
        ("http://0.0.0.0/hook", False),
        ("http://localhost:8000/hook", False),
        ("http://[fe80::1]/hook", False),
    ],
)
def test_callback_urls_on_private_addresses_are_refused(url: str, allowed: bool) -> None:
    problem = callback_url_problem(url, allow_private=False)
    assert (problem is None) is allowed, problem


def test_private_callback_urls_pass_when_the_operator_allows_them() -> None:
    assert callback_url_problem("http://127.0.0.1:9000/hook", allow_private=True) is None
    assert callback_url_problem("ftp://127.0.0.1/hook", allow_private=True) is not None
    assert callback_url_problem("http://no-such-host.invalid/", allow_private=False) is not None


# -- delivery, in-process ----------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, keys: Keys) -> Settings:
    return Settings(
        redis_url=redis_url,
        key_prefix=keys.prefix,
        tenants=[TenantConfig.model_validate(t) for t in json.loads(tenants_json())],
        allow_private_callbacks=True,
    )


@pytest.fixture
def store(redis_client: redis.Redis, keys: Keys) -> JobStore:
    return JobStore(redis_client, keys, ttl_seconds=3600)


def delivery_for(job: Job, event_type: str = "job.succeeded") -> Delivery:
    assert job.request.callback_url is not None
    eid, body = build_event(job, event_type)
    return Delivery(job.id, job.tenant, job.request.callback_url, eid, event_type, body)


def test_a_delivery_is_signed_and_recorded(
    receiver: Receiver, settings: Settings, store: JobStore
) -> None:
    job = store.create(make_job(receiver.url))
    delivery = delivery_for(job)
    assert run_delivery(delivery, 1, settings=settings, store=store) is None
    [got] = receiver.received
    assert got.verified
    assert got.headers["webhook-id"] == delivery.event_id
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    verify(SECRET, got.headers, got.body)  # the module's own verifier agrees
    assert got.body.decode() == delivery.body
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED
    [attempt] = stored.callbacks
    assert attempt.event_id == delivery.event_id and attempt.type == "job.succeeded"
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
    assert attempt.outcome == "delivered" and abs(attempt.at - time.time()) < 5


@pytest.mark.parametrize(
    ("answer", "retry_in", "outcome"),
    [
        (500, CALLBACK_SCHEDULE[0], "retrying"),
        (503, CALLBACK_SCHEDULE[0], "retrying"),
        (429, CALLBACK_SCHEDULE[0], "retrying"),
        (404, None, "gave_up"),
        (410, None, "gave_up"),
        (302, None, "gave_up"),
    ],
)
def test_answers_decide_whether_to_retry(
    settings: Settings, store: JobStore, answer: int, retry_in: float | None, outcome: str
) -> None:
    receiver = Receiver(answers=[answer])
    try:
        job = store.create(make_job(receiver.url))
        assert run_delivery(delivery_for(job), 1, settings=settings, store=store) == retry_in
        assert len(receiver.received) == 1  # a redirect is not followed
    finally:
        receiver.close()
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED
    [attempt] = stored.callbacks
    assert (attempt.status_code, attempt.outcome) == (answer, outcome)
    assert attempt.error is not None and str(answer) in attempt.error


def test_the_schedule_runs_out(settings: Settings, store: JobStore, dead_url: str) -> None:
    job = store.create(make_job(dead_url))
    delivery = delivery_for(job)
    delays = [
        run_delivery(delivery, n, settings=settings, store=store)
        for n in range(1, len(CALLBACK_SCHEDULE) + 2)
    ]
    assert delays == [*CALLBACK_SCHEDULE, None]
    stored = store.get(job.id)
    assert stored is not None
    assert [a.attempt for a in stored.callbacks] == list(range(1, len(CALLBACK_SCHEDULE) + 2))
    last = stored.callbacks[-1]
    assert last.outcome == "gave_up" and last.status_code is None
    assert last.error is not None and "gave up after 9 attempts" in last.error


def test_long_waits_are_taken_in_hops_shorter_than_the_visibility_timeout(
    settings: Settings, store: JobStore, dead_url: str
) -> None:
    short = settings.model_copy(update={"visibility_timeout": 100})  # hops of 50 s
    job = store.create(make_job(dead_url))
    delivery = delivery_for(job)
    queued: list[tuple[dict[str, Any], float]] = []

    def schedule(kwargs: dict[str, Any], countdown: float) -> None:
        queued.append((kwargs, countdown))

    def run(attempt: int, due_at: float | None) -> tuple[dict[str, Any], float]:
        queued.clear()
        handle_delivery(delivery, attempt, due_at, settings=short, store=store, schedule=schedule)
        [(kwargs, countdown)] = queued
        assert (
            Delivery(**{k: v for k, v in kwargs.items() if k not in ("attempt", "due_at")})
            == delivery
        )
        return kwargs, countdown

    # A short wait is one countdown.
    kwargs, countdown = run(1, None)
    assert kwargs["attempt"] == 2 and countdown == CALLBACK_SCHEDULE[0]
    assert kwargs["due_at"] == pytest.approx(time.time() + CALLBACK_SCHEDULE[0], abs=2)
    # A long one (attempt 4 waits 10 minutes) is hops of at most 50 s ...
    kwargs, countdown = run(4, time.time())
    assert kwargs["attempt"] == 5 and countdown == 50
    due = kwargs["due_at"]
    assert due == pytest.approx(time.time() + CALLBACK_SCHEDULE[3], abs=2)
    # ... and a hop that arrives early only waits on, attempting nothing.
    before = len(store.get(job.id).callbacks)  # type: ignore[union-attr]
    kwargs, countdown = run(5, due)
    assert (kwargs["attempt"], kwargs["due_at"], countdown) == (5, due, 50)
    assert len(store.get(job.id).callbacks) == before  # type: ignore[union-attr]
    # Delivered: nothing more is queued.
    receiver = Receiver()
    try:
        good = store.create(make_job(receiver.url))
        queued.clear()
        handle_delivery(delivery_for(good), 1, None, settings=short, store=store, schedule=schedule)
        assert queued == [] and len(receiver.received) == 1
    finally:
        receiver.close()


def test_a_slow_receiver_times_out_and_is_retried(settings: Settings, store: JobStore) -> None:
    receiver = Receiver(delay=1.0)
    try:
        job = store.create(make_job(receiver.url))
        with httpx.Client(timeout=0.2) as client:
            result = deliver_once(delivery_for(job), settings=settings, client=client)
    finally:
        receiver.close()
    assert result.retryable and result.status_code is None
    assert result.error is not None and "timed out" in result.error


def test_no_webhook_secret_means_no_delivery(
    receiver: Receiver, settings: Settings, store: JobStore
) -> None:
    job = store.create(make_job(receiver.url))
    bare = settings.model_copy(update={"tenants": [TenantConfig(id="t1", key_sha256=["0" * 64])]})
    assert run_delivery(delivery_for(job), 1, settings=bare, store=store) is None
    unknown = store.create(make_job(receiver.url, tenant="nobody"))
    assert run_delivery(delivery_for(unknown), 1, settings=settings, store=store) is None
    assert receiver.received == []
    for job_id in (job.id, unknown.id):
        stored = store.get(job_id)
        assert stored is not None
        [attempt] = stored.callbacks
        assert attempt.error == "tenant has no webhook secret" and attempt.outcome == "gave_up"


def test_private_hosts_are_refused_at_delivery_time(
    receiver: Receiver, settings: Settings, store: JobStore
) -> None:
    strict = settings.model_copy(update={"allow_private_callbacks": False})
    job = store.create(make_job(receiver.url))
    assert run_delivery(delivery_for(job), 1, settings=strict, store=store) is None
    assert receiver.received == []
    stored = store.get(job.id)
    assert stored is not None
    assert stored.callbacks[0].error is not None
    assert "private, loopback" in stored.callbacks[0].error


def test_recorded_attempts_are_capped_and_never_touch_the_job(store: JobStore) -> None:
    job = store.create(make_job("https://example.com/hook"))
    assert store.transition(job.id, JobStatus.RUNNING)
    for n in range(1, 8):
        attempt = CallbackAttempt(
            event_id="msg_x", type="job.progress", attempt=n, error=None, at=time.time()
        )
        assert store.record_callback_attempt(job.id, attempt, cap=5)
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert [a.attempt for a in stored.callbacks] == [3, 4, 5, 6, 7]
    assert stored.callbacks[0].status_code is None and stored.callbacks[0].error is None
    # A job that is gone stays gone.
    assert store.delete(job.id)
    assert not store.record_callback_attempt(job.id, attempt)
    assert store.get(job.id) is None


def test_a_record_without_callbacks_still_reads(store: JobStore, redis_client: redis.Redis) -> None:
    job = store.create(make_job())
    redis_client.hdel(store.keys.job(job.id), "callbacks")  # as written before the field existed
    stored = store.get(job.id)
    assert stored is not None and stored.callbacks == []


# -- emitting --------------------------------------------------------------------------


def test_emitting_never_raises_when_the_broker_is_down(dead_url: str) -> None:
    port = dead_url.split(":")[2].split("/")[0]
    down = Settings(redis_url=f"redis://127.0.0.1:{port}/0")
    app = create_app(down)
    started = time.monotonic()
    try:
        emit_job_event(
            make_job("https://example.com/hook"), "job.started", settings=down, sender=app
        )
    finally:
        app.close()
    assert time.monotonic() - started < 5


def test_events_are_queued_on_the_callbacks_queue_only_with_a_callback_url(
    settings: Settings, keys: Keys, redis_client: redis.Redis
) -> None:
    app = create_app(settings)
    queue = f"{keys.prefix}:celery:{keys.prefix}.callbacks"  # kombu's list, under our prefix
    throttle = ProgressThrottle(redis_client, keys)
    try:
        silent = make_job(None)
        emit_job_event(silent, "job.succeeded", settings=settings, sender=app)
        half = Progress(segments_done=1, segments_total=2)
        assert not emit_progress(silent, half, settings=settings, throttle=throttle, sender=app)
        assert redis_client.llen(queue) == 0
        assert redis_client.get(keys.callback_progress(silent.id)) is None  # not even a lookup

        job = make_job("https://example.com/hook")
        emit_job_event(job, "job.started", settings=settings, sender=app)
        assert emit_progress(job, half, settings=settings, throttle=throttle, sender=app)
        assert not emit_progress(job, half, settings=settings, throttle=throttle, sender=app)
    finally:
        app.close()
    messages = [json.loads(m) for m in redis_client.lrange(queue, 0, -1)]
    assert [m["headers"]["task"] for m in messages] == [DELIVER_CALLBACK] * 2
    _, kwargs, _ = json.loads(base64.b64decode(messages[0]["body"]))
    assert kwargs["event_id"] in {
        event_id(job.id, "job.started"),
        event_id(job.id, "job.progress", 1),
    }
    assert kwargs["url"] == "https://example.com/hook" and kwargs["tenant"] == "t1"


def queued(redis_client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The kwargs of the messages waiting on ``queue``, oldest first."""
    raw = [json.loads(m) for m in reversed(redis_client.lrange(queue, 0, -1))]
    return [json.loads(base64.b64decode(m["body"]))[1] for m in raw]


def test_batch_events_are_built_like_job_events_with_stable_ids(
    settings: Settings, keys: Keys, redis_client: redis.Redis
) -> None:
    """Item events carry their job's summary and go only for succeeded or failed jobs;
    a batch's end is numbered by its generation; a batch without a URL sends nothing."""
    app = create_app(settings)
    queue = f"{keys.prefix}:celery:{keys.prefix}.callbacks"
    jobs = [make_job(None, status=s) for s in (JobStatus.SUCCEEDED, JobStatus.FAILED)]
    jobs.append(make_job(None, status=JobStatus.CANCELED))
    items = [
        BatchItem(job_id=j.id, title=f"Chapter {n}", chars=9, utf8_bytes=9)
        for n, j in enumerate(jobs)
    ]
    batch = Batch(
        id=new_batch_id(),
        tenant="t1",
        items=items,
        book=BookInfo(title="Tides"),
        callback_url="https://example.com/book",
        billing=jobs[0].billing,
    )
    try:
        for index, job in enumerate(jobs):
            emit_item_event(batch, index, job, settings=settings, sender=app)
        end = {"status": "partially_failed"}
        emit_batch_event(
            batch, BatchEvent.FAILED, settings=settings, sender=app, data=end, sequence=2
        )
        silent = batch.model_copy(update={"callback_url": None})
        emit_batch_event(silent, BatchEvent.FAILED, settings=settings, sender=app)
    finally:
        app.close()
    got = queued(redis_client, queue)
    assert [(k["event_type"], k["job_id"], k["event_id"]) for k in got] == [
        ("batch.item.succeeded", jobs[0].id, event_id(jobs[0].id, "batch.item.succeeded")),
        ("batch.item.failed", jobs[1].id, event_id(jobs[1].id, "batch.item.failed")),
        ("batch.failed", batch.id, event_id(batch.id, "batch.failed", 2)),
    ]
    assert {k["url"] for k in got} == {"https://example.com/book"}
    item = json.loads(got[1]["body"])
    assert item["type"] == "batch.item.failed"
    assert (item["data"]["batch_id"], item["data"]["index"], item["data"]["title"]) == (
        batch.id,
        1,
        "Chapter 1",
    )
    assert item["data"]["job"]["id"] == jobs[1].id and item["data"]["job"]["status"] == "failed"
    assert "Kenobi" not in got[1]["body"]  # the summary, never the text
    assert json.loads(got[2]["body"])["data"] == end


def test_progress_is_throttled_across_workers(redis_client: redis.Redis, keys: Keys) -> None:
    a = ProgressThrottle(redis_client, keys, interval=0.3)
    b = ProgressThrottle(redis_client, keys, interval=0.3)  # another worker, same Redis
    mid = [Progress(segments_done=n, segments_total=10) for n in range(10)]
    assert a.allow("job_1", mid[1])
    assert not b.allow("job_1", mid[2]) and not a.allow("job_1", mid[3])
    assert a.allow("job_2", mid[1])  # per job
    # The last segment always goes.
    assert b.allow("job_1", Progress(segments_done=10, segments_total=10))
    time.sleep(0.35)
    assert b.allow("job_1", mid[4])


# -- end to end: a real Celery worker ------------------------------------------------------


@pytest.fixture
def stack(make_stack: Stacks, tone_tts: LocalTTS) -> Stack:
    st = make_stack(tone_tts, SHOAL_ALLOW_PRIVATE_CALLBACKS="true")
    st.start_worker(SHOAL_TENANTS=tenants_json())
    return st


def wait_callbacks(
    stack: Stack, job_id: str, done: Callable[[list[CallbackAttempt]], bool], timeout: float = 30
) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.store.get(job_id)
        if job is not None and done(job.callbacks):
            return job
        time.sleep(0.05)
    logs = "\n".join(w.log() for w in stack.workers)
    raise TimeoutError(f"callbacks of {job_id}: {job and job.callbacks}\n{logs}")


def test_a_receiver_that_answered_500_gets_the_same_webhook_id_again(stack: Stack) -> None:
    receiver = Receiver(answers=[500])
    try:
        job = stack.store.create(make_job(receiver.url))
        emit_job_event(job, "job.succeeded", settings=stack.settings, sender=stack.celery)
        first, second = receiver.wait_for(
            lambda got: len(got) >= 2, timeout=CALLBACK_SCHEDULE[0] + 20
        )
    finally:
        receiver.close()
    assert (first.answered, second.answered) == (500, 200)
    assert first.verified and second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"] == event_id(job.id, "job.succeeded")
    assert first.body == second.body and first.event["type"] == "job.succeeded"
    # Signed afresh for each attempt, about one schedule step apart.
    gap = int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"])
    assert CALLBACK_SCHEDULE[0] - 1 <= gap <= CALLBACK_SCHEDULE[0] + 10
    done = wait_callbacks(stack, job.id, lambda cbs: len(cbs) >= 2)
    assert [(a.attempt, a.status_code, a.outcome) for a in done.callbacks] == [
        (1, 500, "retrying"),
        (2, 200, "delivered"),
    ]
    assert done.status is JobStatus.QUEUED  # callbacks never move a job


def test_a_down_receiver_never_changes_the_job_result(stack: Stack, dead_url: str) -> None:
    job = stack.submit("A short text. It has two sentences.", callback_url=dead_url)
    done = stack.wait(job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    emit_job_event(done, "job.succeeded", settings=stack.settings, sender=stack.celery)
    after = wait_callbacks(stack, job.id, lambda cbs: any(a.type == "job.succeeded" for a in cbs))
    attempt = next(a for a in after.callbacks if a.type == "job.succeeded")
    assert attempt.outcome == "retrying" and attempt.status_code is None
    assert attempt.error is not None
    assert after.status is JobStatus.SUCCEEDED and after.output == done.output
    assert after.error is None


def test_a_job_tells_its_receiver_started_then_succeeded(stack: Stack) -> None:
    """The runner's events, end to end: signed, in order, a 500 redelivered under the
    same webhook-id, every attempt on the job, and the job's result untouched."""
    receiver = Receiver(answers=[500])
    text = " ".join(f"Sentence {i} is about rivers and quiet harbours." for i in range(6))
    try:
        job = stack.submit(text, callback_url=receiver.url)
        done = stack.wait(job.id)
        assert done.status is JobStatus.SUCCEEDED, done.error
        started = event_id(job.id, "job.started")
        got = receiver.wait_for(
            lambda got: (
                [r.headers["webhook-id"] for r in got].count(started) >= 2
                and any(r.event["type"] == "job.succeeded" for r in got)
            ),
            timeout=CALLBACK_SCHEDULE[0] + 30,
        )
    finally:
        receiver.close()
    assert all(r.verified for r in got)
    for r in got:
        verify(SECRET, r.headers, r.body)
    types = [r.event["type"] for r in got]
    assert types[0] == "job.started" and got[0].answered == 500
    assert types.index("job.succeeded") > 0
    assert set(types) <= {"job.started", "job.progress", "job.succeeded"}
    again = [r for r in got if r.headers["webhook-id"] == started]
    assert [r.answered for r in again] == [500, 200] and again[0].body == again[1].body
    final = next(r.event for r in got if r.event["type"] == "job.succeeded")
    assert final["data"]["status"] == "succeeded" and final["data"]["id"] == job.id
    assert done.output is not None and final["data"]["output"]["key"] == done.output.key
    progress = [r.event["data"]["progress"] for r in got if r.event["type"] == "job.progress"]
    if progress:  # throttled, but the last segment's always goes
        assert max(p["segments_done"] for p in progress) == done.progress.segments_total
    after = wait_callbacks(
        stack,
        job.id,
        lambda cbs: any(a.event_id == started and a.outcome == "delivered" for a in cbs),
    )
    assert (after.status, after.output) == (JobStatus.SUCCEEDED, done.output)
    mine = [(a.type, a.attempt, a.status_code) for a in after.callbacks]
    assert ("job.started", 1, 500) in mine and ("job.started", 2, 200) in mine
    assert ("job.succeeded", 1, 200) in mine


def test_the_worker_registers_the_delivery_task_on_the_callbacks_queue() -> None:
    from worker.celery import app, queue_names
    from worker.settings import get_settings

    app.loader.import_default_modules()
    assert DELIVER_CALLBACK in app.tasks
    # Deliveries have a queue of their own: a slow receiver never holds up narration.
    route = app.amqp.router.route({}, DELIVER_CALLBACK)
    assert route["queue"].name == queue_names(get_settings())["callbacks"]


#: What a receiver is told, per event: its type on the wire and the job status it reports.
WIRE = {
    "job.started": "running",
    "job.progress": "running",
    "job.succeeded": "succeeded",
    "job.failed": "failed",
    "job.canceled": "canceled",
}


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_reports_its_status(kind: EventType) -> None:
    event = json.loads(build_event(make_job(), kind)[1])
    assert set(WIRE) == set(EventType) and event["type"] == kind
    assert event["data"]["status"] == WIRE[event["type"]]
