"""A ``GET`` never changes a batch; a worker's reaper acts on an end nobody acted on.

Over HTTP on a real stack (Redis, moto S3, local_tts, a Celery worker started
mid-test): a batch whose items ended while nobody told the batch — their
workers recorded the end and died, their messages are gone — is shown by the
API exactly as stored, and finished by the worker without anyone asking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.server import ApiServer, api_settings, queued_messages, tenant
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.batches.model import AssemblyState, Batch
from worker.batches.store import BatchStore
from worker.jobs.model import JobStatus
from worker.queues import queue_names

KEY = "key-reaper"


@pytest.fixture
def env(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path
) -> Iterator[tuple[Stack, ApiServer]]:
    with Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make:
        stack = make(api_tts)
        with ApiServer(api_settings(stack, [tenant("t1", KEY)])) as api:
            yield stack, api


def written(stack: Stack) -> dict[bytes, bytes | None]:
    """Every key of the stack but the request-rate counters, with its string value."""
    keys = [k for k in stack.redis.scan_iter(match=f"{stack.keys.prefix}:*") if b":rate:" not in k]
    return {k: stack.redis.get(k) if stack.redis.type(k) == b"string" else None for k in keys}


def test_a_get_changes_nothing_and_the_reaper_finishes_a_batch_left_waiting(
    env: tuple[Stack, ApiServer],
) -> None:
    stack, api = env
    items = [{"title": f"Part {n}", "text": f"Part {n} of the tale. It is short."} for n in (1, 2)]
    with api.client(KEY) as http:
        created = http.post("/v1/batches", json={"title": "Tides", "items": items})
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    for item in created.json()["items"]:
        assert stack.store.transition(item["job_id"], JobStatus.RUNNING)
        assert stack.store.transition(item["job_id"], JobStatus.FAILED)
    for queue in queue_names(stack.settings).values():
        stack.redis.delete(stack.keys.celery_queue(queue))

    before = written(stack)
    with api.client(KEY) as http:
        for _ in range(3):
            shown = http.get(f"/v1/batches/{batch_id}")
            assert shown.status_code == 200, shown.text
    assert written(stack) == before  # the record, claims, worklist: all as they were
    assert queued_messages(stack) == 0  # no build, no callback queued

    stack.start_worker()
    batches = BatchStore(stack.redis, stack.keys, stack.settings.job_ttl_seconds)
    deadline = time.monotonic() + 30
    done: Batch | None = None
    while time.monotonic() < deadline:
        done = batches.get(batch_id)
        if done is not None and done.finished_at is not None:
            break
        time.sleep(0.2)
    assert done is not None and done.finished_at is not None, stack.logs()
    assert done.assembly.state is AssemblyState.SKIPPED
    assert "acted on it now" in stack.logs()  # the reaper did it, not a job's end
    with api.client(KEY) as http:
        final = http.get(f"/v1/batches/{batch_id}").json()
    assert final["status"] == "failed" and final["finished_at"] is not None
