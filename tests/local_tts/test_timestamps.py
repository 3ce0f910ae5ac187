"""``POST /v1/tts/stream/with-timestamp`` on a real local_tts, over HTTP.

The reply is read raw (httpx, split into ``data:`` lines by hand) so every
check is about what is on the wire: the event shape Fish documents, chunks
that are whole streams, alignments that grow and are replaced, positions that
are the engine's own (espeak-ng's word events, the tone engine's pacing,
piper's sentences), and the usual refusals: auth, bad input, faults.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from local_tts import espeak
from local_tts.engines import TONE_RATE, tone_words
from tests.local_tts.conftest import API_KEYS, decode, rms
from tests.servers import LocalTTS

PATH = "/v1/tts/stream/with-timestamp"
EVENT_KEYS = {"audio_base64", "content", "alignment", "chunk_seq", "chunk_audio_offset_sec"}
SENTENCES = "One fine day. The second sentence is longer than the first one, by far! Three?"


def post(server: LocalTTS, body: dict[str, Any], **headers: str) -> Any:
    return server.http.post(PATH, json=body, headers=headers)


def events(response: Any) -> list[dict[str, Any]]:
    """The JSON objects of an event-stream reply, checking its framing on the way."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block[:200]
        assert len(lines) == 1, "one data line per event"
        out.append(json.loads(lines[0][len("data: ") :]))
    assert response.text.endswith("\n\n")
    return out


def by_chunk(evs: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    chunks: dict[int, list[dict[str, Any]]] = {}
    for ev in evs:
        chunks.setdefault(ev["chunk_seq"], []).append(ev)
    return chunks


def chunk_audio(evs: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(ev["audio_base64"]) for ev in evs)


def final_segments(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return evs[-1]["alignment"]["segments"]


def test_events_have_the_documented_shape(espeak: LocalTTS) -> None:
    text = SENTENCES * 3  # over chunk_length: several chunks
    evs = events(post(espeak, {"text": text, "format": "pcm", "chunk_length": 100}))
    chunks = by_chunk(evs)
    assert len(chunks) >= 3 and sorted(chunks) == list(range(len(chunks)))
    offset = 0.0
    joined = ""
    for seq, chunk in chunks.items():
        for ev in chunk:
            assert set(ev) == EVENT_KEYS, ev.keys()
            assert ev["content"] == chunk[0]["content"]
            assert ev["chunk_audio_offset_sec"] == pytest.approx(offset, abs=1e-6)
            assert set(ev["alignment"]) == {"audio_duration", "segments"}
            for seg in ev["alignment"]["segments"]:
                assert set(seg) == {"text", "start", "end"}
                assert 0 <= seg["start"] <= seg["end"] <= ev["alignment"]["audio_duration"]
        joined += chunk[0]["content"]
        samples = len(chunk_audio(chunk)) // 2
        # Each event's duration is the chunk's audio sent so far: the last one has it all.
        assert chunk[-1]["alignment"]["audio_duration"] == pytest.approx(samples / 44100, abs=2e-3)
        offset += samples / 44100
        words = [seg["text"] for seg in final_segments(chunk)]
        assert words == chunk[0]["content"].split(), f"chunk {seq}"
    assert joined == text  # chunks are exact slices, in order


def test_alignment_snapshots_grow_and_the_last_has_every_word(espeak: LocalTTS) -> None:
    chunk = by_chunk(events(post(espeak, {"text": SENTENCES, "format": "pcm"})))[0]
    assert len(chunk) >= 4, "one event per half second of audio"
    counts = [len(ev["alignment"]["segments"]) for ev in chunk]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    last = final_segments(chunk)
    for ev in chunk:  # every snapshot agrees with the final one on the starts it has
        assert [s["start"] for s in ev["alignment"]["segments"]] == [
            s["start"] for s in last[: len(ev["alignment"]["segments"])]
        ]


def test_espeak_positions_are_the_libraries_word_events(espeak: LocalTTS) -> None:
    evs = events(post(espeak, {"text": SENTENCES, "format": "pcm", "sample_rate": 16000}))
    segments = final_segments(evs)
    direct = espeak_words(SENTENCES)
    assert [s["start"] for s in segments] == [w.start_ms / 1000 for w in direct]
    assert [s["text"] for s in segments] == SENTENCES.split()
    # And they are where the speech is: after a sentence's pause the speech of
    # its first word begins within 30 ms of the word's start.
    audio = np.frombuffer(chunk_audio(evs), "<i2")
    for seg in (segments[0], segments[3], segments[-1]):
        at = round(seg["start"] * 16000)
        assert 0 <= onset(audio, 16000, at) - seg["start"] * 1000 <= 30, seg
        if at:
            assert rms(audio[at - 1280 : at - 160]) < 100, f"no pause before {seg}"


def onset(audio: np.ndarray, rate: int, at: int) -> float:
    """Where speech begins from sample ``at``: the first 5 ms window louder than a whisper (ms)."""
    step = rate // 200
    for start in range(at, len(audio) - step, step):
        if rms(audio[start : start + 2 * step]) > 150:
            return start * 1000 / rate
    raise AssertionError(f"no speech after {at}")


def espeak_words(text: str) -> tuple[espeak.Word, ...]:
    """The word events of libespeak-ng in this process (en-us, the default voice's)."""
    return espeak.synthesize_timed(text, "en-us").words


def test_tone_positions_follow_its_pacing(tone: LocalTTS) -> None:
    text = "Hi there. Good day, friend!"
    evs = events(post(tone, {"text": text, "format": "pcm"}))
    segments = final_segments(evs)
    expected = tone_words(text, 1.0, TONE_RATE)
    assert [s["text"] for s in segments] == text.split()
    assert [s["start"] for s in segments] == [round(w.first / TONE_RATE, 3) for w in expected]
    audio = np.frombuffer(chunk_audio(evs), "<i2")
    for seg in segments:  # the tone is silent between words and sounds within them
        start, end = round(seg["start"] * 44100), round(seg["end"] * 44100)
        assert rms(audio[start:end]) > 1000, seg
        if start:
            # (the envelope ramps in over the half frame before a word: 2.5 ms)
            assert rms(audio[start - 660 : start - 220]) < 50, seg


def test_speed_halves_the_times(tone: LocalTTS) -> None:
    text = "Faster words."
    slow = final_segments(events(post(tone, {"text": text, "format": "pcm"})))
    fast = final_segments(
        events(post(tone, {"text": text, "format": "pcm", "prosody": {"speed": 2.0}}))
    )
    assert fast[1]["start"] == pytest.approx(slow[1]["start"] / 2, abs=0.002)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "wav"])
