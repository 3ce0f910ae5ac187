"""Fixtures of the API tests: real stacks (Redis, moto S3, local_tts, Celery) behind
the API served over HTTP.

Each test module gets stacks of its own (own key prefix, queues and bucket), so
modules never see each other's jobs even when they share Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.server import ApiServer, api_settings, tenant
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.settings import TenantConfig

#: Tenants of every test API: id → API key; limits are per test module where needed.
KEYS = {
    "t1": "key-t1",
    "t2": "key-t2",
    "idem": "key-idem",
    "cancel": "key-cancel",
    "list": "key-list",
    "voice": "key-voice",
}
#: The fuzzer's tenant: limits high enough that its requests reach the handlers.
FUZZ = ("fuzz", "key-fuzz")
#: A tenant allowed 5 requests a minute, and one allowed 2 jobs in flight.
RATE_LIMITED = ("rl", "key-rl")
IN_FLIGHT_LIMITED = ("fl", "key-fl")


@dataclass
class ApiEnv:
    """A stack and the API in front of it."""

    stack: Stack
    api: ApiServer

    def client(self, tenant_id: str = "t1") -> httpx.Client:
        """A client authenticated as ``tenant_id``."""
        keys = dict([*KEYS.items(), RATE_LIMITED, IN_FLIGHT_LIMITED, FUZZ])
        return self.api.client(keys[tenant_id])


def all_tenants() -> list[TenantConfig]:
    """Every tenant of the test APIs."""
    return [
        *(tenant(t, k) for t, k in KEYS.items()),
        tenant(*FUZZ, requests_per_minute=1_000_000, max_jobs_in_flight=100_000),
        tenant(RATE_LIMITED[0], RATE_LIMITED[1], requests_per_minute=5),
        tenant(IN_FLIGHT_LIMITED[0], IN_FLIGHT_LIMITED[1], max_jobs_in_flight=2),
    ]


@pytest.fixture(scope="session")
def api_s3() -> Iterator[MotoS3]:
    """moto's S3 over HTTP for the API tests (each stack has a bucket of its own)."""
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="session")
def api_tts() -> Iterator[LocalTTS]:
    """local_tts with the tone engine: fast, but each session takes ~0.15 s to first audio
    so a job of several segments runs long enough to be watched."""
    with LocalTTS(engine="tone", rtf=0.05, ttfb_ms=150) as server:
        yield server


def _env(
    redis_url: str, tts: LocalTTS, s3: MotoS3, workdir: Path, workers: int = 0
) -> Iterator[ApiEnv]:
    with Stacks(redis_url, s3.endpoint_url, workdir) as make:
        stack = make(tts, workers=workers, SHOAL_MAX_TEXT_BYTES="4000")
        with ApiServer(api_settings(stack, all_tenants())) as api:
            yield ApiEnv(stack, api)


@pytest.fixture(scope="module")
def idle(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    """The API on a stack with no worker: jobs stay queued, queues can be inspected."""
    yield from _env(redis_url, api_tts, api_s3, tmp_path_factory.mktemp("idle"))


@pytest.fixture(scope="module")
def live(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    """The API on a stack with one Celery worker: jobs run to the end."""
    yield from _env(redis_url, api_tts, api_s3, tmp_path_factory.mktemp("live"), workers=1)
