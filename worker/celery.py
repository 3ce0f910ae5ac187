"""The Celery app: ``celery -A worker worker`` finds it here (``worker.celery``).

Settings for long streaming tasks: late acknowledgement, a task whose worker is
lost goes back to the queue, prefetch of one, a visibility timeout longer than
the longest segment, and the threads pool so one process runs many provider
sessions at once (``SHOAL_WORKER_CONCURRENCY``).  Every Redis key Celery and
kombu write carries shoal's key prefix, so several shoal deployments (or test
runs) can share one Redis.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from worker.settings import Settings, get_settings


def queue_names(settings: Settings) -> dict[str, str]:
    """Queue names by role: short narration jobs, bulk book work, callbacks."""
    p = settings.key_prefix
    return {"jobs": f"{p}.jobs", "bulk": f"{p}.bulk", "callbacks": f"{p}.callbacks"}


def create_app(settings: Settings | None = None) -> Celery:
    """Build the Celery app from settings (tests build their own)."""
    s = settings or get_settings()
    queues = queue_names(s)
    app = Celery(
        "shoal",
        broker=s.redis_url,
        backend=s.redis_url,
        include=["worker.jobs.tasks", "worker.callbacks.delivery", "worker.batches.tasks"],
    )
    transport = {
        "visibility_timeout": s.visibility_timeout,
        "global_keyprefix": f"{s.key_prefix}:celery:",
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        worker_concurrency=s.worker_concurrency,
        broker_transport_options=transport,
        result_backend_transport_options={"global_keyprefix": f"{s.key_prefix}:celery:"},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # the job store is the record; results are not needed
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queues["jobs"],
        # A plain `celery -A worker worker` consumes all three; `-Q` narrows it
        # (e.g. a worker of its own for callbacks).  kombu polls them in turn,
        # so narration jobs are picked up between the chapters of a big book.
        task_queues=[Queue(name) for name in queues.values()],
        task_routes={"shoal.deliver_callback": {"queue": queues["callbacks"]}},
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # A worker that is told to stop finishes its segment first (DESIGN §6).
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


app = create_app()
