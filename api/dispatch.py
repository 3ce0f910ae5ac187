"""How the API hands work to the workers: tasks sent by name, and nothing of the worker loaded.

:class:`Dispatcher` is a producer only.  Its Celery client is configured from
:func:`worker.queues.shared_config` — the broker, key prefix, serializer and
routes the workers read with — includes no task module, and is built on first
use, so importing or building the API constructs no Celery app and loads no
runner.  It is a :class:`worker.queues.Sender`, so the API passes it wherever
the worker passes its own app (:func:`worker.callbacks.emit.emit_job_event`,
:func:`worker.batches.lifecycle.maybe_finalize`)::

    ctx.dispatch.enqueue(job)                      # shoal.synthesize, jobs or bulk queue
    emit_job_event(job, "job.canceled", settings=s, sender=ctx.dispatch)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from worker.jobs.model import Job
from worker.queues import send_job, shared_config
from worker.settings import Settings

log = logging.getLogger(__name__)


class Dispatcher:
    """The API's producer of task messages; safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Celery | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Celery:
        """The Celery client, built on first use (no connection until a send)."""
        with self._lock:
            if self._client is None:
                # Not the current app: a worker's app in the same process (tests) stays its own.
                client = Celery("shoal-api", set_as_current=False)
                client.conf.update(shared_config(self.settings))
                self._client = client
            return self._client

    def send_task(
        self, name: str, args: Any = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Any:
        """Queue task ``name``; ``options`` as Celery's ``send_task`` (``queue``, …)."""
        return self.client.send_task(name, args, kwargs, **options)

    def enqueue(self, job: Job) -> None:
        """Queue one attempt of ``job`` (see :func:`worker.queues.send_job`)."""
        send_job(self, job, self.settings)

    def check_broker(self, timeout: float) -> None:
        """Connect to the broker once; raises if it does not answer within ``timeout``."""
        with self.client.connection_for_write() as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=timeout
            )

    def close(self) -> None:
        """Close the client's connections, if it was ever built."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
