"""A running job's progress tells its phases apart, and its output is encoded as
segments finish: a real worker, a paced local_tts, moto S3 and Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.audio import probe
from worker.jobs.model import JobStatus, Phase, Progress

# Six paragraphs: six segments (the test stack cuts at 60 characters).
TEXT = "\n\n".join(f"Paragraph {n} says a few words, enough for a second or two." for n in range(6))


@pytest.fixture(scope="module")
def paced_tts() -> Iterator[LocalTTS]:
    """Slow enough that segments finish well apart from one another."""
    with LocalTTS(engine="tone", rtf=0.3, ttfb_ms=10) as server:
        yield server


@pytest.fixture
def stack(make_stack: Stacks, paced_tts: LocalTTS) -> Stack:
    return make_stack(paced_tts, SHOAL_JOB_PARALLEL_SEGMENTS="2")


def _progress_events(stack: Stack, job_id: str, pubsub: object, timeout: float) -> list[Progress]:
    """Every progress the job published until it ended."""
    seen: list[Progress] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)  # type: ignore[attr-defined]
        if message is not None and message["type"] == "pmessage":
            event = json.loads(message["data"])
            if event.get("type") == "progress":
                seen.append(Progress.model_validate(event["progress"]))
        job = stack.store.get(job_id)
        if job is not None and job.status.terminal:
            break
    return seen


def test_progress_goes_through_synthesising_encoding_uploading(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_worker()
    pubsub = stack.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(stack.keys.job_events("*"))
    try:
        job = stack.submit(TEXT, format="mp3")
        events = _progress_events(stack, job.id, pubsub, timeout=90)
    finally:
        pubsub.close()
    done = stack.wait(job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    total = done.progress.segments_total
    assert total == 6
    phases = [p.phase for p in events]
    # In this order, each at least once, never back.
    order = [Phase.SYNTHESISING, Phase.ENCODING, Phase.UPLOADING]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == order
    # Encoding turns the phase the moment the last segment is in; by then the
    # segments before it were already being encoded.
    first_encoding = next(p for p in events if p.phase is Phase.ENCODING)
    assert first_encoding.segments_done == total
    assert first_encoding.segments_encoded >= 1
    assert all(p.segments_done < total for p in events if p.phase is Phase.SYNTHESISING)
    uploading = events[-1]
    assert uploading.phase is Phase.UPLOADING and uploading.segments_encoded == total
    # What the record (and so GET /v1/jobs/{id}) keeps: the last phase.
    assert done.progress.phase is Phase.UPLOADING
    path = tmp_path / "out.mp3"
    assert done.output is not None
    stack.storage.download_file(done.output.key, path)
    assert probe(path).duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)


def test_a_long_output_goes_up_while_it_is_encoded(
    make_stack: Stacks, tone_tts: LocalTTS, tmp_path: Path
) -> None:
    """Three 8 MiB parts of WAV: the middle one goes up before the last segment is in."""
    stack = make_stack(tone_tts, SHOAL_SEGMENT_MAX_CHARS="400")
    worker = stack.start_worker()
    sentence = "This sentence is spoken many times over, to make a long file. "
    text = "\n\n".join(sentence * 6 for _ in range(16))
    job = stack.submit(text, format="wav", sample_rate=24000, cache=False)
    done = stack.wait(job.id, timeout=120)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.output is not None and done.output.bytes > 2 * (8 << 20)
    info = stack.fetch_output(done, tmp_path / "out.wav")
    assert info.duration_s == pytest.approx(done.progress.audio_seconds, rel=0.01)
    deadline = time.monotonic() + 10  # the worker's log is written a moment later
    while "sent while it grew" not in worker.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(ln for ln in worker.log().splitlines() if "sent while it grew" in ln)
    sent_early = int(line.split(" sent while it grew")[0].rsplit(", ", 1)[1])
    assert sent_early >= 1, line
    assert stack.storage.list_incomplete_uploads() == []
