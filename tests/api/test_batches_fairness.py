"""Fairness: a book queued first does not hold back a short narration job submitted after it.

A real worker (4 threads) and a provider allowing 2 sessions at once; a
40-chapter batch goes on the bulk queue, then one short job on the jobs
queue.  The worker takes the short job up between chapters, and its segment
waits for a provider slot ahead of the chapters' (batch work has the lower
governor priority), so it finishes long before the book does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.server import ApiServer, api_settings, tenant
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks

KEY = "fair-key"
CHAPTERS = 40


@pytest.fixture(scope="module")
def api(
    redis_url: str, api_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, ApiServer]]:
    with (
        LocalTTS(engine="tone", rtf=0.05, ttfb_ms=100) as tts,
        Stacks(redis_url, api_s3.endpoint_url, tmp_path_factory.mktemp("fair")) as make,
    ):
        stack = make(tts, SHOAL_PROVIDER_SLOTS="2", SHOAL_SEGMENT_MAX_CHARS="400")
        stack.start_worker(concurrency=4)
        with ApiServer(api_settings(stack, [tenant("fair", KEY)])) as server:
            yield stack, server


def test_a_short_job_after_a_big_book_finishes_first(
    api: tuple[Stack, ApiServer], tmp_path: Path
) -> None:
    stack, server = api
    items = [
        {"title": f"Chapter {n}", "text": f"Chapter {n}. The tide came in over the flats again."}
        for n in range(1, CHAPTERS + 1)
    ]
    with server.client(KEY) as http:
        created = http.post("/v1/batches", json={"items": items, "produce": {"combined": None}})
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]
        short = http.post("/v1/jobs", json={"text": "Breaking news, briefly."})
        assert short.status_code == 202, short.text
        job = poll_job(http, short.json()["id"])
        assert job["status"] == "succeeded", job
        at_short = http.get(f"/v1/batches/{batch_id}").json()
        batch = poll_batch(http, batch_id)
    assert batch["items_done"] == CHAPTERS, batch

    short_done = stack.store.get(job["id"])
    chapters = [stack.store.get(item["job_id"]) for item in batch["items"]]
    assert short_done is not None and short_done.finished_at is not None
    last = max(c.finished_at or 0 for c in chapters if c is not None)
    assert short_done.finished_at < last
    # Not merely before the very last chapter: well before most of the book.
    assert at_short["counts"]["succeeded"] < CHAPTERS // 2, at_short["counts"]


def poll_job(http: httpx.Client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return dict(job)
        time.sleep(0.05)
    raise TimeoutError(job_id)


def poll_batch(http: httpx.Client, batch_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = http.get(f"/v1/batches/{batch_id}").json()
        if batch["counts"]["queued"] == 0 and batch["counts"]["running"] == 0:
            return dict(batch)
        time.sleep(0.2)
    raise TimeoutError(batch_id)
