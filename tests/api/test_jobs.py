"""The job API over HTTP with no worker running (jobs stay queued): tenants, idempotency,
cancellation, listing, rate limits and the inputs it accepts."""

from __future__ import annotations

import base64
import io
import math
import struct
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from tests.api.conftest import ApiEnv, all_tenants
from tests.api.server import ApiServer, api_settings, queued_messages
from worker.jobs.model import JobStatus


def submit(http: httpx.Client, text: str = "Hello there.", **fields: object) -> dict:
    response = http.post("/v1/jobs", json={"text": text, **fields})
    assert response.status_code == 202, response.text
    return dict(response.json())


def wav_clip(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(n)))
    return buf.getvalue()


def test_submit_answers_202_with_location_and_the_job(idle: ApiEnv) -> None:
    with idle.client() as http:
        response = http.post(
            "/v1/jobs",
            json={
                "text": "Chapter one.\n\nIt was a dark night.",
                "format": "wav",
                "sample_rate": 24000,
                "prosody": {"speed": 1.2, "volume": -3},
                "latency": "balanced",
                "temperature": 0.5,
                "metadata": {"book": "b-1", "n": [1, 2]},
                "priority": 3,
                "output_key": "books/b-1/ch1.wav",
                "callback_url": "https://93.184.215.14/hook",
            },
        )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["metadata"] == {"book": "b-1", "n": [1, 2]}
    assert job["billing"]["utf8_bytes"] == len("Chapter one.\n\nIt was a dark night.")
    assert job["request"]["format"] == "wav"
    assert job["request"]["sample_rate"] == 24000
    assert job["request"]["prosody"]["speed"] == 1.2
    assert job["request"]["output_key"] == "t1/books/b-1/ch1.wav"  # under the tenant's prefix
    assert job["links"]["events"] == f"/v1/jobs/{job['id']}/events"
    assert job["output"] is None
    stored = idle.stack.store.get(job["id"])
    assert stored is not None and stored.tenant == "t1"
    assert stored.request.priority == 3


def test_voice_by_reference_id_or_cloned_from_reference_audio(idle: ApiEnv) -> None:
    clip = base64.b64encode(wav_clip()).decode()
    with idle.client("voice") as http:
        by_id = submit(http, reference_id="8ef4a238714b45718ce04243307c57a7")
        cloned = submit(http, references=[{"audio": clip, "text": "A sample."}])
    assert by_id["request"]["reference_id"] == "8ef4a238714b45718ce04243307c57a7"
    assert cloned["request"]["references"] == 1
    stored = idle.stack.store.get(cloned["id"])
    assert stored is not None
    assert stored.request.references[0].audio == wav_clip()
    assert stored.request.references[0].text == "A sample."


def test_private_callbacks_are_accepted_when_the_operator_allows_them(idle: ApiEnv) -> None:
    settings = api_settings(idle.stack, all_tenants(), allow_private_callbacks=True)
    with ApiServer(settings) as api, api.client("key-t1") as http:
        job = submit(http, callback_url="http://127.0.0.1:9/hook")
    assert job["request"]["callback_url"] == "http://127.0.0.1:9/hook"


def test_tenants_never_see_each_others_jobs(idle: ApiEnv) -> None:
    with idle.client("t1") as mine, idle.client("t2") as theirs:
        job = submit(mine)
        jid = job["id"]
        for method, path in [
            ("GET", f"/v1/jobs/{jid}"),
            ("POST", f"/v1/jobs/{jid}/cancel"),
            ("GET", f"/v1/jobs/{jid}/audio"),
            ("GET", f"/v1/jobs/{jid}/events"),
        ]:
            response = theirs.request(method, path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "not_found"
        listed = theirs.get("/v1/jobs").json()["data"]
        assert jid not in {j["id"] for j in listed}
        assert mine.get(f"/v1/jobs/{jid}").json()["status"] == "queued"  # untouched
        assert mine.get("/v1/jobs/job_doesnotexist").status_code == 404


def test_idempotency_key_returns_the_same_job(idle: ApiEnv) -> None:
    body = {"text": "Say it once.", "format": "flac"}
    headers = {"Idempotency-Key": "order-17"}
    with idle.client("idem") as http, idle.client("t2") as other:
        first = http.post("/v1/jobs", json=body, headers=headers)
        again = http.post("/v1/jobs", json=body, headers=headers)
        changed = http.post("/v1/jobs", json={**body, "format": "wav"}, headers=headers)
        elsewhere = other.post("/v1/jobs", json=body, headers=headers)  # keys are per tenant
        jobs = http.get("/v1/jobs").json()["data"]
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert changed.json()["error"]["field"] == "Idempotency-Key"
    assert elsewhere.status_code == 202
    assert elsewhere.json()["id"] != first.json()["id"]
    assert [j["id"] for j in jobs] == [first.json()["id"]]


def test_concurrent_retries_with_one_idempotency_key_make_one_job(idle: ApiEnv) -> None:
    body = {"text": "Raced."}
    before = queued_messages(idle.stack)

    def post(_: int) -> httpx.Response:
        with idle.client("idem") as http:
            return http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert all(r.status_code in (200, 202) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.status_code == 202 for r in responses) == 1
    assert queued_messages(idle.stack) == before + 1


def test_concurrent_submissions_each_make_one_queued_job(idle: ApiEnv) -> None:
    before = queued_messages(idle.stack)

    def post(i: int) -> httpx.Response:
        with idle.client("t2") as http:
            return http.post("/v1/jobs", json={"text": f"Parallel job {i}."})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, range(24)))
    assert [r.status_code for r in responses] == [202] * 24, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 24
    assert queued_messages(idle.stack) == before + 24
    assert all(idle.stack.store.get(i) is not None for i in ids)


