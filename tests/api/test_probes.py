"""Readiness names what is down; an outage of Redis is a 503, never a 500."""

from __future__ import annotations

import socket

from tests.api.conftest import ApiEnv, all_tenants
from tests.api.server import ApiServer, api_settings


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ready_when_everything_answers(idle: ApiEnv) -> None:
    with idle.api.client() as http:
        response = http.get("/readyz")
        health = http.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {name: {"ok": True, "detail": None} for name in ("redis", "broker", "storage")},
        "down": [],
    }
    assert health.status_code == 200


def test_readyz_is_503_naming_storage_when_storage_is_down(idle: ApiEnv) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    settings = api_settings(idle.stack, all_tenants(), s3_endpoint_url=down)
    with ApiServer(settings) as api, api.client() as http:
        response = http.get("/readyz")
        health = http.get("/healthz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["storage"]
    assert body["checks"]["redis"]["ok"] and body["checks"]["broker"]["ok"]
    assert body["checks"]["storage"]["detail"]
    assert health.status_code == 200  # alive, just not ready


def test_redis_down_is_503_not_500(idle: ApiEnv) -> None:
    settings = api_settings(
        idle.stack, all_tenants(), redis_url=f"redis://127.0.0.1:{closed_port()}/0"
    )
    with ApiServer(settings) as api, api.client("key-t1") as http:
        ready = http.get("/readyz")
        submit = http.post("/v1/jobs", json={"text": "Anyone there?"})
        listing = http.get("/v1/jobs")
    assert ready.status_code == 503
    assert ready.json()["down"] == ["redis", "broker"]
    for response in (submit, listing):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert "Retry-After" in response.headers
