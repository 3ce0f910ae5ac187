"""Fault tests of jobs: a real Celery worker, local_tts with scripted faults, moto S3, Redis.

Each test breaks one thing on purpose — the provider (drops, ``finish``/error,
429 and 500 handshakes, a refused key, faults that never stop), the input
(unreadable reference audio, whitespace), the user (cancellation) or the
storage (an S3 outage behind a TCP proxy) — and checks what the job record,
the provider's own statistics and the bucket say afterwards.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.s3 import MotoS3, TcpProxy
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, sentences
from worker.jobs.model import ErrorCode, Job, JobStatus, ReferenceClip
from worker.jobs.text import segment_text

PROVIDER_RATE = 24000  # wav at 24 kHz is requested from the provider as PCM at 24 kHz


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_tts() -> Iterator[LocalTTS]:
    """About 0.8 s of wall time per 50-character segment: jobs long enough to interrupt."""
    with LocalTTS(engine="tone", rtf=0.2, ttfb_ms=20) as server:
        yield server


@pytest.fixture(scope="module")
def shared(
    redis_url: str, tone_tts: LocalTTS, s3_server: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One stack and worker with the default settings, for tests that only submit jobs."""
    with Stacks(redis_url, s3_server.endpoint_url, tmp_path_factory.mktemp("shared")) as make:
        yield make(tone_tts, workers=1)


@pytest.fixture
def stack(shared: Stack) -> Iterator[Stack]:
    """The shared stack with a clean provider: no faults, zeroed statistics."""
    shared.tts.wait_idle()
    shared.tts.clear_faults()
    shared.tts.reset()
    yield shared
    shared.tts.clear_faults()


class Events:
    """Every event published on the stack's job channels, collected by a thread."""

    def __init__(self, st: Stack) -> None:
        self.seen: list[dict[str, Any]] = []
        self._pubsub = st.redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(**{st.keys.job_events("*"): self._handle})
        self._pubsub.get_message(timeout=2.0)  # the confirmation: subscribed from now on
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _handle(self, message: dict[str, Any]) -> None:
        self.seen.append(json.loads(message["data"]))

    def of(self, job_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["job_id"] == job_id and e["type"] == kind]

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self._pubsub.close()


# -- helpers -------------------------------------------------------------------


def _by_text(sessions: list[dict[str, Any]], end: str | None = None) -> Counter[str]:
    return Counter(s["text"].strip() for s in sessions if end is None or s["end"] == end)


def _check_output(st: Stack, job: Job, path: Path) -> None:
    """The output decodes whole, and its length is the sum of its segments (within 1%)."""
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.output is not None
    assert job.progress.segments_done == job.progress.segments_total
    info = st.fetch_output(job, path)
    assert info.duration_s == pytest.approx(job.progress.audio_seconds, rel=0.01)
    assert job.output.duration_s == pytest.approx(info.duration_s, rel=0.01)
    # Staging is cleaned just after the job is marked succeeded.
    _wait_for(
        "staging cleaned",
        lambda: st.staged(job.id) == [] and st.store.segments(job.id) == {},
        5,
        st,
    )
    assert st.storage.list_incomplete_uploads() == []


