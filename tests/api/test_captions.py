"""Timings over HTTP: asking for them, refusing them where the provider has none, the
captions route before and after there is something to serve, and ``shoal narrate
--captions``.  The ``idle`` stack has no worker; ``live`` runs jobs through a real
worker and local_tts.  (Their precision is measured in tests/worker/test_timings_jobs.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ApiEnv
from tests.api.server import ApiServer, api_settings, queued_messages, tenant
from tests.api.test_e2e import poll
from tests.api.test_lexicons import shoal
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.jobs.model import TimestampLevel


def test_a_job_asks_for_timings_and_has_no_captions_until_it_succeeds(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        made = http.post("/v1/jobs", json={"text": "One. Two.", "timestamps": "word"})
        assert made.status_code == 202, made.text
        job = made.json()
        assert job["request"]["timestamps"] == "word" and job["captions"] == []
        assert job["links"]["captions"] == f"/v1/jobs/{job['id']}/captions"
        stored = idle.stack.store.get(job["id"])
        assert stored is not None and stored.request.timestamps is TimestampLevel.WORD

        early = http.get(f"/v1/jobs/{job['id']}/captions", params={"format": "srt"})
        assert early.status_code == 409 and early.json()["error"]["code"] == "not_ready"
        bad = http.get(f"/v1/jobs/{job['id']}/captions", params={"format": "ass"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "format"

        plain = http.post("/v1/jobs", json={"text": "No timings."}).json()
        assert plain["request"]["timestamps"] is None and plain["links"]["captions"] is None
        none = http.get(f"/v1/jobs/{plain['id']}/captions")
        assert none.status_code == 404 and none.json()["error"]["code"] == "no_captions"
        stored = idle.stack.store.get(plain["id"])
        assert stored is not None and "timestamps" not in stored.request.model_dump()

        wrong = http.post("/v1/jobs", json={"text": "x", "timestamps": "letters"})
        assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "timestamps"


@pytest.fixture
def no_timings(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path
) -> Iterator[tuple[Stack, ApiServer]]:
    """The API over a provider declared to have no timestamped endpoint."""
    with Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make:
        stack = make(api_tts)
        settings = api_settings(stack, [tenant("t1", "key-t")], provider_timestamps=False)
        with ApiServer(settings) as api:
            yield stack, api


def test_timings_from_a_provider_without_them_are_refused(
    no_timings: tuple[Stack, ApiServer],
) -> None:
    stack, api = no_timings
    with api.client("key-t") as http:
        before = queued_messages(stack)
        answer = http.post("/v1/jobs", json={"text": "Hello.", "timestamps": "sentence"})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["field"] == "timestamps" and "gives no timings" in error["message"]
        assert queued_messages(stack) == before
        assert http.get("/v1/jobs").json()["data"] == []
        assert http.post("/v1/jobs", json={"text": "Hello."}).status_code == 202


def test_captions_over_http_and_from_the_cli(
    live: ApiEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    text = "First sentence here. Second one follows.\n\nA paragraph of its own."
    with live.client("t2") as http:
        made = http.post("/v1/jobs", json={"text": text, "timestamps": "sentence"})
        assert made.status_code == 202, made.text
        done = poll(http, made.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        assert {c["format"] for c in done["captions"]} == {"vtt", "srt", "json"}
        assert all(c["download_url"] for c in done["captions"])
        moved = http.get(f"/v1/jobs/{done['id']}/captions", params={"format": "srt"})
        assert moved.status_code == 307
        srt = httpx.get(moved.headers["location"]).text
    assert srt.startswith("1\n00:00:00,") and "Second one follows." in srt
    assert srt.count(" --> ") == 3

    out = tmp_path / "hello.mp3"
    code, _, err = shoal(
        live, capsys, monkeypatch, "narrate", "Hello there. Goodbye now.",
        "-o", str(out), "--captions", str(tmp_path / "hello.vtt"),
    )  # fmt: skip
    assert code == 0, err
    vtt = (tmp_path / "hello.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "Goodbye now." in vtt and out.stat().st_size > 0
    code, _, err = shoal(
        live, capsys, monkeypatch, "narrate", "Hi.", "--captions", str(tmp_path / "x.txt")
    )
    assert code != 0 and "name a .vtt, .srt or .json file" in err
