"""The segment cache through the API: the estimate and the job record say what was
served from the cache and what was sent, and a book re-rendered after a lexicon
change sends only the segments the change touched (local_tts counts them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiEnv, all_tenants
from tests.api.server import ApiServer, api_settings
from tests.api.test_e2e import poll
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stacks
from worker.jobs.text import segment_text

TEXT = (
    "The lighthouse keeper wrote every evening.\n\n"
    "He wrote of ships, of gulls, and of the weather.\n\n"
    "On Sundays he wrote to his sister in the valley."
)
CHAPTERS = [
    "Morning came grey over the harbour. The boats went out anyway.",
    "At noon the Bellweather sighted whales off the point.",
    "By evening the nets were full and the crews were singing.",
]


@pytest.fixture(scope="module")
def cached(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    """The API on a stack with one worker and the segment cache on."""
    workdir = tmp_path_factory.mktemp("cached")
    with Stacks(redis_url, api_s3.endpoint_url, workdir) as make:
        stack = make(api_tts, workers=1, SHOAL_SEGMENT_CACHE_DAYS="30")
        with ApiServer(api_settings(stack, all_tenants())) as api:
            yield ApiEnv(stack, api)


def sent_texts(env: ApiEnv) -> list[str]:
    return [s["text"] for s in env.stack.tts.wait_idle()["sessions"]]


def test_the_estimate_and_the_job_show_what_the_cache_serves(cached: ApiEnv) -> None:
    size = len(TEXT.encode())
    with cached.client("t1") as http:
        before = http.post("/v1/estimate", json={"text": TEXT}).json()
        assert before["segments"] == 3 and before["segments_cached"] == 0
        assert before["sent_utf8_bytes"] == before["utf8_bytes"] == size
        assert before["sent_cost_usd"] == before["estimated_cost_usd"] > 0

        first = poll(http, http.post("/v1/jobs", json={"text": TEXT}).json()["id"])
        assert first["status"] == "succeeded", first["error"]
        assert first["billing"]["sent_utf8_bytes"] == size
        assert first["billing"]["cached_utf8_bytes"] == 0
        assert first["progress"]["segments_cached"] == 0

        after = http.post("/v1/estimate", json={"text": TEXT}).json()
        assert after["segments_cached"] == 3 and after["cached_utf8_bytes"] == size
        assert after["sent_utf8_bytes"] == 0 and after["sent_cost_usd"] == 0
        # Another sound is another address; a fresh take takes nothing from the cache.
        for other in ({"temperature": 0.5}, {"prosody": {"speed": 1.2}}, {"cache": False}):
            other_estimate = http.post("/v1/estimate", json={"text": TEXT} | other).json()
            assert other_estimate["segments_cached"] == 0, other
        # The output format is the job's, not the segments': mp3 and wav share them.
        wav = http.post("/v1/estimate", json={"text": TEXT, "format": "wav"}).json()
        assert wav["segments_cached"] == 3

        sessions = len(sent_texts(cached))
        second = poll(
            http, http.post("/v1/jobs", json={"text": TEXT, "format": "wav"}).json()["id"]
        )
        assert second["status"] == "succeeded", second["error"]
        assert len(sent_texts(cached)) == sessions
        assert second["billing"]["sent_utf8_bytes"] == 0
        assert second["billing"]["sent_cost_usd"] == 0
        assert second["billing"]["cached_utf8_bytes"] == size
        assert second["progress"]["segments_cached"] == 3
        assert second["request"]["cache"] is True
    with cached.client("t2") as http:  # another tenant's cache holds none of it
        assert http.post("/v1/estimate", json={"text": TEXT}).json()["segments_cached"] == 0


def wait_batch(http: httpx.Client, batch_id: str, timeout: float = 90) -> Any:
    """The batch once its current generation is built."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = http.get(f"/v1/batches/{batch_id}").json()
        assembly = batch["outputs"]["assembly"]
        if (
            batch["status"] == "succeeded"
            and assembly["built_generation"] == assembly["generation"]
        ):
            return batch
        assert batch["status"] not in ("failed", "partially_failed", "canceled"), batch
        time.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} not built")


def test_a_rerender_after_a_lexicon_change_sends_only_what_it_touched(cached: ApiEnv) -> None:
    with cached.client("voice") as http:
        made = http.post(
            "/v1/lexicons",
            json={"name": "ships", "rules": [{"grapheme": "boats", "alias": "boats"}]},
        )
        lexicon = made.json()
        items = [{"title": f"Chapter {n + 1}", "text": t} for n, t in enumerate(CHAPTERS)]
        body = {"defaults": {"lexicons": [lexicon["id"]]}, "items": items}
        batch = http.post("/v1/batches", json=body).json()
        wait_batch(http, batch["id"])
        before = len(sent_texts(cached))

        rule = {"grapheme": "Bellweather", "alias": "Bell-wether"}
        changed = {"name": "ships", "rules": [{"grapheme": "boats", "alias": "boats"}, rule]}
        assert http.put(f"/v1/lexicons/{lexicon['id']}", json=changed).status_code == 200
        again = http.post(f"/v1/batches/{batch['id']}/rerender")
        assert again.status_code == 202, again.text
        done = wait_batch(http, batch["id"])
    sent = sent_texts(cached)[before:]
    limit = cached.stack.settings.segment_max_chars
    respelled = CHAPTERS[1].replace("Bellweather", "Bell-wether")
    touched = {s.text for s in segment_text(respelled, limit)} - {
        s.text for s in segment_text(CHAPTERS[1], limit)
    }
    assert sorted(sent) == sorted(touched)  # only the respelled segment of chapter 2
    book_bytes = sum(len(t.encode()) for t in CHAPTERS)
    assert sum(len(t.encode()) for t in sent) <= len(respelled.encode()) < book_bytes
    assert done["items"][0]["job_id"] == batch["items"][0]["job_id"]  # untouched
    # The batch's bill: chapter 2's new job took all but the respelled segment from the cache.
    billing = done["billing"]
    chapter_two = len(respelled.encode())
    assert billing["cached_utf8_bytes"] == chapter_two - sum(len(t.encode()) for t in sent)
    assert billing["sent_utf8_bytes"] == billing["utf8_bytes"] - billing["cached_utf8_bytes"]