def test_cancel_a_queued_job(idle: ApiEnv) -> None:
    with idle.client("cancel") as http:
        jid = submit(http)["id"]
        canceled = http.post(f"/v1/jobs/{jid}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceled"
        assert canceled.json()["finished_at"] is not None
        assert http.get(f"/v1/jobs/{jid}").json()["status"] == "canceled"
        again = http.post(f"/v1/jobs/{jid}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "job_finished"
        audio = http.get(f"/v1/jobs/{jid}/audio", follow_redirects=False)
        assert audio.status_code == 409
        assert audio.json()["error"]["code"] == "not_ready"
        # The stream of a finished job is its final state, and then it ends.
        with http.stream("GET", f"/v1/jobs/{jid}/events") as stream:
            text = "".join(stream.iter_text())
    assert text.count("event: status") == 1
    assert '"status":"canceled"' in text
    stored = idle.stack.store.get(jid)
    assert stored is not None and stored.status is JobStatus.CANCELED


def test_list_filters_and_pages(idle: ApiEnv) -> None:
    with idle.client("list") as http:
        ids = [submit(http, f"Job number {i}.")["id"] for i in range(5)]
        times = [idle.stack.store.get(i).created_at for i in ids]  # type: ignore[union-attr]
        middle = datetime.fromtimestamp((times[2] + times[3]) / 2, UTC).isoformat()
        http.post(f"/v1/jobs/{ids[0]}/cancel")

        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/jobs", params=params).json()
            seen += [j["id"] for j in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]  # newest first, each once
        assert pages == 3

        queued = http.get("/v1/jobs", params={"status": "queued"}).json()["data"]
        assert [j["id"] for j in queued] == ids[:0:-1]
        canceled = http.get("/v1/jobs", params={"status": "canceled"}).json()["data"]
        assert [j["id"] for j in canceled] == [ids[0]]
        after = http.get("/v1/jobs", params={"created_after": middle}).json()["data"]
        assert [j["id"] for j in after] == ids[:2:-1]
        before = http.get("/v1/jobs", params={"created_before": middle}).json()["data"]
        assert [j["id"] for j in before] == ids[2::-1]
        future = datetime.now(UTC).replace(year=2100).isoformat()
        assert http.get("/v1/jobs", params={"created_after": future}).json()["data"] == []
        assert http.get("/v1/jobs", params={"batch_id": "nope"}).json()["data"] == []


def test_requests_per_minute_are_limited_with_retry_after(idle: ApiEnv) -> None:
    with idle.client("rl") as limited, idle.client("t2") as other:
        codes = [limited.get("/v1/jobs").status_code for _ in range(5)]
        refused = limited.get("/v1/jobs")
        assert other.get("/v1/jobs").status_code == 200  # limits are per tenant
    assert codes == [200] * 5
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120


def test_jobs_in_flight_are_limited_with_retry_after(idle: ApiEnv) -> None:
    with idle.client("fl") as http:
        first = submit(http)
        submit(http)
        before = queued_messages(idle.stack)
        refused = http.post("/v1/jobs", json={"text": "One too many."})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_jobs_in_flight"
        assert int(refused.headers["Retry-After"]) >= 1
        assert queued_messages(idle.stack) == before  # nothing enqueued
        # A job that finishes (here: is canceled) makes room again.
        assert http.post(f"/v1/jobs/{first['id']}/cancel").status_code == 200
        submit(http, "Now there is room.")


def test_an_event_stream_left_by_its_client_unsubscribes(idle: ApiEnv) -> None:
    with idle.client("cancel") as http:
        jid = submit(http)["id"]
        channel = idle.stack.keys.job_events(jid)
        with http.stream("GET", f"/v1/jobs/{jid}/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: status"
            assert dict(idle.stack.redis.pubsub_numsub(channel))[channel.encode()] == 1
        deadline = time.monotonic() + 10
        while dict(idle.stack.redis.pubsub_numsub(channel))[channel.encode()]:
            assert time.monotonic() < deadline, "the stream's subscription outlived its client"
            time.sleep(0.1)
