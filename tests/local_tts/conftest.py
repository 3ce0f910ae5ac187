"""Fixtures and helpers for the local_tts conformance tests.

Servers are real subprocesses (:class:`tests.servers.LocalTTS`).  The shared
ones live for the whole test session; each test gets them with the fault plan
cleared and the counters zeroed.  Tests that need special flags start their
own with :func:`local_tts_factory`.

The audio helpers below decode what the server sent with PyAV (or numpy for
raw pcm) so tests check real audio, not byte counts.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import av.logging
import numpy as np
import pytest

from tests.servers import LocalTTS

#: Speed of the fast synthetic engine: 1 s of audio costs 10 ms.
FAST_RTF = 0.01
FAST_TTFB_MS = 5.0
#: The shared tone server refuses messages above this (tests send one bigger).
TONE_MAX_MESSAGE_BYTES = 64 * 1024
API_KEYS = ("key-one", "key-two")


# -- servers -------------------------------------------------------------------


@pytest.fixture(scope="session")
def tone_server() -> Iterator[LocalTTS]:
    """Synthetic engine, fast, no auth, no concurrency limit."""
    with LocalTTS(
        engine="tone",
        rtf=FAST_RTF,
        ttfb_ms=FAST_TTFB_MS,
        max_message_bytes=TONE_MAX_MESSAGE_BYTES,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def espeak_server() -> Iterator[LocalTTS]:
    """Real speech (espeak-ng), no auth."""
    with LocalTTS(engine="espeak") as server:
        yield server


@pytest.fixture(scope="session")
def auth_server() -> Iterator[LocalTTS]:
    """Synthetic engine that accepts only the keys in :data:`API_KEYS`."""
    with LocalTTS(engine="tone", rtf=FAST_RTF, ttfb_ms=FAST_TTFB_MS, api_keys=API_KEYS) as server:
        yield server


def _fresh(server: LocalTTS) -> LocalTTS:
    assert server.running, f"shared local_tts died\n{server.output()}"
    server.set_faults({"rules": []})
    server.reset()
    return server


@pytest.fixture
def tone(tone_server: LocalTTS) -> LocalTTS:
    """The shared tone server with no faults and zeroed counters."""
    return _fresh(tone_server)


@pytest.fixture
def espeak(espeak_server: LocalTTS) -> LocalTTS:
    """The shared espeak server with no faults and zeroed counters."""
    return _fresh(espeak_server)


@pytest.fixture
def auth(auth_server: LocalTTS) -> LocalTTS:
    """The shared server with API keys, no faults, zeroed counters."""
    return _fresh(auth_server)


@pytest.fixture
def local_tts_factory() -> Iterator[Callable[..., LocalTTS]]:
    """Start servers with special flags; all are stopped when the test ends."""
    started: list[LocalTTS] = []

    def start(**kwargs: Any) -> LocalTTS:
        server = LocalTTS(**kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


# -- audio ---------------------------------------------------------------------

#: ffmpeg warnings that are expected of a stream written on the fly (no
#: duration in the header); anything else at WARNING or worse fails a decode.
_BENIGN = re.compile(r"Estimating duration from bitrate", re.IGNORECASE)
#: A WAV whose data size is a placeholder ends "early": ffmpeg flags the short
#: last packet.  Harmless, and the sample count is checked exactly instead.
_BENIGN_WAV = re.compile(r"Packet corrupt", re.IGNORECASE)
_CONTAINER = {"mp3": "mp3", "opus": "ogg", "wav": "wav"}
#: The codec each format must carry (opus means Ogg Opus: the ogg demuxer finds it).
CODECS = {
    "pcm": {"pcm_s16le"},
    "wav": {"pcm_s16le"},
    "mp3": {"mp3", "mp3float"},
    "opus": {"opus", "libopus"},
}
WAV_RIFF_PLACEHOLDER = 0xFFFFFF24
WAV_DATA_PLACEHOLDER = 0xFFFFFF00


@dataclass(frozen=True)
class Decoded:
    """Audio decoded from a session's joined ``audio`` events."""

    sample_rate: int
    samples: np.ndarray  # int16 mono
    codec: str = "pcm_s16le"

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes, fmt: str, sample_rate: int | None = None) -> Decoded:
    """Decode joined audio of ``fmt``; fails the test on any decoder complaint.

    ``pcm`` has no header, so its rate must be given.  ``wav`` is also checked
    for the single placeholder header the contract promises.
    """
    assert data, f"no {fmt} audio at all"
    if fmt == "pcm":
        assert sample_rate is not None
        assert len(data) % 2 == 0, f"pcm of {len(data)} bytes is not whole s16 samples"
        return Decoded(sample_rate, np.frombuffer(data, "<i2").copy())
    wav_samples = _check_wav_header(data) if fmt == "wav" else None
    previous = av.logging.get_level()
    previous_skip = av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    # Delivered at once, not held back as "repeated N times" for a later capture.
    av.logging.set_skip_repeated(False)
    chunks: list[np.ndarray] = []
    rates: set[int] = set()
    channels: set[int] = set()
    codec = ""
    try:
        with (
            av.logging.Capture() as logs,
            av.open(io.BytesIO(data), format=_CONTAINER[fmt]) as container,
        ):
            codec = container.streams.audio[0].codec_context.name
            resampler = None
            for frame in container.decode(audio=0):
                rates.add(frame.sample_rate)
                channels.add(len(frame.layout.channels))
                if resampler is None:
                    resampler = av.AudioResampler(format="s16", layout="mono")
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise AssertionError(f"{fmt} audio of {len(data)} bytes does not decode: {exc}") from exc
    finally:
        av.logging.set_level(previous)
        av.logging.set_skip_repeated(previous_skip)
    complaints = [
        f"[{name}] {message.strip()}"
        for level, name, message in logs
        if level <= av.logging.WARNING
        and not _BENIGN.search(message)
        and not (fmt == "wav" and _BENIGN_WAV.search(message))
    ]
    assert not complaints, f"{fmt} decoder complained: {complaints[:5]}"
    assert len(rates) == 1, f"{fmt}: sample rate changes within the stream: {rates}"
    assert channels == {1}, f"{fmt}: expected mono, got channel counts {channels}"
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if wav_samples is not None:
        assert len(samples) == wav_samples, (
            f"WAV holds {wav_samples} samples, decoded {len(samples)}"
        )
    return Decoded(rates.pop(), samples.astype(np.int16), codec)


