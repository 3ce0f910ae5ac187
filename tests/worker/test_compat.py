"""Work queued before an upgrade still runs after it.

The records and messages below are literal: what the code before the move to
rooms by resource (commit 45b484b) wrote to Redis, copied from its output, with
its key names and its Celery message (task ``shoal.synthesize`` sent by name on
``<prefix>.jobs`` or ``<prefix>.bulk``).  Nothing here calls today's encoders or
enqueue helpers, so a change that would strand queued work fails these tests.
Then a Celery worker of today's code starts and has to finish the work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from tests.api.server import ApiServer, api_settings, tenant
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.audio import probe
from worker.jobs.model import JobStatus

API_KEY = "key-compat"

#: A narration job as ``JobStore.create`` stored it: one hash, scalars as strings, the
#: rest as compact JSON, ``None`` fields left out.
OLD_JOB: dict[str, str] = {
    "id": "job_019ab1c2d3e4f5a6b7c8d9e0f1a2",
    "tenant": "t1",
    "status": "queued",
    "attempts": "0",
    "progress": (
        '{"segments_done":0,"segments_total":0,"chars_done":0,"chars_total":0,"audio_seconds":0.0}'
    ),
    "billing": '{"utf8_bytes":145,"estimated_cost_usd":0.002175}',
    "metadata": '{"k":1}',
    "created_at": "1764000000.125",
    "updated_at": "1764000000.125",
    "callbacks": "[]",
    "request": (
        '{"text":"The quick brown fox jumps over the lazy dog. It was not amused.\\n\\n'
        "A second paragraph follows, so that the job has more than one segment to "
        'stitch.","reference_id":null,"model":null,"format":"mp3","sample_rate":44100,'
        '"bitrate_kbps":null,"prosody":null,"latency":"normal","normalize":true,'
        '"temperature":0.7,"top_p":0.7,"repetition_penalty":1.2,"paragraph_silence_ms":null,'
        '"output_key":null,"callback_url":null,"priority":0,"references":[]}'
    ),
}

BATCH_ID = "bat_019ab1c2d3e4f5a6b7c8d9e0f1b3"


def _old_item(job_id: str, index: int, text: str, billing: str) -> dict[str, str]:
    """A batch item's job as the old API's ``new_item_job`` made it and the store wrote it."""
    key = f"t1/{BATCH_ID}/chapters/{index + 1:03d}-{job_id}.mp3"
    return {
        "id": job_id,
        "tenant": "t1",
        "status": "queued",
        "attempts": "0",
        "progress": OLD_JOB["progress"],
        "billing": billing,
        "metadata": f'{{"batch_item":{index},"title":"Chapter {index + 1}"}}',
        "batch_id": BATCH_ID,
        "created_at": "1764000000.5",
        "updated_at": "1764000000.5",
        "callbacks": "[]",
        "request": (
            f'{{"text":"{text}","reference_id":null,"model":null,"format":"mp3",'
            '"sample_rate":null,"bitrate_kbps":null,"prosody":null,"latency":"normal",'
            '"normalize":true,"temperature":0.7,"top_p":0.7,"repetition_penalty":1.2,'
            f'"paragraph_silence_ms":null,"output_key":"{key}","callback_url":null,'
            '"priority":5,"references":[]}'
        ),
    }


OLD_ITEMS = [
    _old_item(
        "job_019ab1c2d3e4f5a6b7c8d9e0f1c4",
        0,
        "Chapter one. The tide came in over the flats.",
        '{"utf8_bytes":45,"estimated_cost_usd":0.000675}',
    ),
    _old_item(
        "job_019ab1c2d3e4f5a6b7c8d9e0f1d5",
        1,
        "Chapter two. The boats came home at dusk.",
        '{"utf8_bytes":41,"estimated_cost_usd":0.000615}',
    ),
]

#: The batch as ``BatchStore.create`` stored it: one JSON string (``Batch.model_dump_json``).
OLD_BATCH = (
    '{"id":"bat_019ab1c2d3e4f5a6b7c8d9e0f1b3","tenant":"t1","items":['
    '{"job_id":"job_019ab1c2d3e4f5a6b7c8d9e0f1c4","title":"Chapter 1","chars":45,'
    '"utf8_bytes":45,"source":null,"replaced":[]},'
    '{"job_id":"job_019ab1c2d3e4f5a6b7c8d9e0f1d5","title":"Chapter 2","chars":41,'
    '"utf8_bytes":41,"source":null,"replaced":[]}],'
    '"produce":{"chapter_format":"mp3","chapter_sample_rate":null,"chapter_bitrate_kbps":null,'
    '"combined":"mp3","sample_rate":44100,"bitrate_kbps":null,"chapter_silence_ms":1000,'
    '"head_silence_ms":500,"tail_silence_ms":1000,"loudness":null},'
    '"book":{"title":"Two Tides","author":"A. Writer","language":"en","cover_key":null,'
    '"cover_type":null,"kind":null,"filename":null,"skipped":[]},'
    '"defaults":{},"callback_url":null,"metadata":{"shelf":3},'
    '"billing":{"utf8_bytes":86,"estimated_cost_usd":0.00129},'
    '"assembly":{"state":"waiting","generation":1,"built_generation":null,"combined":null,'
    '"manifest":null,"loudness":null,"error":null,"attempts":0,"started_at":null,'
    '"finished_at":null},'
    '"created_at":1764000000.5,"updated_at":1764000000.5,"canceled_at":null,"finished_at":null}'
)


def store_old_job(r: redis.Redis, prefix: str, fields: dict[str, str], item: int | None) -> None:
    """What the old store's ``CREATE`` script did: the hash, then its indexes."""
    job_id = fields["id"]
    created_ms = float(fields["created_at"]) * 1000
    r.hset(f"{prefix}:job:{job_id}", mapping=fields)  # type: ignore[arg-type]
    for index in ("idx:all", f"idx:tenant:{fields['tenant']}", "idx:status:queued"):
        r.zadd(f"{prefix}:{index}", {job_id: created_ms})
    if item is not None:
        r.zadd(f"{prefix}:idx:batch:{fields['batch_id']}", {job_id: float(item)})


