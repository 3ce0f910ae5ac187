"""Voices in the worker: sample checks (pure), job records with and without a voice,
and the VoiceStore on a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from tests.api.test_voices import wav
from worker.jobs.model import Job, JobRequest, ReferenceClip, estimate_billing
from worker.jobs.store import decode_job, encode_job
from worker.keys import Keys
from worker.voices.model import (
    BadSample,
    Voice,
    VoiceSample,
    VoiceState,
    inspect_sample,
    new_voice_id,
    sample_key,
)
from worker.voices.store import VoiceStore, deleted_voice


def test_a_job_record_keeps_its_voice_and_one_without_is_written_as_before() -> None:
    clip = ReferenceClip(audio=b"RIFF", text="one")
    request = JobRequest(text="Hello.", voice="voice_1", references=[clip])
    job = Job(id="job_1", tenant="t1", request=request, billing=estimate_billing("Hello.", 1))
    again = decode_job({k.encode(): v.encode() for k, v in encode_job(job).items()})
    assert again.request == request
    plain = encode_job(job.model_copy(update={"request": JobRequest(text="Hello.")}))
    assert "voice" not in json.loads(plain["request"])


def test_inspect_sample_measures_and_refuses_with_the_field() -> None:
    assert inspect_sample(wav(3.5), "files.0") == 3.5
    for data, words in [
        (b"", "empty"),
        (b"just some text, not audio" * 50, "not a readable audio file"),
        (wav(4.0, amplitude=0.0), "silent"),
        (wav(2.0), "shorter than 3 seconds"),
        (wav(60.5), "longer than 60 seconds"),
    ]:
        with pytest.raises(BadSample) as caught:
            inspect_sample(data, "files.2")
        assert caught.value.field == "files.2"
        assert caught.value.message.startswith("files.2: ") and words in caught.value.message


def _voice(tenant: str = "t1", title: str = "Narrator") -> Voice:
    voice_id = new_voice_id()
    key = sample_key(tenant, voice_id, 0)
    sample = VoiceSample(key=key, filename="a.wav", bytes=10, seconds=3.5)
    return Voice(id=voice_id, tenant=tenant, title=title, samples=[sample])


def test_store_per_tenant_and_a_deleted_voice_stops_its_jobs(
    redis_client: redis.Redis, keys: Keys
) -> None:
    store = VoiceStore(redis_client, keys)
    first, second, theirs = (
        store.create(_voice()),
        store.create(_voice()),
        store.create(_voice("t2")),
    )
    assert store.get("t1", first.id) == first and store.get("t2", first.id) is None
    assert [v.id for v in store.all("t1")] == [second.id, first.id]  # newest first
    assert store.count("t1") == 2
    updated = store.update("t1", first.id, {"title": "Renamed", "state": VoiceState.TRAINED})
    assert updated is not None and updated.title == "Renamed" and updated.samples == first.samples
    assert store.update("t2", first.id, {"title": "x"}) is None

    request = JobRequest(text="Hi.", voice=first.id)
    job = Job(id="job_1", tenant="t1", request=request, billing=estimate_billing("Hi.", 1))
    assert deleted_voice(store, job) is None
    assert store.delete("t1", first.id) and not store.delete("t1", first.id)
    gone = deleted_voice(store, job)
    assert gone is not None and first.id in gone
    plain = job.model_copy(update={"request": JobRequest(text="Hi.")})
    assert deleted_voice(store, plain) is None
    assert store.get("t2", theirs.id) == theirs
