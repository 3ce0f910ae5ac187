"""The timestamped client (worker/fish/stream_ts.py) against a real local_tts over HTTP.

PCM reaches the callback in every format; words come back relative to the
segment, at the engine's own positions and at the right characters of the
text sent; failures raise the same provider errors as the live client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from local_tts import espeak
from tests.servers import LocalTTS
from worker.fish import (
    AudioFormat,
    ProviderAuthError,
    ProviderBusy,
    ProviderDropped,
    ProviderFinishError,
    ProviderServerError,
    ProviderTimeout,
    TTSRequest,
)
from worker.fish.client import ProviderConfig, StreamCanceled
from worker.fish.stream_ts import TimedStreamResult, stream_tts_timestamped
from worker.timings import MarkKind

pytestmark = pytest.mark.integration

KEY = "stream-ts-key"
TEXT = (
    "The first sentence is short. The second one is a good deal longer, and it has a clause. "
    "Then a third! And the fourth, which ends the text?"
)


@pytest.fixture(scope="module")
def espeak_tts() -> Iterator[LocalTTS]:
    with LocalTTS(engine="espeak", api_keys=[KEY]) as server:
        yield server


@pytest.fixture(scope="module")
def tone_tts() -> Iterator[LocalTTS]:
    with LocalTTS(engine="tone", rtf=0.01, ttfb_ms=5, api_keys=[KEY]) as server:
        yield server


@pytest.fixture
def tone(tone_tts: LocalTTS) -> LocalTTS:
    tone_tts.set_faults({"rules": []})
    tone_tts.reset()
    return tone_tts


def config(server: LocalTTS, key: str | None = KEY, **kw: float) -> ProviderConfig:
    return ProviderConfig(ws_url=server.ws_url, api_key=key, **kw)  # type: ignore[arg-type]


def speak(
    server: LocalTTS, request: TTSRequest, text: str = TEXT, **kw: object
) -> tuple[bytes, TimedStreamResult]:
    pcm = bytearray()

    async def write(data: bytes) -> None:  # an async callback is awaited
        pcm.extend(data)

    result = asyncio.run(
        stream_tts_timestamped(config(server), request, text, write, **kw)  # type: ignore[arg-type]
    )
    return bytes(pcm), result


def test_pcm_words_are_espeaks_and_point_into_the_text(espeak_tts: LocalTTS) -> None:
    request = TTSRequest(format=AudioFormat.PCM, sample_rate=24000, chunk_length=100)
    pcm, result = speak(espeak_tts, request)
    assert result.chunks >= 2 and result.audio_bytes == len(pcm)
    assert result.duration_ms == len(pcm) // 2 * 1000 // 24000
    assert result.text_bytes == len(TEXT.encode())
    assert [w.text for w in result.words] == TEXT.split()
    for mark in result.marks:
        assert TEXT[mark.char_start : mark.char_end] == mark.text
        assert 0 <= mark.start_ms <= mark.end_ms <= result.duration_ms
    assert [s.text for s in result.sentences] == [
        "The first sentence is short.",
        "The second one is a good deal longer, and it has a clause.",
        "Then a third!",
        "And the fourth, which ends the text?",
    ]
    for a, b in zip(result.sentences, result.sentences[1:], strict=False):
        assert a.end_ms <= b.start_ms
    # Chunk by chunk, the words start where libespeak-ng said, moved by the audio before.
    chunks = chunk_texts(request)
    offset_ms, i = 0.0, 0
    for chunk in chunks:
        timed = espeak.synthesize_timed(chunk, "en-us")
        for word in timed.words:
            assert abs(result.words[i].start_ms - (offset_ms + word.start_ms)) <= 1
            i += 1
        offset_ms += len(timed.pcm) / 2 / timed.sample_rate * 1000
    assert i == len(result.words)


def chunk_texts(request: TTSRequest) -> list[str]:
    from local_tts.timestamps import chunks_of

    return chunks_of(request.model_copy(update={"text": TEXT}))


@pytest.mark.parametrize(
    ("fmt", "rate", "base_rate"),
    [("mp3", 44100, 44100), ("opus", 48000, 24000), ("wav", 16000, 16000)],
)
def test_every_format_reaches_the_callback_as_pcm(
    espeak_tts: LocalTTS, fmt: str, rate: int, base_rate: int
) -> None:
    request = TTSRequest(format="pcm", sample_rate=base_rate, chunk_length=100)
    base_pcm, base = speak(espeak_tts, request)
    sample_rate = 16000 if fmt == "wav" else None
    pcm, result = speak(
        espeak_tts, TTSRequest(format=fmt, sample_rate=sample_rate, chunk_length=100)
    )
    assert result.sample_rate == rate and result.chunks >= 2
    samples = np.frombuffer(pcm, "<i2")
    # Codec padding may lengthen each chunk by a frame or two, no more.
    extra_ms = len(samples) * 1000 / rate - len(base_pcm) // 2 * 1000 / base_rate
    assert -1 <= extra_ms <= result.chunks * 60, extra_ms
    assert [w.text for w in result.words] == [w.text for w in base.words]
    # Words are placed in the audio as kept, padding of earlier chunks included:
    # each sentence's speech begins as far from its mark as in the PCM reply.
    base_samples = np.frombuffer(base_pcm, "<i2")
    for kept, plain in zip(result.sentences, base.sentences, strict=True):
        lead = onset_ms(samples, rate, kept.start_ms * rate // 1000) - kept.start_ms
        at = plain.start_ms * base_rate // 1000
        base_lead = onset_ms(base_samples, base_rate, at) - plain.start_ms
        assert abs(lead - base_lead) <= 10, (fmt, kept.text, lead, base_lead)


def onset_ms(samples: np.ndarray, rate: int, at: int) -> float:
    """Where speech begins from sample ``at``: the first 10 ms louder than a whisper."""
    step = rate // 200
    for start in range(at, len(samples) - 2 * step, step):
        window = samples[start : start + 2 * step].astype(float)
        if np.sqrt(np.mean(window**2)) > 150:
            return start * 1000 / rate
    raise AssertionError(f"no speech after sample {at}")


def test_wrong_key_is_permanent(tone: LocalTTS) -> None:
    with pytest.raises(ProviderAuthError) as info:
        asyncio.run(
            stream_tts_timestamped(config(tone, "nope"), TTSRequest(format="pcm"), "Hi.", print)
        )
    assert info.value.status == 401 and not info.value.retryable


@pytest.mark.parametrize(("status", "error"), [(429, ProviderBusy), (503, ProviderServerError)])
def test_refusals_are_transient(tone: LocalTTS, status: int, error: type[Exception]) -> None:
    tone.set_faults({"rules": [{"action": "reject", "status": status, "session": 1}]})
    with pytest.raises(error):
        speak(tone, TTSRequest(format="pcm"), "Hi there.")


def test_error_event_is_a_finish_error(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "finish_error", "after_audio": 1, "message": "boom"}]})
    with pytest.raises(ProviderFinishError, match="boom"):
        speak(tone, TTSRequest(format="pcm"))


def test_a_cut_connection_is_dropped(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "drop", "after_audio": 1}]})
    with pytest.raises(ProviderDropped):
        speak(tone, TTSRequest(format="pcm"))


def test_truncated_reply_is_short_but_consistent(tone: LocalTTS) -> None:
    full_pcm, full = speak(tone, TTSRequest(format="pcm"))
    tone.set_faults({"rules": [{"action": "truncate", "after_audio": 2}]})
    pcm, result = speak(tone, TTSRequest(format="pcm"))
    assert len(pcm) < len(full_pcm) / 2
    assert result.words and len(result.words) < len(full.words)
    assert all(m.end_ms <= result.duration_ms for m in result.marks)


def test_first_audio_timeout_and_cancel() -> None:
    slow = LocalTTS(engine="tone", ttfb_ms=3000).start()
    try:
        with pytest.raises(ProviderTimeout, match="first audio"):
            asyncio.run(
                stream_tts_timestamped(
                    config(slow, first_audio_timeout=0.3), TTSRequest(format="pcm"), "Hi.", print
                )
            )

        async def canceled() -> None:
            cancel = asyncio.Event()
            asyncio.get_running_loop().call_later(0.2, cancel.set)
            await stream_tts_timestamped(
                config(slow), TTSRequest(format="pcm"), "Hi.", print, cancel=cancel
            )

        with pytest.raises(StreamCanceled):
            asyncio.run(canceled())
    finally:
        slow.stop()


def test_marks_are_words_and_sentences(tone: LocalTTS) -> None:
    _, result = speak(tone, TTSRequest(format="pcm"), "One two. Three")
    assert [m.kind for m in result.marks] == [MarkKind.SENTENCE] * 2 + [MarkKind.WORD] * 3
    assert result.sentences[0].start_ms == result.words[0].start_ms
    assert result.sentences[0].end_ms == result.words[1].end_ms
