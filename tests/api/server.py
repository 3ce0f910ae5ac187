"""The API over real HTTP for tests: uvicorn in a thread of this process on ``127.0.0.1:0``.

Built on a :class:`tests.stack.Stack` (Redis, moto S3, local_tts, workers)::

    api = ApiServer(api_settings(stack, [tenant("t1", "key-1")])).start()
    with api.client("key-1") as http:
        http.post("/v1/jobs", json={"text": "Hello."})
    api.stop()

The app is the real one (:func:`api.app.create_app`), served by uvicorn as
``uvicorn --factory api.app:create_app`` would, only with settings of the test.
"""

from __future__ import annotations

import hashlib
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from tests.stack import Stack
from worker.celery import queue_names
from worker.settings import Settings, TenantConfig


def tenant(tenant_id: str, key: str, **limits: Any) -> TenantConfig:
    """A tenant whose API key is ``key`` (stored, as configured, by its SHA-256)."""
    return TenantConfig(
        id=tenant_id, key_sha256=[hashlib.sha256(key.encode()).hexdigest()], **limits
    )


def api_settings(stack: Stack, tenants: list[TenantConfig], **overrides: Any) -> Settings:
    """The stack's settings with the API's tenants (and any other ``overrides``)."""
    return stack.settings.model_copy(update={"tenants": tenants, **overrides})


def queued_messages(stack: Stack) -> int:
    """Celery messages waiting in all of the stack's queues (every priority)."""
    total = 0
    for queue in queue_names(stack.settings).values():
        for pri in (0, 3, 6, 9):
            total += int(stack.redis.llen(stack.keys.celery_queue(queue, pri)))
    return total


class ApiServer:
    """The API app served by uvicorn in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)
        self.port = 0

    def start(self, timeout: float = 15.0) -> ApiServer:
        """Serve, and return once the port is known."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client of the API, authenticated with ``key`` if given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)

    def stop(self) -> None:
        """Stop serving (open event streams are cut after a short grace period)."""
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
