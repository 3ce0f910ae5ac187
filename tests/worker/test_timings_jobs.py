"""Captions of real jobs: a Celery worker, local_tts over sockets, moto S3, every part real.

Precision: a job of several segments with paragraph silence and a break is spoken
by espeak-ng; each word of its captions must point at that word's audio in the
decoded output (wav, mp3, m4a) within 30 ms.  The word's audio is the engine's
own: each segment is asked of the same local_tts again through the timestamped
client, with the request the worker sends, and the engine's word events give
where each word starts in that segment's PCM (tests/worker/test_timings_precision.py
explains the measure).  Crash: a job resumed after ``kill -9`` of its worker has
the same captions, byte for byte, as the same job run without interruption.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, sentences
from tests.worker.test_timings_precision import _lag_ms
from worker.audio.decode import first_audio_stream, mono_blocks, open_audio
from worker.fish.client import ProviderConfig
from worker.fish.stream_ts import stream_tts_timestamped
from worker.jobs.markup import job_segments
from worker.jobs.model import CaptionFormat, Job, JobStatus, TimestampLevel
from worker.jobs.synth import tts_request

RATE = 24_000
TEXT = (
    "The first paragraph begins here. It has a second sentence, too.\n\n"
    "A new paragraph follows the silence between them."
    '<break time="1.5s"/>After a break of one and a half seconds, the last words.'
)


@pytest.fixture(scope="module")
def espeak_tts() -> Iterator[LocalTTS]:
    with LocalTTS(engine="espeak") as server:
        yield server


def captions_of(stack: Stack, job: Job, fmt: CaptionFormat) -> str:
    assert job.output is not None
    found = job.output.caption(fmt)
    assert found is not None, job.output
    return stack.storage.get_bytes(found.key).decode()


def decoded(path: Path) -> np.ndarray:
    with open_audio(path) as container:
        stream = first_audio_stream(container, path.name)
        return np.concatenate(list(mono_blocks(container, stream)))


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a"])
def test_caption_words_are_within_30_ms_of_their_audio(
    make_stack: Stacks, espeak_tts: LocalTTS, tmp_path: Path, fmt: str
) -> None:
    stack = make_stack(espeak_tts, workers=1)
    job = stack.submit(
        TEXT,
        format=fmt,
        sample_rate=RATE,
        paragraph_silence_ms=700,
        timestamps=TimestampLevel.WORD,
    )
    done = stack.wait(job.id, timeout=120)
    assert done.status is JobStatus.SUCCEEDED, (done.error, stack.logs())
    assert done.output is not None
    assert {c.format for c in done.output.captions} == set(CaptionFormat)
    marks = json.loads(captions_of(stack, done, CaptionFormat.JSON))
    vtt = captions_of(stack, done, CaptionFormat.VTT)
    assert vtt.startswith("WEBVTT\n") and "After a break of one and a half seconds" in vtt
    assert "<break" not in vtt and "<break" not in json.dumps(marks)

    path = tmp_path / f"out.{fmt}"
    stack.storage.download_file(done.output.key, path)
    audio = decoded(path)
    words = [m for m in marks if m["type"] == "word"]
    config = ProviderConfig(ws_url=stack.settings.provider_ws_url)
    request = tts_request(done)
    errors: list[float | None] = []
    for segment in job_segments(done.request.text, stack.settings.segment_max_chars):
        pcm = bytearray()
        engine = asyncio.run(
            stream_tts_timestamped(
                config,
                request,
                segment.text,
                pcm.extend,
                url=stack.settings.provider_timestamp_url,
            )
        )
        own = np.frombuffer(bytes(pcm), "<i2").astype(np.float32) / 32768
        for local in engine.words:
            final = words.pop(0)
            assert final["text"] == local.text, (final, local)
            errors.append(_lag_ms(audio, own, local.start_ms, final["start_ms"]))
    assert words == []  # every caption word was matched to an engine word
    located = [abs(e) for e in errors if e is not None]
    assert len(located) >= 0.9 * len(errors), errors  # nearly every word found by its sound
    worst = max(located)
    assert worst <= 30, f"{fmt}: worst word {worst:.1f} ms off ({errors})"

    spoken = [m for m in marks if m["type"] == "sentence"]
    assert [m["text"] for m in spoken][:2] == [
        "The first paragraph begins here.",
        "It has a second sentence, too.",
    ]
    assert all(a["end_ms"] <= b["start_ms"] for a, b in itertools.pairwise(spoken))
    assert spoken[-1]["end_ms"] <= round(done.output.duration_s * 1000)
    for m in marks:  # offsets into the text as submitted
        assert TEXT[m["char_start"] : m["char_end"]].startswith(m["text"][:3]), m


@pytest.fixture
def slow_stack(make_stack: Stacks) -> Iterator[Stack]:
    """About a second of wall time per segment, so a worker can be killed mid-job."""
    with LocalTTS(engine="tone", rtf=0.3, ttfb_ms=20) as tts:
        yield make_stack(tts, SHOAL_JOB_LEASE_SECONDS="3", SHOAL_VISIBILITY_TIMEOUT="3600")


def test_the_captions_of_a_job_resumed_after_kill_9_equal_an_uninterrupted_runs(
    slow_stack: Stack,
) -> None:
    stack = slow_stack
    text = sentences(12)
    first = stack.start_worker(concurrency=1)
    resumed = stack.submit(text, format="wav", sample_rate=RATE, timestamps="word")
    deadline = time.monotonic() + 60
    while len(stack.store.segments(resumed.id)) < 4:
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    stack.start_worker(concurrency=1)
    done = stack.wait(resumed.id, timeout=120)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2, done.error

    whole = stack.wait(
        stack.submit(text, format="wav", sample_rate=RATE, timestamps="word").id, timeout=120
    )
    assert whole.status is JobStatus.SUCCEEDED and whole.attempts == 1, whole.error
    for fmt in CaptionFormat:
        assert captions_of(stack, done, fmt) == captions_of(stack, whole, fmt), fmt
    assert len(json.loads(captions_of(stack, done, CaptionFormat.JSON))) > 12


def test_a_segment_whose_timings_come_back_incomplete_is_spoken_again(
    make_stack: Stacks,
) -> None:
    with LocalTTS(engine="tone") as tts:
        stack = make_stack(tts, workers=1)
        # Installed now, so that its first session is the job's, not a readiness check's.
        tts.set_faults({"rules": [{"action": "unaligned", "session": 1, "after_audio": 1}]})
        text = "A sentence whose timings are lost the first time. Then they are not."
        done = stack.wait(stack.submit(text, format="wav", timestamps="sentence").id, 60)
        assert done.status is JobStatus.SUCCEEDED, (done.error, stack.logs())
        requests = [s for s in tts.wait_idle()["sessions"] if s["text"].strip()]
    spoken = Counter(s["text"].strip() for s in requests)
    # The session whose timings broke off was spoken again; no other was.
    assert sorted(spoken.values()) == [1] * (len(spoken) - 1) + [2], spoken
    assert {s["kind"] for s in requests} == {"timestamps"}
    marks = json.loads(captions_of(stack, done, CaptionFormat.JSON))
    assert [m["text"] for m in marks] == [
        "A sentence whose timings are lost the first time.",
        "Then they are not.",
    ]
