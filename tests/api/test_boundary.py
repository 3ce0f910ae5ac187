"""The boundary between the API and the worker: the API loads no worker runtime.

The API sends tasks by name (``api.dispatch``) and shares only models, settings,
keys and stores with the worker.  Whether a module is loaded can only be seen
in a fresh interpreter — this test process has imported everything long ago —
so those checks run a small script in a subprocess, against the real Redis.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from api.dispatch import Dispatcher
from worker.callbacks.emit import emit_job_event
from worker.celery import create_app
from worker.jobs.model import Job, JobRequest, estimate_billing, new_job_id
from worker.keys import Keys
from worker.queues import ASSEMBLE_BATCH, DELIVER_CALLBACK, SYNTHESIZE, queue_names
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

#: Modules of the worker's runtime: the Celery app, its tasks, and what only they run.
RUNTIME = [
    "worker.celery",
    "worker.jobs.runner",
    "worker.jobs.assembly",
    "worker.jobs.tasks",
    "worker.jobs.synth",
    "worker.batches.build",
    "worker.batches.tasks",
    "worker.callbacks.delivery",
]

#: Builds the API app in a fresh interpreter, then queues one job through its
#: dispatcher; prints what was loaded and how many Celery apps existed at each step.
PROBE = """
import json, sys
import celery._state
from api.app import create_app
from worker.jobs.model import Job, JobRequest, estimate_billing, new_job_id
from worker.settings import Settings

runtime = json.loads(sys.argv[3])
app = create_app(Settings(redis_url=sys.argv[1], key_prefix=sys.argv[2]))
report = {"loaded": [m for m in runtime if m in sys.modules],
          "apps": len(celery._state._apps)}
job = Job(id=new_job_id(), tenant="t1", request=JobRequest(text="Hello."),
          billing=estimate_billing("Hello.", 15.0))
app.state.ctx.dispatch.enqueue(job)
report |= {"job": job.id, "apps_after_send": len(celery._state._apps),
           "loaded_after_send": [m for m in runtime if m in sys.modules]}
app.state.ctx.close()
print(json.dumps(report))
"""


def run_probe(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def waiting(client: redis.Redis, keys: Keys, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting on ``queue`` (the list kombu fills), oldest first."""
    return [json.loads(m) for m in reversed(client.lrange(keys.celery_queue(queue), 0, -1))]


def make_job(**request: Any) -> Job:
    return Job(
        id=new_job_id(),
        tenant="t1",
        request=JobRequest(text="Hello.", **request),
        billing=estimate_billing("Hello.", 15.0),
    )


def test_building_the_api_loads_no_worker_runtime_and_no_celery_app(
    redis_url: str, keys: Keys, redis_client: redis.Redis
) -> None:
    report = run_probe(PROBE, redis_url, keys.prefix, json.dumps(RUNTIME))
    assert report["loaded"] == [] and report["apps"] == 0, report
    # Sending builds the one producer client, still without loading a task module.
    assert report["apps_after_send"] == 1 and report["loaded_after_send"] == [], report
    settings = Settings(key_prefix=keys.prefix)
    (message,) = waiting(redis_client, keys, queue_names(settings)["jobs"])
    assert message["headers"]["task"] == SYNTHESIZE
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert kwargs == {"job_id": report["job"]}


@pytest.mark.integration  # a fresh interpreter, in a subprocess
def test_the_worker_app_reads_its_settings_when_first_needed_not_at_import() -> None:
    script = """
import json, os
import worker.celery
from worker.settings import get_settings
read_at_import = get_settings.cache_info().currsize
os.environ["SHOAL_KEY_PREFIX"] = "shaped-late"
os.environ["SHOAL_WORKER_CONCURRENCY"] = "3"
conf = worker.celery.app.conf
print(json.dumps({"read_at_import": read_at_import, "queue": conf.task_default_queue,
                  "concurrency": conf.worker_concurrency,
                  "prefix": conf.broker_transport_options["global_keyprefix"]}))
"""
    report = run_probe(script)
    assert report == {
        "read_at_import": 0,
        "queue": "shaped-late.jobs",
        "concurrency": 3,
        "prefix": "shaped-late:celery:",
    }


def test_the_api_and_the_worker_send_the_same_message(
    redis_url: str, keys: Keys, redis_client: redis.Redis
) -> None:
    """Both ends build their Celery configuration from ``worker.queues``: a job queued
    by the API's dispatcher and one queued by a worker app are the same on the wire."""
    settings = Settings(redis_url=redis_url, key_prefix=keys.prefix)
    dispatch, worker = Dispatcher(settings), create_app(settings)
    job = make_job()
    try:
        dispatch.enqueue(job)
        worker.send_task(SYNTHESIZE, kwargs={"job_id": job.id}, queue=queue_names(settings)["jobs"])
    finally:
        dispatch.close()
        worker.close()
    sent = waiting(redis_client, keys, queue_names(settings)["jobs"])
    assert len(sent) == 2
    for field in ("content-type", "content-encoding"):
        assert sent[0][field] == sent[1][field]
    assert sent[0]["headers"]["task"] == sent[1]["headers"]["task"] == SYNTHESIZE
    bodies = [json.loads(base64.b64decode(m["body"])) for m in sent]
    assert bodies[0][:2] == bodies[1][:2] == [[], {"job_id": job.id}]
    routes = [m["properties"]["delivery_info"]["routing_key"] for m in sent]
    assert routes == [queue_names(settings)["jobs"]] * 2


def test_the_worker_registers_every_task_under_the_shared_name() -> None:
    """The names producers send by are the names the worker runs, and no others."""
    from worker.celery import app

    app.loader.import_default_modules()
    assert {name for name in app.tasks if name.startswith("shoal.")} == {
        SYNTHESIZE,
        ASSEMBLE_BATCH,
        DELIVER_CALLBACK,
    }


@pytest.mark.integration  # tries to reach a broker
def test_the_api_emits_without_raising_when_the_broker_is_down() -> None:
    """``job.canceled`` is the API's: a broker outage must not fail the cancel."""
    down = Settings(redis_url="redis://127.0.0.1:9/0")  # the discard port: nothing answers
    dispatch = Dispatcher(down)
    started = time.monotonic()
    try:
        emit_job_event(
            make_job(callback_url="https://example.com/hook"),
            "job.canceled",
            settings=down,
            sender=dispatch,
        )
    finally:
        dispatch.close()
    assert time.monotonic() - started < 5
