"""Word marks land where the words sound in the final file: the timings parts together.

Segments are spoken by a real local_tts (espeak-ng) through the timestamped
client; they are laid out as an assembler does (head silence, paragraph
silence, a break) with a :class:`TimelineBuilder` filled on the way, written
with shoal's own sinks as wav, mp3 and m4a, and decoded again.  Each word's
placed mark must point at that word's audio: a window of the segment's own
PCM from the word's start is found in the decoded file within 30 ms of the
mark (the precision the issue asks for; it is in fact within a few samples).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import LocalTTS
from worker.audio.decode import first_audio_stream, mono_blocks, open_audio
from worker.audio.formats import OutputFormat
from worker.audio.sinks import open_sink
from worker.fish import AudioFormat, TTSRequest
from worker.fish.client import ProviderConfig
from worker.fish.stream_ts import stream_tts_timestamped
from worker.timings import Mark, MarkKind, TimelineBuilder, tidy

pytestmark = pytest.mark.integration

RATE = 24000
SEGMENTS = (
    "The first paragraph begins here. It has a second sentence, too.",
    "A new paragraph follows the silence between them.",
    "After a break of one and a half seconds, the last words.",
)
HEAD_MS, PARAGRAPH_MS, BREAK_MS = 300, 700, 1500


@pytest.fixture(scope="module")
def spoken() -> Iterator[list[tuple[np.ndarray, tuple[Mark, ...]]]]:
    """Each segment's PCM (float) and its marks, from a real espeak local_tts."""
    out = []
    with LocalTTS(engine="espeak") as server:
        config = ProviderConfig(ws_url=server.ws_url)
        for text in SEGMENTS:
            pcm = bytearray()
            request = TTSRequest(format=AudioFormat.PCM, sample_rate=RATE, chunk_length=100)
            result = asyncio.run(stream_tts_timestamped(config, request, text, pcm.extend))
            samples = np.frombuffer(bytes(pcm), "<i2").astype(np.float32) / 32768
            out.append((samples, result.marks))
    yield out


@pytest.mark.parametrize(("fmt", "bitrate"), [("wav", None), ("mp3", 64), ("m4a", 64)])
def test_words_are_within_30_ms_in_the_final_file(
    spoken: list[tuple[np.ndarray, tuple[Mark, ...]]], tmp_path: Path, fmt: str, bitrate: int | None
) -> None:
    gaps = [HEAD_MS, PARAGRAPH_MS, BREAK_MS]  # silence before each segment
    builder = TimelineBuilder(RATE)
    blocks: list[np.ndarray] = []
    written = 0
    for index, ((pcm, _), gap_ms) in enumerate(zip(spoken, gaps, strict=True)):
        silence = np.zeros(gap_ms * RATE // 1000, np.float32)
        blocks.append(silence)
        written += len(silence)
        builder.segment(index, written, len(pcm))
        blocks.append(pcm)
        written += len(pcm)
    timeline = builder.build(written)
    placed = tidy(timeline.place_all({i: s[1] for i, s in enumerate(spoken)}), timeline.duration_ms)

    path = tmp_path / f"out.{fmt}"
    sink = open_sink(OutputFormat(fmt), path, RATE, bitrate)
    for block in blocks:
        sink.write(block)
    sink.close()
    with open_audio(path) as container:
        stream = first_audio_stream(container, path.name)
        decoded = np.concatenate(list(mono_blocks(container, stream)))
    # The m4a declares its length in its time base: it may round by a sample or two.
    assert abs(len(decoded) - written) <= 2

    words = [m for m in placed if m.kind is MarkKind.WORD]
    assert len(words) == sum(len(text.split()) for text in SEGMENTS)
    errors: list[float | None] = []
    for index, (pcm, marks) in enumerate(spoken):
        local = [m for m in marks if m.kind is MarkKind.WORD]
        for word, final in zip(local, timeline.place(index, local), strict=True):
            errors.append(_lag_ms(decoded, pcm, word.start_ms, final.start_ms))
    located = [abs(e) for e in errors if e is not None]
    assert len(located) >= 0.9 * len(errors), errors  # nearly every word found by its sound
    worst = max(located)
    assert worst <= 30, f"{fmt}: worst word {worst:.1f} ms off ({errors})"
    if fmt == "wav":
        assert worst <= 1  # lossless: the very samples, where the marks say (whole ms)
    # Sentences never overlap and never run past the audio.
    sentences = [m for m in placed if m.kind is MarkKind.SENTENCE]
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(sentences))
    assert sentences[-1].end_ms <= written * 1000 // RATE


def _lag_ms(decoded: np.ndarray, pcm: np.ndarray, local_ms: int, final_ms: int) -> float | None:
    """How far (ms) the word's audio sits from its mark in the decoded file: where the
    word's first 100 ms of the segment's own PCM fit the decoded file best; None for a
    word too short or too quiet to be found by its sound."""
    start = local_ms * RATE // 1000
    probe = pcm[start : start + RATE // 10]
    if len(probe) < RATE // 20 or np.abs(probe).max() < 0.01:
        return None
    at = final_ms * RATE // 1000
    reach = RATE // 20  # look 50 ms either side
    lags = range(-min(reach, at), reach + 1)
    misfit = [
        float(np.sum((decoded[at + lag : at + lag + len(probe)] - probe) ** 2)) for lag in lags
    ]
    return lags[int(np.argmin(misfit))] * 1000 / RATE
