"""Bad input over HTTP: each is a 4xx naming the field, and nothing is stored or enqueued."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages

GOOD = {"text": "Hello there."}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


def assert_nothing_made(env: ApiEnv) -> None:
    jobs, _ = env.stack.store.list(limit=10)
    assert jobs == [], "a rejected request left a job record"
    assert queued_messages(env.stack) == 0, "a rejected request left a Celery message"


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return dict(body["error"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n\t  "}, "text"),
        ({}, "text"),
        ({"text": 42}, "text"),
        ({**GOOD, "format": "aiff"}, "format"),
        ({**GOOD, "format": "mp3", "sample_rate": 11025}, "sample_rate"),
        ({**GOOD, "format": "opus", "sample_rate": 44100}, "sample_rate"),
        ({**GOOD, "format": "mp3", "bitrate_kbps": 100}, "bitrate_kbps"),
        ({**GOOD, "format": "mp3", "sample_rate": 16000, "bitrate_kbps": 320}, "bitrate_kbps"),
        ({**GOOD, "format": "flac", "bitrate_kbps": 128}, "bitrate_kbps"),
        ({**GOOD, "prosody": {"speed": 2.5}}, "prosody.speed"),
        ({**GOOD, "prosody": {"speed": 0.1}}, "prosody.speed"),
        ({**GOOD, "prosody": {"volume": 40}}, "prosody.volume"),
        ({**GOOD, "temperature": 1.5}, "temperature"),
        ({**GOOD, "top_p": -0.1}, "top_p"),
        ({**GOOD, "priority": 10}, "priority"),
        ({**GOOD, "latency": "instant"}, "latency"),
        ({**GOOD, "references": [{"audio": "not base64!", "text": "hi"}]}, "references.0.audio"),
        (
            {**GOOD, "references": [{"audio": base64.b64encode(b"RIFF junk").decode()}]},
            "references.0.audio",
        ),
        ({**GOOD, "callback_url": "ftp://example.com/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "not a url"}, "callback_url"),
        ({**GOOD, "callback_url": "http://127.0.0.1:8080/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://localhost/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "https://10.1.2.3/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://192.168.0.10/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://169.254.169.254/latest/meta-data"}, "callback_url"),
        ({**GOOD, "callback_url": "http://[::1]/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://[::ffff:10.0.0.1]/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://240.0.0.1/hook"}, "callback_url"),
        ({**GOOD, "callback_url": "http://0.0.0.0/hook"}, "callback_url"),
        ({**GOOD, "output_key": "../escape.mp3"}, "output_key"),
        ({**GOOD, "output_key": "a//b.mp3"}, "output_key"),
        ({**GOOD, "reference_id": "voice", "references": [{"audio": "AAAA"}]}, "references"),
        ({**GOOD, "metadata": {"big": "x" * 20_000}}, "metadata"),
        ({**GOOD, "metadata": {"deep": nested(9)}}, "metadata"),  # deeper: test_bodies.py
        ({**GOOD, "unknown_option": True}, "unknown_option"),
    ],
)
def test_bad_input_is_422_naming_the_field(idle: ApiEnv, body: dict[str, Any], field: str) -> None:
    with idle.client() as http:
        response = http.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == field, error
    assert error["code"] == "invalid_request"
    assert error["message"]
    assert_nothing_made(idle)


def test_text_over_the_limit_is_413_with_the_limit(idle: ApiEnv) -> None:
    limit = idle.stack.settings.max_text_bytes
    text = "é" * (limit // 2 + 1)  # fewer characters than the limit, more UTF-8 bytes
    assert len(text) < limit < len(text.encode())
    with idle.client() as http:
        response = http.post("/v1/jobs", json={"text": text})
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["field"] == "text"
    assert str(limit) in error["message"]
    assert_nothing_made(idle)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b'{"text": "unterminated', "invalid_json", "body"),
        (b"[1, 2, 3]", "invalid_request", "body"),
        (b'{"text": "\\ud800"}', "invalid_request", "text"),
        (b'{"text": "a", "metadata": {"x": NaN}}', "invalid_request", "metadata"),
    ],
)
def test_malformed_bodies_are_422(idle: ApiEnv, raw: bytes, code: str, field: str) -> None:
    """More bodies that cannot be read are in test_bodies.py."""
    with idle.client() as http:
        response = http.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == code
    assert error_of(response)["field"] == field
    assert_nothing_made(idle)


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic a2V5LXQxOg==", "Bearer"])
def test_missing_or_unknown_key_is_401(idle: ApiEnv, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with idle.api.client() as http:
        for method, path in [
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs"),
            ("GET", "/v1/jobs/job_x"),
            ("POST", "/v1/estimate"),
        ]:
            response = http.request(method, path, json=GOOD, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert error_of(response)["code"] == "unauthorized"
    assert_nothing_made(idle)


def test_bad_idempotency_key_is_422(idle: ApiEnv) -> None:
    with idle.client() as http:
        response = http.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 422
    assert error_of(response)["field"] == "Idempotency-Key"
    assert_nothing_made(idle)


def test_bad_query_parameters_are_422(idle: ApiEnv) -> None:
    with idle.client() as http:
        for query, field in [
            ({"status": "sleeping"}, "status"),
            ({"limit": 0}, "limit"),
            ({"limit": 1000}, "limit"),
            ({"created_after": "yesterday"}, "created_after"),
            ({"cursor": "not-a-cursor"}, "cursor"),
        ]:
            response = http.get("/v1/jobs", params=query)
            assert response.status_code == 422, (query, response.text)
            assert error_of(response)["field"] == field


def test_estimate_prices_without_enqueueing(idle: ApiEnv) -> None:
    text = "Ünïcode counts in bytes. " * 40
    with idle.client() as http:
        response = http.post("/v1/estimate", json={"text": text})
        blank = http.post("/v1/estimate", json={"text": "  "})
    assert response.status_code == 200, response.text
    got = response.json()
    size = len(text.encode())
    assert got["utf8_bytes"] == size
    assert got["characters"] == len(text)
    assert got["estimated_cost_usd"] == pytest.approx(size * 15 / 1e6)
    assert 40 < got["estimated_audio_seconds"] < 100  # ~1000 characters at ~15 a second
    assert got["within_limit"] is True
    assert blank.status_code == 422
    assert error_of(blank)["field"] == "text"
    assert_nothing_made(idle)
