"""The API end to end over HTTP: a real Celery worker, local_tts, moto S3 and Redis.

Submit, poll to ``succeeded``, download through the presigned ``download_url``
and decode the bytes; follow a job over Server-Sent Events; cancel a running job.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiEnv
from worker.audio import probe

TEXT = (
    "The quick brown fox jumps over the lazy dog. It was not amused.\n\n"
    "A second paragraph follows, so that the job has more than one segment to stitch."
)


def sentences(n: int, tag: str) -> str:
    """``n`` distinct sentences of about 50 characters: one segment each at 60 characters."""
    return " ".join(f"Line {i:02d}{tag} tells of rivers, hills and harbours." for i in range(n))


def poll(http: httpx.Client, job_id: str, timeout: float = 60.0, until: str = "") -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == until or (
            not until and job["status"] in ("succeeded", "failed", "canceled")
        ):
            return dict(job)
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")


def read_events(http: httpx.Client, path: str, timeout: float = 60.0) -> list[tuple[str, Any]]:
    """The (event, data) pairs of an SSE stream, until the server ends it."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    with http.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # keepalive comment
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif not line and data:
                events.append((name, json.loads("\n".join(data))))
                name, data = "message", []
    return events


@pytest.mark.parametrize(("fmt", "rate"), [("mp3", 44100), ("wav", 24000), ("opus", 48000)])
def test_submit_poll_download_decode(live: ApiEnv, tmp_path: Path, fmt: str, rate: int) -> None:
    with live.client() as http:
        created = http.post(
            "/v1/jobs",
            json={"text": TEXT, "format": fmt, "sample_rate": rate, "metadata": {"k": 1}},
        )
        assert created.status_code == 202, created.text
        job = poll(http, created.json()["id"])
        assert job["status"] == "succeeded", job["error"]
        redirect = http.get(f"/v1/jobs/{job['id']}/audio", follow_redirects=False)

    output = job["output"]
    assert output["format"] == fmt and output["sample_rate"] == rate
    assert output["download_url"].startswith(live.stack.settings.s3_endpoint_url or "http")
    assert job["attempts"] >= 1
    assert job["progress"]["percent"] == 100.0
    assert job["progress"]["phase"] == "uploading"  # the last phase before it ended
    assert job["started_at"] and job["finished_at"]
    assert job["metadata"] == {"k": 1}
    assert job["billing"]["utf8_bytes"] == len(TEXT.encode())

    # A plain GET of the presigned URL: no credentials, straight from S3.
    download = httpx.get(output["download_url"], timeout=30)
    assert download.status_code == 200
    assert len(download.content) == output["bytes"]
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(download.content)
    info = probe(path)
    assert info.channels == 1
    assert info.sample_rate == rate
    assert info.duration_s == pytest.approx(output["duration_s"], rel=0.01)

    assert redirect.status_code == 307
    again = httpx.get(redirect.headers["Location"], timeout=30)
    assert again.content == download.content


def test_events_stream_progress_then_the_final_state(live: ApiEnv) -> None:
    with live.client() as http:
        created = http.post("/v1/jobs", json={"text": sentences(8, "-sse"), "format": "mp3"})
        assert created.status_code == 202
        jid = created.json()["id"]
        events = read_events(http, f"/v1/jobs/{jid}/events")

    kinds = [name for name, _ in events]
    assert kinds[0] == "status"
    assert events[0][1]["id"] == jid
    assert kinds[-1] == "status"
    final = events[-1][1]
    assert final["status"] == "succeeded", final["error"]
    assert final["output"]["download_url"]
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress, f"no progress events: {kinds}"
    assert kinds.index("progress") < len(kinds) - 1
    done = [p["segments_done"] for p in progress]
    assert done == sorted(done)
    assert progress[-1]["segments_done"] == progress[-1]["segments_total"] >= 8
    # The phases never go back, and the stream tells encoding and uploading apart.
    order = ["synthesising", "encoding", "uploading"]
    ranks = [order.index(p["phase"]) for p in progress]
    assert ranks == sorted(ranks) and ranks[-2:] == [1, 2], ranks