def _wait_for(what: str, check: Callable[[], bool], timeout: float, st: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{st.logs()}")
        time.sleep(0.02)


def _wav(seconds: float, rate: int = 16000) -> bytes:
    """A short, valid WAV: a 220 Hz sine."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate)))
        for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


# -- transient provider faults ---------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "failed_end", "message"),
    [
        ({"action": "drop", "session": 1, "after_audio": 1}, "drop", "closed the connection"),
        (
            {"action": "finish_error", "session": 1, "after_audio": 1, "message": "boom"},
            "error",
            "boom",
        ),
        ({"action": "reject", "status": 429, "session": 1}, None, "HTTP 429"),
        ({"action": "reject", "status": 500, "session": 1}, None, "HTTP 500"),
    ],
    ids=["drop", "finish_error", "429", "500"],
)
def test_transient_provider_fault_is_retried_to_success(
    stack: Stack, rule: dict[str, Any], failed_end: str | None, message: str, tmp_path: Path
) -> None:
    stack.tts.set_faults({"rules": [rule]})
    events = Events(stack)
    try:
        job = stack.submit(sentences(3), format="wav", sample_rate=PROVIDER_RATE)
        done = stack.wait(job.id)
    finally:
        events.close()
    _check_output(stack, done, tmp_path / "out.wav")
    # Recovered inside the attempt by the segment's own quick retry...
    assert done.attempts == 1
    assert done.error is None  # cleared on success
    # ...but the failure was on the record while it was being retried.
    errors = events.of(job.id, "error")
    assert len(errors) == 1, errors
    assert errors[0]["error"]["code"] == ErrorCode.PROVIDER_UNAVAILABLE
    assert errors[0]["error"]["retryable"] is True
    assert message in errors[0]["error"]["message"]

    stats = stack.tts.wait_idle()
    sessions = stats["sessions"]
    texts = [s.strip() for s in _by_text(sessions)]
    assert len(texts) == done.progress.segments_total == 3
    # Each segment was finished by exactly one session; the failed one was tried again.
    assert _by_text(sessions, "stop") == Counter(texts)
    if failed_end is None:
        assert stats["handshakes"]["rejected"] == {str(rule["status"]): 1}
        assert len(sessions) == 3
    else:
        failed = [s for s in sessions if s["end"] == failed_end]
        assert len(failed) == 1 and failed[0]["audio_events"] >= 1
        assert _by_text(sessions)[failed[0]["text"].strip()] == 2
    # The output holds the audio of the finished sessions only: nothing of the broken one.
    finished = sum(s["audio_bytes"] for s in sessions if s["end"] == "stop")
    assert done.progress.audio_seconds == pytest.approx(finished / 2 / PROVIDER_RATE, abs=0.01)


# -- permanent failures ----------------------------------------------------------


def test_refused_key_fails_at_once(make_stack: Stacks) -> None:
    with LocalTTS(engine="tone", rtf=0.01, ttfb_ms=10, api_keys=["right"]) as tts:
        st = make_stack(tts, SHOAL_FISH_API_KEY="wrong")
        st.start_worker()
        job = st.submit(sentences(3), format="wav")
        done = st.wait(job.id)
        assert done.status is JobStatus.FAILED
        assert done.attempts == 1
        assert done.error is not None
        assert done.error.code == ErrorCode.PROVIDER_AUTH
        assert "refused the API key" in done.error.message
        assert done.error.retryable is False
        time.sleep(1.0)  # long enough for a retry (base delay 0.2 s) to show
        stats = tts.stats()
        rejected = stats["handshakes"]["rejected"]
        # One handshake per segment at most (those already running in parallel), no retries.
        assert set(rejected) == {"401"} and 1 <= rejected["401"] <= 3
        assert stats["handshakes"]["accepted"] == 0
        again = st.store.get(job.id)
        assert again is not None and again.attempts == 1 and again.status is JobStatus.FAILED
        assert again.output is None
        assert st.staged(job.id) == []
        assert st.store.segments(job.id) == {}


def test_unreadable_reference_fails_at_once_and_a_readable_one_works(
    stack: Stack, tmp_path: Path
) -> None:
    bad = stack.submit(
        "Say it like me.", format="wav", references=[ReferenceClip(audio=b"not audio", text="x")]
    )
    done = stack.wait(bad.id)
    assert done.status is JobStatus.FAILED
    assert done.attempts == 1
    assert done.error is not None
    assert done.error.code == ErrorCode.REFERENCE_AUDIO
    assert "references[0].audio is unreadable" in done.error.message
    # Refused before any provider session: nothing billed.
    stats = stack.tts.stats()
    assert stats["sessions_started"] == 0 and stats["handshakes"]["rejected"] == {}

    good = stack.submit(
        "Say it like me.",
        format="wav",
        references=[ReferenceClip(audio=_wav(0.5), text="a tone")],
    )
    _check_output(stack, stack.wait(good.id), tmp_path / "good.wav")


# -- transient faults that do not stop ---------------------------------------------


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"action": "reject", "status": 500}, "provider handshake failed with HTTP 500"),
        ({"action": "finish_error", "after_audio": 0, "message": "boom"}, "boom"),
    ],
    ids=["reject", "finish_error"],
)
def test_endless_transient_faults_give_up_within_max_attempts_sessions(
    make_stack: Stacks, tone_tts: LocalTTS, rule: dict[str, Any], says: str
) -> None:
    """Every session fails: quick retries in attempt 1, then attempt 2, and the first
    segment to have had ``max_attempts`` sessions fails the job; none had more."""
    st = make_stack(tone_tts, SHOAL_MAX_ATTEMPTS="4")
    st.start_worker()
    tone_tts.set_faults({"rules": [rule]})
    text = sentences(3)
    index_of = {s.text.strip(): s.index for s in segment_text(text, st.settings.segment_max_chars)}
    segments = len(index_of)
    job = st.submit(text, format="wav")
    done = st.wait(job.id, timeout=60)
    assert done.status is JobStatus.FAILED, done
    # Three sessions in a row per segment in attempt 1; the fourth, in attempt 2, is the last.
    assert done.attempts == 2
    assert done.error is not None
    assert done.error.code == ErrorCode.PROVIDER_UNAVAILABLE
    assert re.fullmatch(
        rf"gave up after 4 provider sessions of segment \d: .*{re.escape(says)}.*",
        done.error.message,
    ), done.error.message
    stats = tone_tts.wait_idle()
    # The worker's count, and the provider's: never more than max_attempts per segment.
    counted = st.store.sessions(job.id)
    assert len(counted) == segments and max(counted.values()) == 4, counted
    if rule["action"] == "reject":
        rejected = stats["handshakes"]["rejected"]["500"]
        assert 4 <= rejected <= sum(counted.values()) <= segments * 4
    else:
        by_text = _by_text(stats["sessions"])
        assert len(by_text) == segments and max(by_text.values()) == 4, by_text
        assert all(n <= counted[index_of[text]] for text, n in by_text.items())
    started = stats["sessions_started"]
    time.sleep(1.5)
    after = tone_tts.stats()
    assert after["sessions_started"] == started
    assert after["handshakes"]["rejected"] == stats["handshakes"]["rejected"]
    assert st.staged(job.id) == []


def test_next_attempt_resumes_from_finished_segments(
    make_stack: Stacks, tone_tts: LocalTTS, tmp_path: Path
) -> None:
    st = make_stack(tone_tts, SHOAL_JOB_PARALLEL_SEGMENTS="1")
    st.start_worker()
    # Segment 0 succeeds; segment 1 is refused three times, so attempt 1 fails.
    rules = [{"action": "reject", "status": 503, "session": n} for n in (2, 3, 4)]
    tone_tts.set_faults({"rules": rules})
    job = st.submit(sentences(3), format="wav", sample_rate=PROVIDER_RATE)
    done = st.wait(job.id)
    _check_output(st, done, tmp_path / "out.wav")
    assert done.attempts == 2
    sessions = tone_tts.wait_idle()["sessions"]
    # Every segment streamed once: the second attempt did not redo segment 0.
    assert _by_text(sessions) == _by_text(sessions, "stop")
    assert set(_by_text(sessions).values()) == {1} and len(sessions) == 3


# -- cancellation ------------------------------------------------------------------


def test_cancel_stops_streaming_and_leaves_nothing(make_stack: Stacks, slow_tts: LocalTTS) -> None:
    st = make_stack(slow_tts)
    st.start_worker()
    job = st.submit(sentences(20), format="wav")

    def streaming() -> bool:
        j = st.store.get(job.id)
        busy = j is not None and j.progress.segments_done >= 2
        return busy and slow_tts.stats()["sessions_active"] >= 1

    _wait_for("two segments done and more streaming", streaming, 30, st)
    assert st.store.transition(job.id, JobStatus.CANCELED)
    canceled_at = time.monotonic()
    slow_tts.wait_idle(timeout=3.0)
    assert time.monotonic() - canceled_at < 3.0
    started = slow_tts.stats()["sessions_started"]
    _wait_for(
        "staging cleaned",
        lambda: st.staged(job.id) == [] and st.store.segments(job.id) == {},
        10,
        st,
    )
    time.sleep(1.5)
    stats = slow_tts.stats()
    assert stats["sessions_started"] == started, "a session started after the cancel"
    assert stats["sessions_active"] == 0
    final = st.store.get(job.id)
    assert final is not None and final.status is JobStatus.CANCELED and final.output is None
    assert final.progress.segments_done < 20
    key = st.storage.output_key({"tenant": "t1", "job_id": job.id, "ext": "wav"})
    assert not st.storage.exists(key)
    assert st.staged(job.id) == []
    assert st.store.segments(job.id) == {}
    assert st.storage.list_incomplete_uploads() == []


def test_cancel_during_backoff_cleans_staging(make_stack: Stacks, tone_tts: LocalTTS) -> None:
    st = make_stack(
        tone_tts,
        SHOAL_JOB_PARALLEL_SEGMENTS="1",
        SHOAL_RETRY_BASE_DELAY="3",
        SHOAL_RETRY_MAX_DELAY="3",
    )
    st.start_worker()
    rules = [{"action": "reject", "status": 500, "session": n} for n in (2, 3, 4)]
    tone_tts.set_faults({"rules": rules})
    job = st.submit(sentences(3), format="wav")
    # Attempt 1 checkpointed segment 0, then gave up on segment 1: now in its backoff.
    _wait_for(
        "attempt 1 failed",
        lambda: (
            tone_tts.stats()["handshakes"]["rejected"].get("500") == 3
            and len(st.staged(job.id)) == 1
        ),
        20,
        st,
    )
    time.sleep(0.3)
    assert st.store.transition(job.id, JobStatus.CANCELED)
    _wait_for(
        "staging cleaned",
        lambda: st.staged(job.id) == [] and st.store.segments(job.id) == {},
        10,
        st,
    )
    final = st.store.get(job.id)
    assert final is not None and final.status is JobStatus.CANCELED
    assert tone_tts.stats()["sessions_started"] == 1


# -- storage outage ----------------------------------------------------------------


@pytest.mark.parametrize("when", ["segments", "final"])
def test_s3_outage_is_ridden_out(
    make_stack: Stacks,
    slow_tts: LocalTTS,
    s3_proxy: TcpProxy,
    tmp_path: Path,
    when: str,
) -> None:
    st = make_stack(
        slow_tts,
        s3_endpoint=s3_proxy.url,
        # A final file above one part, so it goes up as a multipart upload.
        SHOAL_S3_MULTIPART_CHUNK_BYTES=str(5 << 20),
    )
    st.start_worker()
    job = st.submit(sentences(20), format="wav", sample_rate=44100)

    def reached() -> bool:
        j = st.store.get(job.id)
        if j is None:
            return False
        p = j.progress
        return p.segments_done >= 3 if when == "segments" else p.segments_done == 20

    deadline = time.monotonic() + 60
    while not reached():
        assert time.monotonic() < deadline, st.logs()
        time.sleep(0.005)
    s3_proxy.stop()
    time.sleep(2.0)
    s3_proxy.start()
    done = st.wait(job.id, timeout=60)
    _check_output(st, done, tmp_path / "out.wav")
    assert done.output is not None and done.output.bytes > 5 << 20
    log = st.workers[0].log_path.read_text()
    if when == "final":
        assert f"upload of {st.storage.url(done.output.key)} failed" in log, log[-4000:]
    else:
        assert re.search(r"upload of s3://\S+/_staging/\S+ failed \(attempt", log), log[-4000:]


# -- edge cases --------------------------------------------------------------------


def test_whitespace_only_segments(stack: Stack, tmp_path: Path) -> None:
    text = "Hello there, river.\n\n" + " " * 150 + "\n\nThe end."
    blank = [s for s in segment_text(text, 60) if not s.text.strip()]
    assert blank, "the text should have a segment of whitespace alone"
    job = stack.submit(text, format="mp3", sample_rate=44100)
    done = stack.wait(job.id)
    _check_output(stack, done, tmp_path / "out.mp3")
    # Whitespace costs no provider session.
    sessions = stack.tts.wait_idle()["sessions"]
    assert len(sessions) == done.progress.segments_total - len(blank)
    assert all(s["text"].strip() for s in sessions)


def test_text_of_whitespace_alone_fails_at_once(stack: Stack) -> None:
    job = stack.submit(" \n\n \t ", format="mp3")
    done = stack.wait(job.id)
    assert done.status is JobStatus.FAILED
    assert done.attempts == 1
    assert done.error is not None and "nothing to say" in done.error.message
    assert stack.tts.stats()["sessions_started"] == 0


def test_parallel_segments_are_assembled_in_text_order(
    make_stack: Stacks, tone_tts: LocalTTS, tmp_path: Path
) -> None:
    # A long paragraph before short ones: in parallel, the short ones finish first.
    paragraphs = []
    for i in range(3):
        paragraphs += [f"Paragraph {i} is long and slow, with words and more words.", "Yes.", "No."]
    text = "\n\n".join(paragraphs)
    results = {}
    for parallel in ("3", "1"):
        st = make_stack(tone_tts, SHOAL_JOB_PARALLEL_SEGMENTS=parallel)
        st.start_worker()
        done = st.wait(st.submit(text, format="wav").id)
        _check_output(st, done, tmp_path / f"out{parallel}.wav")
        assert done.output is not None and done.progress.segments_total == 9
        results[parallel] = (done.output.sha256, done.output.duration_s)
        st.close()
    assert results["3"] == results["1"]
