"""The worker's Celery app: ``celery -A worker worker`` finds it here (``worker.celery:app``).

Importing this module reads no settings: the app's configuration is a promise
(``Celery.add_defaults`` with a callable) that Celery evaluates the first time
the configuration is needed — when the worker starts, or a task is sent — so a
test or the launcher can shape :func:`~worker.settings.get_settings` first.

Settings for long streaming tasks: late acknowledgement, a task whose worker is
lost goes back to the queue, prefetch of one, and the threads pool so one
process runs many provider sessions at once (``SHOAL_WORKER_CONCURRENCY``).
What producers must agree on (broker, key prefix, queues, routes) is
:func:`worker.queues.shared_config`; the API sends tasks by name through
:mod:`api.dispatch` and never imports this module.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from worker.queues import queue_names, shared_config
from worker.settings import Settings, get_settings

__all__ = ["TASK_MODULES", "app", "create_app", "queue_names", "worker_config"]

#: The modules that register shoal's tasks; a worker imports them at start.
TASK_MODULES = ["worker.jobs.tasks", "worker.callbacks.delivery", "worker.batches.tasks"]


def worker_config(settings: Settings) -> dict[str, Any]:
    """The whole configuration of a worker: the shared part, and how it consumes."""
    return shared_config(settings) | {
        "result_backend": settings.redis_url,
        "result_backend_transport_options": {"global_keyprefix": f"{settings.key_prefix}:celery:"},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "broker_connection_retry_on_startup": True,
        # A plain `celery -A worker worker` consumes all three; `-Q` narrows it
        # (e.g. a worker of its own for callbacks).  kombu polls them in turn,
        # so narration jobs are picked up between the chapters of a big book.
        "task_queues": [Queue(name) for name in queue_names(settings).values()],
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        # A worker that is told to stop finishes its segment first.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A worker app configured from ``settings`` (default: :func:`get_settings`), read
    when the configuration is first needed, not now.  Tests build their own."""
    app = Celery("shoal", include=TASK_MODULES)
    app.add_defaults(lambda: worker_config(settings or get_settings()))
    return app


app = create_app()
