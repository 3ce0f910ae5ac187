"""Fixtures for worker tests: a real S3-compatible server (moto), a proxy to break it,
a fast local_tts and the factory of whole stacks (``tests/stack.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3 import ACCESS_KEY, SECRET_KEY, MotoS3, TcpProxy
from tests.servers import LocalTTS
from tests.stack import Stacks
from worker.retry import RetryPolicy
from worker.storage.client import Storage

#: Quick retries, so outage tests take seconds, not minutes.
FAST_RETRY = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=0.8)


def make_storage(endpoint_url: str, bucket: str | None = None, **overrides: object) -> Storage:
    """A Storage on ``endpoint_url`` with a fresh bucket name (not yet created)."""
    params: dict[str, object] = {
        "bucket": bucket or f"test-{uuid.uuid4().hex[:16]}",
        "endpoint_url": endpoint_url,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "path_style": True,
        "part_bytes": 5 << 20,
        "retry": FAST_RETRY,
        "connect_timeout": 2.0,
        "read_timeout": 10.0,
    }
    params.update(overrides)
    return Storage(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """moto's S3 on 127.0.0.1, one per test session (tests use their own buckets)."""
    with MotoS3() as server:
        yield server


@pytest.fixture
def storage(s3_server: MotoS3) -> Iterator[Storage]:
    """A Storage on moto with a bucket of its own, created."""
    store = make_storage(s3_server.endpoint_url)
    store.ensure_bucket()
    yield store
    store.close()


@pytest.fixture
def s3_proxy(s3_server: MotoS3) -> Iterator[TcpProxy]:
    """A TCP proxy in front of moto: ``stop()`` is an outage, ``start()`` the recovery."""
    with TcpProxy("127.0.0.1", s3_server.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def tone_tts() -> Iterator[LocalTTS]:
    """local_tts with the tone engine, fast (10 ms to first audio), one per test module."""
    with LocalTTS(engine="tone", rtf=0.01, ttfb_ms=10) as server:
        yield server


@pytest.fixture
def make_stack(redis_url: str, s3_server: MotoS3, tmp_path: Path) -> Iterator[Stacks]:
    """This test's stacks: ``make_stack(tts, workers=1, SHOAL_…="…")``, all torn down after."""
    with Stacks(redis_url, s3_server.endpoint_url, tmp_path / "stacks") as make:
        yield make