def test_each_chunk_is_a_whole_stream(espeak: LocalTTS, fmt: str) -> None:
    text = SENTENCES * 2
    chunks = by_chunk(events(post(espeak, {"text": text, "format": fmt, "chunk_length": 100})))
    assert len(chunks) >= 2
    for chunk in chunks.values():
        decoded = decode(chunk_audio(chunk), fmt)  # fails on any decoder complaint
        duration = chunk[-1]["alignment"]["audio_duration"]
        # Codec padding may add a frame; nothing is lost.
        assert duration - 0.01 <= decoded.duration <= duration + 0.08, (fmt, decoded.duration)


def test_stats_record_the_request(espeak: LocalTTS) -> None:
    events(post(espeak, {"text": SENTENCES, "format": "mp3"}, model="s1"))
    record = espeak.stats()["sessions"][-1]
    assert record["kind"] == "timestamps"
    assert record["text"] == SENTENCES
    assert record["format"] == "mp3" and record["model"] == "s1"
    assert record["end"] == "stop" and record["audio_events"] >= 4


def test_needs_the_key(auth: LocalTTS) -> None:
    body = {"text": "Hi there.", "format": "pcm"}
    assert post(auth, body).status_code == 401
    wrong = post(auth, body, Authorization="Bearer nope")
    assert wrong.status_code == 401 and wrong.json()["status"] == 401
    assert events(post(auth, body, Authorization=f"Bearer {API_KEYS[0]}"))
    assert auth.stats()["handshakes"]["rejected"] == {"401": 2}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "hi", "format": "flac"}, "format"),
        ({"text": "hi", "format": "mp3", "sample_rate": 8000}, "sample_rate"),
        ({"text": "hi", "prosody": {"speed": 5}}, "speed"),
        ({"text": "   "}, "text"),
        ({"format": "pcm"}, "text"),
    ],
)
def test_bad_input_is_400_naming_the_field(tone: LocalTTS, body: dict, field: str) -> None:
    response = post(tone, body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert tone.stats()["sessions"] == []


def test_unreadable_body_is_400(tone: LocalTTS) -> None:
    response = tone.http.post(PATH, content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["message"]


def test_fault_finish_error_sends_an_error_event(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "finish_error", "after_audio": 2, "message": "boom"}]})
    evs = events(post(tone, {"text": SENTENCES, "format": "pcm"}))
    assert evs[-1] == {"event": "error", "message": "boom"}
    assert len(evs) == 3
    assert tone.stats()["sessions"][-1]["end"] == "error"


def test_fault_truncate_loses_events_quietly(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "truncate", "after_audio": 1}]})
    evs = events(post(tone, {"text": SENTENCES, "format": "pcm"}))
    assert len(evs) == 1 and "event" not in evs[0]
    record = tone.stats()["sessions"][-1]
    assert record["end"] == "stop" and record["audio_dropped"] > 0


def test_fault_reject_and_drop(tone: LocalTTS) -> None:
    tone.set_faults(
        {
            "rules": [
                {"action": "reject", "status": 503, "session": 1},
                {"action": "drop", "session": 2, "after_audio": 1},
            ]
        }
    )
    assert post(tone, {"text": "Hi there.", "format": "pcm"}).status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        post(tone, {"text": SENTENCES, "format": "pcm"})
    assert events(post(tone, {"text": "Hi there.", "format": "pcm"}))  # session 3 is fine


@pytest.fixture(scope="module")
def piper_server() -> Iterator[LocalTTS]:
    with LocalTTS(engine="piper", extra_args=["--processes", "1"]) as server:
        yield server


@pytest.mark.integration
def test_piper_places_sentences_exactly(piper_server: LocalTTS) -> None:
    text = "The quick brown fox. Jumps over the lazy dog!"
    evs = events(post(piper_server, {"text": text, "format": "pcm", "sample_rate": 24000}))
    segments = final_segments(evs)
    assert [s["text"] for s in segments] == text.split()
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert segments[-1]["end"] == pytest.approx(evs[-1]["alignment"]["audio_duration"], abs=0.002)
    # The second sentence starts where piper's second sentence audio does: the
    # first sentence's audio ends in a fade to near-silence just before it.
    audio = np.frombuffer(chunk_audio(evs), "<i2")
    at = round(segments[4]["start"] * 24000)
    assert rms(audio[at - 480 : at]) < rms(audio[at : at + 4800]) / 4