def send_old_message(redis_url: str, prefix: str, queue: str, job_id: str) -> None:
    """The old ``enqueue``: ``shoal.synthesize`` by name, kwargs ``{"job_id": …}``.

    A plain Celery client with the old worker's transport options, so the message
    lands in the list the old code used (``<prefix>:celery:<prefix>.<queue>``).
    """
    client = Celery("shoal", broker=redis_url, set_as_current=False)
    client.conf.update(
        broker_transport_options={"global_keyprefix": f"{prefix}:celery:"},
        task_serializer="json",
    )
    try:
        client.send_task("shoal.synthesize", kwargs={"job_id": job_id}, queue=f"{prefix}.{queue}")
    finally:
        client.close()


def queued_old_style(stack: Stack, queue: str) -> int:
    """Messages waiting in the list the old code sent ``queue``'s messages to."""
    prefix = stack.keys.prefix
    return int(stack.redis.llen(f"{prefix}:celery:{prefix}.{queue}"))


def test_a_job_queued_by_the_old_code_runs(
    make_stack: Stacks, tone_tts: LocalTTS, tmp_path: Path
) -> None:
    stack = make_stack(tone_tts)
    prefix, redis_url = stack.keys.prefix, stack.settings.redis_url
    store_old_job(stack.redis, prefix, OLD_JOB, None)
    send_old_message(redis_url, prefix, "jobs", OLD_JOB["id"])
    assert queued_old_style(stack, "jobs") == 1
    before = stack.store.get(OLD_JOB["id"])
    assert before is not None and before.status is JobStatus.QUEUED
    assert before.request.text == json.loads(OLD_JOB["request"])["text"]

    stack.start_worker()  # the upgrade: today's worker on yesterday's queue
    done = stack.wait(OLD_JOB["id"])

    assert done.status is JobStatus.SUCCEEDED, (done.error, stack.logs())
    assert done.attempts == 1 and done.metadata == {"k": 1}
    assert done.billing.utf8_bytes == 145
    assert done.progress.segments_done == done.progress.segments_total >= 3
    assert done.output is not None and done.output.format == "mp3"
    info = stack.fetch_output(done, tmp_path / "old.mp3")
    assert info.sample_rate == 44100 and info.channels == 1
    assert info.duration_s == pytest.approx(done.output.duration_s, abs=0.01)
    assert info.duration_s > 1.0
    assert queued_old_style(stack, "jobs") == 0


def test_a_batch_queued_by_the_old_code_runs_and_shows(
    make_stack: Stacks, tone_tts: LocalTTS, tmp_path: Path
) -> None:
    stack = make_stack(tone_tts)
    prefix, redis_url = stack.keys.prefix, stack.settings.redis_url
    stack.redis.set(f"{prefix}:batch:{BATCH_ID}", OLD_BATCH)
    stack.redis.zadd(f"{prefix}:idx:batches:t1", {BATCH_ID: 1764000000.5 * 1000})
    for index, fields in enumerate(OLD_ITEMS):
        store_old_job(stack.redis, prefix, fields, index)
        send_old_message(redis_url, prefix, "bulk", fields["id"])
    assert queued_old_style(stack, "bulk") == 2

    api = ApiServer(api_settings(stack, [tenant("t1", API_KEY)]))
    with api, api.client(API_KEY) as http:
        before = http.get(f"/v1/batches/{BATCH_ID}")
        assert before.status_code == 200, before.text
        assert before.json()["status"] == "queued"
        stack.start_worker()  # the upgrade
        batch = _poll_batch(http, BATCH_ID)

    assert batch["status"] == "succeeded", json.dumps(batch, indent=1) + stack.logs()
    assert batch["metadata"] == {"shelf": 3}
    assert [item["title"] for item in batch["items"]] == ["Chapter 1", "Chapter 2"]
    assert [item["job_id"] for item in batch["items"]] == [f["id"] for f in OLD_ITEMS]
    assert all(item["status"] == "succeeded" for item in batch["items"])
    for fields in OLD_ITEMS:
        job = stack.store.get(fields["id"])
        assert job is not None and job.output is not None
        assert job.output.key == json.loads(fields["request"])["output_key"]
    assert batch["book"]["title"] == "Two Tides" and batch["book"]["author"] == "A. Writer"
    assert batch["outputs"]["manifest"] is not None
    chapter = _download(batch["items"][0]["output"], tmp_path / "chapter.mp3")
    combined = _download(batch["outputs"]["combined"], tmp_path / "book.mp3")
    assert combined.duration_s > 2 * chapter.duration_s  # both chapters, silence between


def _poll_batch(http: httpx.Client, batch_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = http.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return batch
        time.sleep(0.2)


def _download(output: dict[str, Any], path: Path) -> Any:
    """Fetch an output through its presigned URL and decode it whole."""
    response = httpx.get(output["download_url"], timeout=30)
    assert response.status_code == 200
    path.write_bytes(response.content)
    return probe(path)
