"""The piper engine: ``python -m local_tts --engine piper``, a real server on a free port.

One server for the module (each worker process loads the neural model once).
The audio is checked as speech: long enough for its text, loud, varying like
syllables; ``prosody.speed`` shortens it; the event loop stays free while the
pool synthesises; and the official SDK streams through it end to end.  The
piper extra is part of the dev install, so nothing here is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from local_tts import piper
from tests.local_tts.conftest import decode, rms
from tests.local_tts.test_sdk import SYNC, speak
from tests.local_tts.test_server import (
    LONG,
    Outcome,
    answers_pings_while_synthesising,
    synth,
)
from tests.servers import LocalTTS

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def piper_server() -> Iterator[LocalTTS]:
    """One piper server for the module, two worker processes."""
    with LocalTTS(engine="piper", extra_args=["--processes", "2"]) as server:
        yield server


@pytest.fixture
def server(piper_server: LocalTTS) -> LocalTTS:
    assert piper_server.running, f"piper local_tts died\n{piper_server.output()}"
    piper_server.reset()
    return piper_server


def speech_checks(samples: np.ndarray, rate: int) -> None:
    """Loud, and loud in bursts (syllables, words), with a moving spectrum: not a tone or noise."""
    values = samples.astype(np.float64)
    assert rms(samples) > 1000 and np.abs(values).max() > 8000, f"too quiet: rms {rms(samples)}"
    window = rate // 50  # 20 ms
    frames = values[: len(values) // window * window].reshape(-1, window)
    energy = np.sqrt((frames**2).mean(axis=1))
    loud = energy > 0.1 * energy.max()
    assert 0.3 < loud.mean() < 0.98, f"{loud.mean():.0%} of 20 ms windows are loud"
    assert energy.std() / energy.mean() > 0.5, "loudness is too steady for speech"
    spectrum = np.abs(np.fft.rfft(frames[loud] * np.hanning(window), axis=1))
    peaks = spectrum.argmax(axis=1) * rate / window
    assert np.unique(np.round(peaks / 50)).size >= 5, f"spectral peaks barely move: {peaks}"


def test_the_extra_is_installed() -> None:
    # The dev install includes it: a missing piece is a broken install, not a skip.
    assert piper.missing() == []
    assert piper.sample_rate() == 22050


async def test_speech_grows_with_the_text(server: LocalTTS) -> None:
    short = decode((await synth(server, ["Hello."], "pcm", sample_rate=16000)).data, "pcm", 16000)
    one = decode((await synth(server, [SENTENCE], "pcm", sample_rate=16000)).data, "pcm", 16000)
    two = decode((await synth(server, [LONG], "pcm", sample_rate=16000)).data, "pcm", 16000)
    assert 0.2 < short.duration < 2.0, short.duration
    assert 1.5 < one.duration < 6.0, f"{one.duration:.2f} s for nine words"
    assert short.duration < 0.6 * one.duration < 0.6 * two.duration, (
        short.duration,
        one.duration,
        two.duration,
    )
    speech_checks(one.samples, 16000)
    speech_checks(two.samples, 16000)


async def test_speed_shortens_through_the_length_scale(server: LocalTTS) -> None:
    def seconds(out: Outcome) -> float:
        return decode(out.data, "pcm", 24000).duration

    async def mean_seconds(**request: Any) -> float:
        takes = [await synth(server, [LONG], "pcm", sample_rate=24000, **request) for _ in range(3)]
        return sum(seconds(take) for take in takes) / len(takes)

    # The model draws phoneme lengths with noise: one take's ratio ranges over about
    # 0.63-0.84, so three takes of each are averaged, and the ratio is still loose.
    normal = await mean_seconds()
    fast = await mean_seconds(prosody={"speed": 1.5})
    assert fast < 0.85 * normal, (normal, fast)
    assert fast / normal == pytest.approx(1 / 1.5, rel=0.2)


@pytest.mark.parametrize(("fmt", "rate"), [("wav", 44100), ("mp3", 32000), ("opus", 48000)])
async def test_every_encoder_at_the_requested_rate(server: LocalTTS, fmt: str, rate: int) -> None:
    out = await synth(server, [SENTENCE], fmt, sample_rate=rate)
    audio = decode(out.data, fmt)
    assert audio.sample_rate == rate  # resampled from the model's 22050 Hz
    assert 1.5 < audio.duration < 6.5, audio.duration
    assert rms(audio.samples) > 1000


async def test_text_in_another_script_is_spoken_by_espeak(server: LocalTTS) -> None:
    out = await synth(server, ["你好，世界。今天天气很好。"], "pcm", sample_rate=16000)
    audio = decode(out.data, "pcm", 16000)
    assert audio.duration > 1.0 and rms(audio.samples) > 500


async def test_pings_are_answered_while_synthesising(server: LocalTTS) -> None:
    long_text = " ".join(f"This is sentence number {i} of a long narration." for i in range(24))
    out = await answers_pings_while_synthesising(server, long_text, wait=60)
    assert decode(out.data, "mp3").duration > 30


def test_the_official_sdk_streams_piper_speech(server: LocalTTS) -> None:
    pieces = ["Hello ", "from the ", "official SDK. ", "This voice ", "is a neural one."]
    chunks = speak(SYNC, server, pieces, fmt="wav", sample_rate=24000, speed=1.0)
    audio = decode(b"".join(chunks), "wav")
    assert audio.sample_rate == 24000
    assert 2.0 < audio.duration < 10.0, audio.duration
    speech_checks(audio.samples, 24000)
    stats = server.wait_idle()
    assert [s["text"] for s in stats["sessions"]] == ["".join(pieces)]
    assert stats["sessions"][0]["end"] == "stop"