def test_cancel_a_running_job(live: ApiEnv) -> None:
    with live.client() as http:
        jid = http.post("/v1/jobs", json={"text": sentences(40, "-cancel")}).json()["id"]
        poll(http, jid, until="running")
        canceled = http.post(f"/v1/jobs/{jid}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceled"
        time.sleep(1.0)  # the worker notices and stops; the job stays canceled
        job = http.get(f"/v1/jobs/{jid}").json()
        assert job["status"] == "canceled"
        assert job["output"] is None
        assert http.get(f"/v1/jobs/{jid}/audio").status_code == 409
    key = live.stack.storage.output_key({"tenant": "t1", "job_id": jid, "ext": "mp3"})
    assert not live.stack.storage.exists(key)


def scrape(http: httpx.Client) -> dict[str, float]:
    """``GET /metrics`` as {sample with labels: value}."""
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.text.splitlines()
        if line and not line.startswith("#")
    }


def scrape_until(
    http: httpx.Client, name: str, wanted: Any, timeout: float = 30.0
) -> dict[str, float]:
    """Scrape until sample ``name`` satisfies ``wanted``; the last scrape if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(http)
        if wanted(samples[name]) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_probes_and_metrics_of_a_live_stack(live: ApiEnv) -> None:
    in_use = "shoal_provider_sessions_in_use"
    done = 'shoal_job_duration_seconds_bucket{le="+Inf",status="succeeded"}'
    with live.client() as http:
        assert scrape_until(http, in_use, lambda v: v == 0)[in_use] == 0  # earlier tests' ended
        before = scrape(http)
        # Twelve segments, three at a time: seconds of streaming to watch.
        jid = http.post("/v1/jobs", json={"text": sentences(12, "-metrics")}).json()["id"]
        busy = scrape_until(http, in_use, lambda v: v >= 1)
        job = poll(http, jid)
        assert job["status"] == "succeeded", job["error"]
        after = scrape_until(http, in_use, lambda v: v == 0)
        ready = http.get("/readyz")
        health = http.get("/healthz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {"redis", "broker", "storage"}

    # While the job streamed it held provider sessions, never more than it may.
    assert 1 <= busy[in_use] <= live.stack.settings.job_parallel_segments
    assert busy['shoal_jobs{status="running"}'] == before['shoal_jobs{status="running"}'] + 1
    # Afterwards: one more success, nothing running or waiting, every session given back.
    for status, more in (("succeeded", 1), ("running", 0), ("queued", 0)):
        sample = f'shoal_jobs{{status="{status}"}}'
        assert after[sample] == before[sample] + more, status
    assert after['shoal_jobs{status="running"}'] == after['shoal_jobs{status="queued"}'] == 0
    assert after['shoal_queue_depth{queue="jobs"}'] == 0
    assert after[in_use] == 0
    assert after["shoal_provider_slots"] == live.stack.settings.provider_slots
    # The duration histogram counted the job, with its creation-to-finish time.
    assert after[done] == before[done] + 1
    took = (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
    ).total_seconds()
    gsum = 'shoal_job_duration_seconds_gsum{status="succeeded"}'
    assert after[gsum] - before[gsum] == pytest.approx(took, abs=0.01)


def test_queue_depth_counts_the_jobs_waiting(idle: ApiEnv) -> None:
    with idle.client("list") as http:
        before = scrape(http)
        for n in range(3):
            created = http.post("/v1/jobs", json={"text": f"Waiting number {n}."})
            assert created.status_code == 202, created.text
        after = scrape(http)
    depth, queued = 'shoal_queue_depth{queue="jobs"}', 'shoal_jobs{status="queued"}'
    assert after[depth] == before[depth] + 3
    assert after[queued] == before[queued] + 3
    assert after["shoal_provider_sessions_in_use"] == 0  # no worker: no session
