"""``/v1/batches`` over HTTP on a real stack with no worker: what is stored and queued.

Submission, validation naming the field, limits, idempotency, tenant
isolation, cancel and retry rules.  Nothing here needs a worker: jobs stay
queued and the broker's lists can be inspected.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages
from worker.batches.store import BatchStore
from worker.celery import queue_names
from worker.jobs.model import JobStatus


def chapter(n: int, chars: int = 120) -> dict[str, Any]:
    text = f"Chapter {n} begins. " + "The river ran on past the mill. " * (chars // 32 + 1)
    return {"title": f"Chapter {n}", "text": text[:chars]}


def body(n: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "title": "River Tales",
        "author": "A. Writer",
        "items": [chapter(i) for i in range(1, n + 1)],
        **extra,
    }


def depth(env: ApiEnv, role: str) -> int:
    name = queue_names(env.stack.settings)[role]
    return int(env.stack.redis.llen(env.stack.keys.celery_queue(name)))  # type: ignore[arg-type]


def batches(env: ApiEnv) -> BatchStore:
    return BatchStore(env.stack.redis, env.stack.keys, env.stack.settings.job_ttl_seconds)


def test_a_batch_is_one_job_per_item_on_the_bulk_queue(idle: ApiEnv) -> None:
    bulk, jobs = depth(idle, "bulk"), depth(idle, "jobs")
    payload = body(
        3,
        defaults={"prosody": {"speed": 1.2}, "priority": 4},
        produce={"chapter_format": "opus", "combined": "mp3", "loudness": "acx"},
        metadata={"isbn": "978-0"},
    )
    payload["items"][1]["reference_id"] = "voice-b"
    with idle.client() as http:
        created = http.post("/v1/batches", json=payload)
    assert created.status_code == 202, created.text
    batch = created.json()
    assert created.headers["Location"] == f"/v1/batches/{batch['id']}"
    assert batch["id"].startswith("bat_")
    assert batch["status"] == "queued"
    assert batch["items_total"] == 3 and batch["items_done"] == 0 and batch["items_failed"] == 0
    assert batch["counts"] == {
        "total": 3,
        "queued": 3,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }
    assert [i["title"] for i in batch["items"]] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert [i["index"] for i in batch["items"]] == [0, 1, 2]
    assert batch["book"]["title"] == "River Tales" and batch["book"]["author"] == "A. Writer"
    assert batch["produce"]["combined"] == "mp3" and batch["produce"]["loudness"] == "acx"
    assert batch["outputs"]["combined"] is None
    assert batch["outputs"]["assembly"]["state"] == "waiting"
    assert batch["metadata"] == {"isbn": "978-0"}
    total = sum(len(i["text"].encode()) for i in payload["items"])
    assert batch["billing"]["utf8_bytes"] == total
    assert batch["progress"]["chars_total"] == sum(len(i["text"]) for i in payload["items"])

    # Each item is a stored job of the batch, queued on the bulk queue.
    assert depth(idle, "bulk") == bulk + 3 and depth(idle, "jobs") == jobs
    stored = [idle.stack.store.get(i["job_id"]) for i in batch["items"]]
    assert all(j is not None and j.batch_id == batch["id"] for j in stored)
    first, second, _ = stored
    assert first is not None and second is not None
    assert first.status is JobStatus.QUEUED
    assert first.request.format == "opus" and first.request.priority == 4
    assert first.request.prosody is not None and first.request.prosody.speed == 1.2
    assert first.request.reference_id is None and second.request.reference_id == "voice-b"
    assert second.request.prosody is not None  # the item's voice, the batch's other settings
    assert first.request.callback_url is None  # the batch reports, not each job
    assert first.request.output_key == f"t1/{batch['id']}/chapters/001-{first.id}.opus"
    with idle.client() as http:
        listed = http.get("/v1/jobs", params={"batch_id": batch["id"]}).json()["data"]
        shown = http.get(f"/v1/batches/{batch['id']}").json()
    assert [j["id"] for j in listed] == [i["job_id"] for i in batch["items"]]
    assert shown["status"] == "queued" and shown["items"] == batch["items"]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda b: b.update(items=[]), 422, "items"),
        (lambda b: b["items"][1].update(title="  "), 422, "items.1.title"),
        (lambda b: b["items"][2].update(text=""), 422, "items.2.text"),
        (lambda b: b["items"][0].update(speed=2), 422, "items.0.speed"),
        (lambda b: b.update(produce={"chapter_format": "aiff"}), 422, "produce.chapter_format"),
        (
            lambda b: b.update(produce={"chapter_format": "wav", "chapter_sample_rate": 12345}),
            422,
            "produce.chapter_sample_rate",
        ),
        (lambda b: b.update(produce={"sample_rate": 8000}), 422, "produce.sample_rate"),
        (lambda b: b.update(produce={"combined": "wav"}), 422, "produce.combined"),
        (
            lambda b: b.update(produce={"combined": None, "loudness": "acx"}),
            422,
            "produce.loudness",
        ),
        (lambda b: b.update(produce={"chapter_silence_ms": -1}), 422, "produce.chapter_silence_ms"),
        (
            lambda b: b.update(defaults={"references": [{"audio": "%%%"}]}),
            422,
            "defaults.references.0.audio",
        ),
        (
            lambda b: b["items"][1].update(
                references=[{"audio": base64.b64encode(b"not audio").decode()}]
            ),
            422,
            "items.1.references.0.audio",
        ),
        (lambda b: b.update(callback_url="http://127.0.0.1/hook"), 422, "callback_url"),
        (lambda b: b.update(metadata={"x": "y" * 20000}), 422, "metadata"),
        (lambda b: b["items"][1].update(text="a" * 4001), 413, "items.1.text"),
        (
            lambda b: b.update(items=[{"title": f"c{i}", "text": "b" * 3900} for i in range(21)]),
            413,
            "items",
        ),
        (lambda b: b.update(items=[chapter(1)] * 501), 422, "items"),
    ],
)
def test_bad_batches_name_the_field_and_leave_nothing(
    idle: ApiEnv, change: Any, status: int, field: str
) -> None:
    before = (
        queued_messages(idle.stack),
        len(list(idle.stack.redis.scan_iter(f"{idle.stack.keys.prefix}:batch:*"))),
    )
    payload = body(3)
    change(payload)
    with idle.client() as http:
        answer = http.post("/v1/batches", json=payload)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert error["message"].startswith(field), error
    after = (
        queued_messages(idle.stack),
        len(list(idle.stack.redis.scan_iter(f"{idle.stack.keys.prefix}:batch:*"))),
    )
    assert after == before


def test_other_tenants_see_nothing(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        batch = http.post("/v1/batches", json=body(2)).json()
    with idle.client("t2") as other:
        for method, path in [
            ("GET", f"/v1/batches/{batch['id']}"),
            ("POST", f"/v1/batches/{batch['id']}/cancel"),
            ("POST", f"/v1/batches/{batch['id']}/items/0/retry"),
            ("GET", "/v1/batches/bat_nonexistent"),
        ]:
            answer = other.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["field"] == "batch_id"
    with idle.client("t1") as http:
        assert http.get(f"/v1/batches/{batch['id']}").json()["status"] == "queued"


def test_idempotency_key_makes_one_batch(idle: ApiEnv) -> None:
    bulk = depth(idle, "bulk")
    headers = {"Idempotency-Key": "book-42"}
    with idle.client("idem") as http:
        first = http.post("/v1/batches", json=body(2), headers=headers)
        again = http.post("/v1/batches", json=body(2), headers=headers)
        other = http.post("/v1/batches", json=body(3), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert depth(idle, "bulk") == bulk + 2


def test_a_batch_over_the_jobs_in_flight_limit_is_refused_whole(idle: ApiEnv) -> None:
    with idle.client("fl") as http:  # at most 2 jobs in flight
        answer = http.post("/v1/batches", json=body(3))
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "too_many_jobs_in_flight"
        assert int(answer.headers["Retry-After"]) >= 1
        ok = http.post("/v1/batches", json=body(2))
        assert ok.status_code == 202, ok.text


def test_cancel_stops_every_item_once(idle: ApiEnv) -> None:
    with idle.client("cancel") as http:
        batch = http.post("/v1/batches", json=body(3)).json()
        canceled = http.post(f"/v1/batches/{batch['id']}/cancel")
        assert canceled.status_code == 200, canceled.text
        shown = canceled.json()
        assert shown["status"] == "canceled"
        assert shown["canceled_at"] and shown["finished_at"]
        assert [i["status"] for i in shown["items"]] == ["canceled"] * 3
        assert shown["items_failed"] == 3
        again = http.post(f"/v1/batches/{batch['id']}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "batch_finished"
        retry = http.post(f"/v1/batches/{batch['id']}/items/0/retry")
        assert retry.status_code == 409 and retry.json()["error"]["code"] == "batch_canceled"
    for item in shown["items"]:
        job = idle.stack.store.get(item["job_id"])
        assert job is not None and job.status is JobStatus.CANCELED


def test_retry_rules(idle: ApiEnv) -> None:
    with idle.client() as http:
        batch = http.post("/v1/batches", json=body(2)).json()
        running = http.post(f"/v1/batches/{batch['id']}/items/0/retry")
        assert running.status_code == 409 and running.json()["error"]["code"] == "item_running"
        missing = http.post(f"/v1/batches/{batch['id']}/items/7/retry")
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "n"
        bad = http.post(f"/v1/batches/{batch['id']}/items/1/retry", json={"prosody": {"speed": 9}})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "prosody.speed"

        # Once the item has ended (here: it failed), a retry replaces its job.
        old = batch["items"][1]["job_id"]
        idle.stack.store.transition(old, JobStatus.FAILED)
        retried = http.post(
            f"/v1/batches/{batch['id']}/items/1/retry",
            json={"title": "Chapter 2, again", "prosody": {"speed": 0.9}},
        )
        assert retried.status_code == 202, retried.text
        shown = retried.json()
    item = shown["items"][1]
    assert item["job_id"] != old and item["replaced_jobs"] == [old]
    assert item["title"] == "Chapter 2, again" and item["status"] == "queued"
    assert shown["items"][0]["job_id"] == batch["items"][0]["job_id"]
    assert shown["outputs"]["assembly"]["generation"] == 2
    new = idle.stack.store.get(item["job_id"])
    assert new is not None and new.batch_id == batch["id"]
    assert new.request.prosody is not None and new.request.prosody.speed == 0.9
    assert new.request.text == batch_text(idle, old)
    stored = batches(idle).get(batch["id"])
    assert stored is not None and stored.items[1].replaced == [old]
    # The batch's job listing shows each item's current job only.
    with idle.client() as http:
        listed = http.get("/v1/jobs", params={"batch_id": batch["id"]}).json()["data"]
    assert [j["id"] for j in listed] == [batch["items"][0]["job_id"], item["job_id"]]


def batch_text(env: ApiEnv, job_id: str) -> str:
    job = env.stack.store.get(job_id)
    assert job is not None
    return job.request.text
