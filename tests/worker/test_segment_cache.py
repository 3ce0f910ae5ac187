"""Pure tests of the segment cache's address and its values (no sockets).

Every parameter that decides a segment's sound changes its address; nothing
else does: requests that sound the same share one.
"""

from __future__ import annotations

from typing import Any

import pytest

from worker.fish import AudioFormat, Latency, Prosody, ReferenceAudio, TTSRequest
from worker.jobs.cache import CachedAudio, segment_request, sound_address
from worker.jobs.model import JobRequest, PassageVoice, ReferenceClip
from worker.storage.errors import InvalidKey
from worker.storage.model import cache_key

BASE = TTSRequest(format=AudioFormat.PCM, sample_rate=44100)
WHERE: dict[str, Any] = {
    "tenant": "t1",
    "text": "It was a dark and stormy night.",
    "endpoint": "ws://127.0.0.1:8765/v1/tts/live",
    "model": "s2.1-pro",
}

#: A value other than BASE's for every field of the request but its text.  A field
#: added to TTSRequest fails the coverage test until it is given one here.
CHANGED: dict[str, Any] = {
    "chunk_length": 250,
    "min_chunk_length": 60,
    "format": AudioFormat.WAV,
    "sample_rate": 24000,
    "mp3_bitrate": 192,
    "opus_bitrate": 64,
    "references": [ReferenceAudio(audio=b"RIFF....", text="hello")],
    "reference_id": "voice-1",
    "normalize": False,
    "latency": Latency.NORMAL,
    "prosody": Prosody(speed=1.25),
    "top_p": 0.5,
    "temperature": 0.4,
    "max_new_tokens": 2048,
    "repetition_penalty": 1.4,
    "condition_on_previous_chunks": False,
    "early_stop_threshold": 0.5,
    "features": ["word_timestamps"],
}


def address(request: TTSRequest = BASE, **where: Any) -> str:
    return sound_address(request=request, **(WHERE | where))


def test_every_request_field_is_covered() -> None:
    assert set(CHANGED) == set(TTSRequest.model_fields) - {"text"}


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_every_request_field_changes_the_address(field: str) -> None:
    changed = BASE.model_copy(update={field: CHANGED[field]})
    assert address(changed) != address()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tenant", "t2"),
        ("text", "It was a dark and starry night."),
        ("text", "It was a dark and stormy night. "),  # whitespace is sent too
        ("endpoint", "wss://api.fish.audio/v1/tts/live"),
        ("model", "s1"),
        ("level_db", -20.0),
    ],
)
def test_where_and_what_change_the_address(name: str, value: object) -> None:
    assert address(**{name: value}) != address()


def test_reference_audio_counts_by_its_bytes_and_transcript() -> None:
    def with_reference(audio: bytes, text: str) -> str:
        ref = ReferenceAudio(audio=audio, text=text)
        return address(BASE.model_copy(update={"references": [ref]}))

    assert with_reference(b"one", "hi") == with_reference(b"one", "hi")
    assert with_reference(b"one", "hi") != with_reference(b"two", "hi")
    assert with_reference(b"one", "hi") != with_reference(b"one", "ho")


def test_defaults_spelled_out_or_left_out_are_one_sound() -> None:
    assert address(BASE.model_copy(update={"prosody": Prosody()})) == address()
    assert address(TTSRequest(format=AudioFormat.PCM)) == address()  # 44100 is PCM's default
    assert address() == address()  # and it is stable: a hex SHA-256
    assert len(address()) == 64 and int(address(), 16) >= 0


def test_what_does_not_reach_the_provider_leaves_the_address_alone() -> None:
    """Output format and bitrate (same PCM rate), silence, keys, callbacks, priority and
    lexicon bookkeeping are the job's, not the segment's sound."""
    plain = JobRequest(text="whole text", format="mp3", sample_rate=44100)
    other = JobRequest(
        text="another whole text",
        format="wav",
        sample_rate=44100,
        bitrate_kbps=None,
        paragraph_silence_ms=900,
        output_key="t1/x.wav",
        callback_url="https://example.com/hook",
        priority=7,
        source_text="the text as given",
        cache=False,
    )
    assert address(segment_request(plain)) == address(segment_request(other))
    mp3_192 = plain.model_copy(update={"bitrate_kbps": 192})
    assert address(segment_request(mp3_192)) == address(segment_request(plain))


def test_segment_request_follows_the_job() -> None:
    request = JobRequest(
        text="x",
        format="flac",
        sample_rate=24000,
        reference_id="voice-a",
        prosody=Prosody(speed=1.1),
        temperature=0.3,
        passage_voices={"narrator": PassageVoice(references=[ReferenceClip(audio=b"a")])},
    )
    own = segment_request(request)
    assert own.format is AudioFormat.PCM and own.sample_rate == 24000
    assert own.reference_id == "voice-a" and own.temperature == 0.3 and own.speed == 1.1
    passage = segment_request(request, "narrator")
    assert passage.reference_id is None and passage.references[0].audio == b"a"  # type: ignore[union-attr]
    assert address(own) != address(passage)


def test_cache_keys_sit_under_their_tenant() -> None:
    addr = "ab" + "0" * 62
    assert cache_key("_cache", "t1", addr) == f"_cache/t1/ab/{addr}.pcm"
    assert cache_key("", "t1", addr) == f"t1/ab/{addr}.pcm"
    assert cache_key("_cache", "t1", addr) != cache_key("_cache", "t2", addr)
    with pytest.raises(InvalidKey):
        cache_key("_cache", "../t2", addr)


def test_cached_audio_metadata_round_trips_and_refuses_garble() -> None:
    audio = CachedAudio(address="a" * 64, bytes=88200, sample_rate=44100, sha256="f" * 64)
    assert CachedAudio.from_metadata(audio.metadata()) == audio
    assert audio.duration_s == 1.0
    assert CachedAudio.from_metadata({}) is None
    assert CachedAudio.from_metadata(audio.metadata() | {"pcm-bytes": "many"}) is None


def test_the_estimates_request_is_the_workers() -> None:
    """``segment_request`` (the API's) builds what ``tts_request`` (the worker's) sends."""
    from worker.jobs.model import Job, estimate_billing
    from worker.jobs.synth import tts_request

    request = JobRequest(
        text="x",
        format="mp3",
        sample_rate=32000,
        reference_id="voice-a",
        prosody=Prosody(speed=0.9, volume=2.0),
        latency=Latency.BALANCED,
        normalize=False,
        top_p=0.6,
        repetition_penalty=1.1,
        passage_voices={"b": PassageVoice(reference_id="voice-b")},
    )
    job = Job(id="job_1", tenant="t1", request=request, billing=estimate_billing("x", 15.0))
    for voice in (None, "b"):
        assert segment_request(request, voice) == tts_request(job, voice)