def _check_wav_header(data: bytes) -> int:
    """Check the single placeholder header; returns the number of samples after it."""
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt ", f"not a WAV header: {data[:16]!r}"
    riff_size = struct.unpack_from("<I", data, 4)[0]
    assert riff_size == WAV_RIFF_PLACEHOLDER, f"RIFF size {riff_size:#x}, expected placeholder"
    fmt_size = struct.unpack_from("<I", data, 16)[0]
    tag, channels, _rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", data, 20)
    assert (tag, channels, bits) == (1, 1, 16), f"WAV is not PCM s16 mono: {tag, channels, bits}"
    pos = 20 + fmt_size
    while data[pos : pos + 4] != b"data":  # skip any chunks between fmt and data
        assert pos + 8 <= len(data), "WAV has no data chunk"
        pos += 8 + struct.unpack_from("<I", data, pos + 4)[0]
    data_size = struct.unpack_from("<I", data, pos + 4)[0]
    assert data_size == WAV_DATA_PLACEHOLDER, f"data size {data_size:#x}, expected placeholder"
    body = data[pos + 8 :]
    assert len(body) % 2 == 0, "WAV data is not whole s16 samples"
    again = re.search(rb"RIFF....WAVE", body, re.DOTALL)
    assert again is None, f"a second WAV header at byte {pos + 8 + again.start()}"
    return len(body) // 2


def wav_rate(data: bytes) -> int:
    return int(struct.unpack_from("<I", data, 24)[0])


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
