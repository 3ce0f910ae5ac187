"""Job callbacks: signed webhook events, delivered by their own Celery task.

(Being built: this module's public signature is fixed so the API and the
runner can call it now.)
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.jobs import Job
from worker.settings import Settings


def emit_job_event(
    job: Job,
    event_type: str,
    *,
    settings: Settings,
    celery_app: Celery | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Queue delivery of ``event_type`` (e.g. ``job.succeeded``) to the job's
    ``callback_url``, if it has one.  Never raises for delivery problems."""
    return None
