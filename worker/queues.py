"""What producers and consumers of shoal's messages must agree on: task names, queues, wire.

Pure and cheap to import: no Celery app, no settings read, no connection.  The
worker's app (:mod:`worker.celery`) and the API's producer (:mod:`api.dispatch`)
both build their configuration from :func:`shared_config`, so a message one
sends is one the other reads.  Tasks are sent by name, so a producer needs none
of the task modules.

Three queues, by role (names carry the key prefix, so deployments sharing a
Redis never meet)::

    <prefix>.jobs        narration jobs (``shoal.synthesize`` of a job without a batch)
    <prefix>.bulk        book work: batch items' jobs and ``shoal.assemble_batch``
    <prefix>.callbacks   ``shoal.deliver_callback``, so receivers never hold up synthesis

The task names and their keyword arguments are a contract with messages already
queued: a worker of a newer version must run what an older API queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from worker.jobs.model import Job
    from worker.settings import Settings

#: One attempt of a job.  kwargs: ``job_id``, and ``token`` on a retry or re-queue.
SYNTHESIZE = "shoal.synthesize"
#: One build of a batch's combined outputs.  kwargs: ``batch_id``, ``generation``, ``attempt``.
ASSEMBLE_BATCH = "shoal.assemble_batch"
#: One delivery attempt of a callback event.  kwargs: the fields of
#: :class:`worker.callbacks.emit.Delivery`, and ``attempt``, ``due_at`` on a retry.
DELIVER_CALLBACK = "shoal.deliver_callback"


class Sender(Protocol):
    """Anything that queues a task by name: a Celery app, or the API's dispatcher."""

    def send_task(
        self, name: str, args: Any = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Any:
        """Queue task ``name`` with ``kwargs``; ``options`` as Celery's (``queue``, …)."""
        ...


def queue_names(settings: Settings) -> dict[str, str]:
    """Queue names by role: short narration jobs, bulk book work, callbacks."""
    p = settings.key_prefix
    return {"jobs": f"{p}.jobs", "bulk": f"{p}.bulk", "callbacks": f"{p}.callbacks"}


def shared_config(settings: Settings) -> dict[str, Any]:
    """Celery settings both ends need: broker, Redis key prefix, serializer, routes."""
    queues = queue_names(settings)
    return {
        "broker_url": settings.redis_url,
        # Every key kombu writes carries shoal's prefix; a message is redelivered to
        # another worker after the visibility timeout, so it must outlast the longest task.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "global_keyprefix": f"{settings.key_prefix}:celery:",
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,  # the job store is the record; results are not needed
        "task_default_queue": queues["jobs"],
        "task_routes": {DELIVER_CALLBACK: {"queue": queues["callbacks"]}},
        "task_create_missing_queues": True,
    }


def send_job(sender: Sender, job: Job, settings: Settings, token: str | None = None) -> None:
    """Queue one attempt of ``job``: batch work on the bulk queue, so it never starves
    narration jobs.  ``token``: the job's dispatch token (a retry or re-queue)."""
    queues = queue_names(settings)
    sender.send_task(
        SYNTHESIZE,
        kwargs={"job_id": job.id} if token is None else {"job_id": job.id, "token": token},
        queue=queues["bulk"] if job.batch_id else queues["jobs"],
        # No result is stored (task_ignore_result): a worker's app, which has a
        # result backend, would otherwise subscribe to the task's result channel
        # and unsubscribe again, two Redis commands for nothing.
        ignore_result=True,
    )


def send_assembly(sender: Sender, batch_id: str, generation: int, settings: Settings) -> None:
    """Queue the build of one generation of a batch's combined outputs, on the bulk queue."""
    sender.send_task(
        ASSEMBLE_BATCH,
        kwargs={"batch_id": batch_id, "generation": generation},
        queue=queue_names(settings)["bulk"],
        ignore_result=True,  # as send_job's
    )
