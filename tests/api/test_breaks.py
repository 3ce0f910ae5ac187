"""Break tags over HTTP: a malformed one is refused naming its position; a good one is
exact silence in the output and never reaches local_tts.

The ``idle`` stack has no worker (queues can be counted); the ``live`` test runs
jobs through a real worker and local_tts's tone engine and measures the wav.
"""

from __future__ import annotations

import io
import wave

import numpy as np

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages
from tests.api.test_e2e import poll
from tests.api.test_lexicons import create

#: Samples closer to zero than this (about -60 dBFS) count as silence.
QUIET = 33


def test_a_malformed_break_is_refused_naming_its_position(idle: ApiEnv) -> None:
    with idle.client("cancel") as http:
        before = queued_messages(idle.stack)
        for text, position in [
            ("Hello <break/> world.", 6),
            ('Fine <break time="1s"/>, then <break time="12s"/>.', 30),
            ('<break time="-2s"/>Hi.', 0),
            ('Hi <break time="1s">.', 3),
        ]:
            answer = http.post("/v1/jobs", json={"text": text})
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["field"] == "text", error
            assert f"at character {position}" in error["message"], error
            item = {"title": "One", "text": text}
            batch = http.post("/v1/batches", json={"items": [item]})
            assert batch.status_code == 422, batch.text
        assert queued_messages(idle.stack) == before
        assert http.get("/v1/jobs").json()["data"] == []


def test_breaks_are_not_billed_nor_respelled(idle: ApiEnv) -> None:
    tag = '<break time="1s"/>'
    with idle.client("list") as http:
        lex = create(http, "tags", [{"grapheme": "time", "alias": "thyme"}])
        made = http.post(
            "/v1/jobs", json={"text": f"Some time {tag}later.", "lexicons": [lex["id"]]}
        )
        assert made.status_code == 202, made.text
        job = made.json()
    assert job["billing"]["utf8_bytes"] == len(b"Some thyme later.")
    stored = idle.stack.store.get(job["id"])
    assert stored is not None and stored.request.text == f"Some thyme {tag}later."


def _samples(wav_bytes: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def _quiet_run_from(samples: np.ndarray, start: int) -> int:
    """Length of the run of near-zero samples that starts at ``start``."""
    loud = np.flatnonzero(np.abs(samples[start:].astype(np.int32)) > QUIET)
    return int(loud[0]) if len(loud) else len(samples) - start


def _longest_quiet_run(samples: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of near-zero samples."""
    quiet = np.concatenate(([0], (np.abs(samples.astype(np.int32)) <= QUIET).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(quiet))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])


def test_a_break_is_exact_silence_and_never_reaches_local_tts(live: ApiEnv) -> None:
    text = "Zanzibar wakes slowly. {}Quokkas answer the gulls."
    paused = text.format('<break time="1.5s"/>')
    # The same text with a 0 ms break is cut in the same two segments, so it
    # measures the engine's own trailing and leading silence at that join.
    joined = text.format('<break time="0ms"/>')
    with live.client("voice") as http:
        ids = [
            http.post("/v1/jobs", json={"text": t, "format": "wav"}).json()["id"]
            for t in (paused, joined)
        ]
        jobs = [poll(http, job_id) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 2, [j["error"] for j in jobs]
        storage = live.stack.storage
        audio = [
            storage.client.get_object(Bucket=storage.bucket, Key=j["output"]["key"])["Body"].read()
            for j in jobs
        ]
    received = [s["text"] for s in live.stack.tts.stats()["sessions"]]
    assert any("Zanzibar" in t for t in received) and any("Quokkas" in t for t in received)
    assert not any("<break" in t or ("Quokkas" in t and "Zanzibar" in t) for t in received)

    (with_break, rate), (without, same_rate) = (_samples(a) for a in audio)
    assert rate == same_rate
    start, length = _longest_quiet_run(with_break)
    # The audio before the join is the same samples in both, so the join's quiet
    # run starts at the same sample in both.
    assert np.array_equal(with_break[:start], without[:start])
    engine_own = _quiet_run_from(without, start)
    measured_ms = (length - engine_own) / rate * 1000
    assert abs(measured_ms - 1500) <= 20, measured_ms
    assert len(with_break) - len(without) == round(1.5 * rate)
