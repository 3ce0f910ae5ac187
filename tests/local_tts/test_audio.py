"""Pure tests of local_tts's audio side: voices, engines and streaming encoders.

No server and no sockets: engines run in this process's event loop (espeak in
its real process pool), and encoded streams are decoded back with PyAV.
Timing checks are deliberately loose; performance is measured by ``make bench``.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from local_tts.encoders import (
    WAV_DATA_SIZE,
    WAV_HEADER_BYTES,
    WAV_RIFF_SIZE,
    StreamEncoder,
    content_type,
)
from local_tts.engines import EspeakEngine, ToneEngine, make_engine
from local_tts.espeak import language_for, wpm_for_speed
from local_tts.voices import DEFAULT_VOICE, VOICES, Voice, pick_voice
from worker.fish.request import SAMPLE_RATES, AudioFormat, ReferenceAudio, TTSRequest

FORMAT_RATES = [(fmt, rate) for fmt, rates in SAMPLE_RATES.items() for rate in rates]
SENTENCE = "The quick brown fox jumps over the lazy dog."


# -- helpers -------------------------------------------------------------------


def sine(seconds: float, rate: int, hz: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def encode(encoder: StreamEncoder, pcm: np.ndarray, sizes: tuple[int, ...]) -> bytes:
    """Feed ``pcm`` in pieces of the given sizes (cycled), then close; join the output."""
    out, pos, i = [], 0, 0
    while pos < len(pcm):
        size = sizes[i % len(sizes)]
        out.append(encoder.feed(pcm[pos : pos + size]))
        pos, i = pos + size, i + 1
    out.append(encoder.close())
    return b"".join(out)


def decode(data: bytes, fmt: AudioFormat, rate: int) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a joined stream."""
    if fmt is AudioFormat.PCM:
        assert len(data) % 2 == 0
        return rate, np.frombuffer(data, "<i2")
    if fmt is AudioFormat.WAV:
        # The placeholder sizes make ffmpeg flag the short last packet; the
        # arithmetic is what matters: one header, then whole s16 samples.
        riff, size = struct.unpack_from("<4sI", data, 0)
        assert (riff, size) == (b"RIFF", WAV_RIFF_SIZE)
        assert data[8:16] == b"WAVEfmt "
        assert struct.unpack_from("<IHHIIHH", data, 16) == (16, 1, 1, rate, 2 * rate, 2, 16)
        assert struct.unpack_from("<4sI", data, 36) == (b"data", WAV_DATA_SIZE)
        assert data.count(b"RIFF") == 1 and data.count(b"WAVE") == 1
        assert (len(data) - WAV_HEADER_BYTES) % 2 == 0
    chunks, rates = [], set()
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            rates.add(frame.sample_rate)
            assert len(frame.layout.channels) == 1
            chunks.append(frame.to_ndarray().reshape(-1))
    assert len(rates) == 1, rates
    samples = np.concatenate(chunks)
    if samples.dtype.kind == "f":  # mp3 and opus decode to float planes
        samples = np.clip(samples * 32768, -32768, 32767)
    return rates.pop(), samples.astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def voiced_fraction(samples: np.ndarray, rate: int) -> float:
    """Share of 20 ms windows that are loud and periodic (few zero crossings), like vowels."""
    width = rate // 50
    windows = samples[: len(samples) // width * width].reshape(-1, width).astype(np.float64)
    loud = np.sqrt((windows**2).mean(axis=1)) > 300
    crossings = (np.diff(np.sign(windows), axis=1) != 0).mean(axis=1)
    return float((loud & (crossings < 0.25)).mean())


async def collect(
    engine: EspeakEngine | ToneEngine, text: str, voice: Voice, speed: float = 1.0
) -> np.ndarray:
    pieces = [piece async for piece in engine.synthesize(text, voice, speed)]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int16)


@pytest.fixture(scope="module")
def espeak_engine() -> Iterator[EspeakEngine]:
    """One real pool for the module: spawning workers is the slow part."""
    engine = EspeakEngine(processes=2)
    yield engine
    asyncio.run(engine.aclose())


def distinct_ids() -> tuple[str, str]:
    """Two reference ids that map to different voices."""
    first = pick_voice(TTSRequest(reference_id="voice-a"))
    for i in range(100):
        other = f"voice-{i}"
        if pick_voice(TTSRequest(reference_id=other)) != first:
            return "voice-a", other
    raise AssertionError("every id maps to one voice")


# -- encoders ------------------------------------------------------------------


@pytest.mark.parametrize("native_rate", [22050, 44100])
@pytest.mark.parametrize(("fmt", "rate"), FORMAT_RATES, ids=[f"{f}-{r}" for f, r in FORMAT_RATES])
def test_stream_decodes_at_rate_and_length(fmt: AudioFormat, rate: int, native_rate: int) -> None:
    pcm = sine(1.5, native_rate)
    data = encode(StreamEncoder(fmt, rate, native_rate=native_rate), pcm, (1000, 7777, 11025))
    got_rate, samples = decode(data, fmt, rate)
    assert got_rate == rate
    expected = len(pcm) / native_rate
    # MP3 cannot mark its encoder delay and padding without a header: allow two frames.
    slack = 2 * 1152 / rate + 0.005 if fmt is AudioFormat.MP3 else 0.005
    assert expected - 0.005 <= len(samples) / rate <= expected + slack
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("fmt", [AudioFormat.PCM, AudioFormat.WAV])
@pytest.mark.parametrize("rate", [8000, 24000, 44100])
def test_pieces_join_exactly_like_one_feed(fmt: AudioFormat, rate: int) -> None:
    """The resampler keeps its state across feeds: no clicks or gaps at joins."""
    pcm = sine(1.0, 22050, hz=300)
    whole = encode(StreamEncoder(fmt, rate, native_rate=22050), pcm, (len(pcm),))
    pieces = encode(StreamEncoder(fmt, rate, native_rate=22050), pcm, (333, 4410, 1))
    assert pieces == whole


def test_wav_has_one_header_then_pcm() -> None:
    encoder = StreamEncoder(AudioFormat.WAV, 16000, native_rate=16000)
    first = encoder.feed(sine(0.1, 16000))
    second = encoder.feed(sine(0.1, 16000))
    assert first[:4] == b"RIFF" and len(first) == WAV_HEADER_BYTES + 3200
    assert len(second) == 3200 and b"RIFF" not in second
    assert encoder.close() == b""


def test_opus_is_one_ogg_stream() -> None:
    data = encode(
        StreamEncoder(AudioFormat.OPUS, 48000, native_rate=22050), sine(2, 22050), (11025,)
    )
    assert data.startswith(b"OggS")
    assert data.count(b"OpusHead") == 1 and data.count(b"OpusTags") == 1


@pytest.mark.parametrize("kbps", [64, 128, 192])
def test_mp3_is_cbr_at_the_bitrate(kbps: int) -> None:
    data = encode(
        StreamEncoder(AudioFormat.MP3, 44100, native_rate=44100, mp3_bitrate_kbps=kbps),
        sine(2, 44100),
        (22050,),
    )
    assert not data.startswith(b"ID3")
    with av.open(io.BytesIO(data)) as container:
        sizes = {packet.size for packet in container.demux(audio=0) if packet.size}
        assert container.streams.audio[0].bit_rate == kbps * 1000
    # CBR at 44.1 kHz: frames are 144*bitrate/rate bytes, give or take a padding byte.
    frame = 144 * kbps * 1000 // 44100
    assert sizes <= {frame, frame + 1}


@pytest.mark.parametrize("fmt", list(AudioFormat))
def test_empty_session_yields_no_bytes(fmt: AudioFormat) -> None:
    encoder = StreamEncoder(fmt, SAMPLE_RATES[fmt][-1], native_rate=22050)
    assert encoder.feed(np.zeros(0, np.int16)) == b""
    assert encoder.close() == b""


def test_feed_after_close_is_an_error() -> None:
    encoder = StreamEncoder(AudioFormat.PCM, 44100, native_rate=44100)
    encoder.close()
    with pytest.raises(RuntimeError):
        encoder.feed(sine(0.1, 44100))


@pytest.mark.parametrize(("fmt", "rate"), [("mp3", 16000), ("opus", 44100), ("wav", 48000)])
def test_unsupported_rate_names_rate_and_choices(fmt: str, rate: int) -> None:
    supported = ", ".join(map(str, SAMPLE_RATES[AudioFormat(fmt)]))
    with pytest.raises(ValueError, match=rf"{rate}.*{supported}"):
        StreamEncoder(fmt, rate, native_rate=22050)


def test_volume_in_db_with_clipping() -> None:
    pcm = sine(0.5, 44100, amplitude=4000)
    plain = decode(
        encode(StreamEncoder("pcm", 44100, native_rate=44100), pcm, (4096,)), AudioFormat.PCM, 44100
    )[1]
    louder = StreamEncoder("pcm", 44100, native_rate=44100, volume_db=6.0)
    loud = decode(encode(louder, pcm, (4096,)), AudioFormat.PCM, 44100)[1]
    assert rms(loud) / rms(plain) == pytest.approx(10 ** (6 / 20), rel=0.01)
    clipped = StreamEncoder("pcm", 44100, native_rate=44100, volume_db=20.0)
    very = decode(encode(clipped, pcm, (4096,)), AudioFormat.PCM, 44100)[1]
    assert very.max() == 32767 and very.min() == -32768  # clipped, not wrapped around


def test_content_types() -> None:
    assert content_type(AudioFormat.MP3) == "audio/mpeg"
    assert content_type("wav") == "audio/wav"
    assert content_type("opus") == "audio/ogg"
    assert content_type("pcm") == "application/octet-stream"
    assert content_type("flac") == "application/octet-stream"


# -- voices --------------------------------------------------------------------


def test_voice_is_a_pure_function_of_the_reference() -> None:
    assert pick_voice(TTSRequest()) == DEFAULT_VOICE
    assert pick_voice(TTSRequest(reference_id="abc")) == pick_voice(TTSRequest(reference_id="abc"))
    assert pick_voice(TTSRequest(reference_id=["abc", "xyz"])) == pick_voice(
        TTSRequest(reference_id="abc")
    )
    many = {pick_voice(TTSRequest(reference_id=f"model-{i}")) for i in range(60)}
    assert len(many) >= len(VOICES) // 2  # different ids usually differ
    ref = [ReferenceAudio(audio=b"\x00\x01not really audio", text="hi")]
    assert pick_voice(TTSRequest(references=ref)) == pick_voice(TTSRequest(references=ref))
    other = [ReferenceAudio(audio=b"other bytes", text="hi")]
    assert pick_voice(TTSRequest(references=[ref])) == pick_voice(TTSRequest(references=ref))
    assert {pick_voice(TTSRequest(references=r)) for r in (ref, other)} <= set(VOICES)
    # An id wins over reference audio.
    assert pick_voice(TTSRequest(reference_id="abc", references=ref)) == pick_voice(
        TTSRequest(reference_id="abc")
    )


def test_language_follows_the_script() -> None:
    assert language_for("Hello there", "en-us") == "en-us"
    assert language_for("你好，世界。", "en-us") == "cmn"
    assert language_for("こんにちは世界", "en-us") == "ja"
    assert language_for("Hello 你好 world", "en-us") == "en-us"
    assert language_for("12, 34!", "en-us") == "en-us"
    assert wpm_for_speed(1.0) == 175
    assert wpm_for_speed(2.0) == 350
    assert wpm_for_speed(0.1) == 80


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="espeak, tone"):
        make_engine("festival")


# -- espeak engine ---------------------------------------------------------------


async def test_espeak_speaks(espeak_engine: EspeakEngine) -> None:
    audio = await collect(espeak_engine, SENTENCE, DEFAULT_VOICE)
    assert 1.0 < len(audio) / espeak_engine.native_rate < 6.0
    assert rms(audio) > 1000
    assert voiced_fraction(audio, espeak_engine.native_rate) > 0.4


async def test_espeak_pieces_and_empty_text(espeak_engine: EspeakEngine) -> None:
    pieces = [p async for p in espeak_engine.synthesize(SENTENCE * 2, DEFAULT_VOICE, 1.0)]
    assert len(pieces) > 2
    assert all(len(p) == espeak_engine.piece_samples for p in pieces[:-1])
    assert all(p.dtype == np.int16 for p in pieces)
    assert len(await collect(espeak_engine, " \n\t ", DEFAULT_VOICE)) == 0


async def test_espeak_duration_follows_text_and_speed(espeak_engine: EspeakEngine) -> None:
    short = await collect(espeak_engine, "Hello.", DEFAULT_VOICE)
    long = await collect(espeak_engine, SENTENCE * 3, DEFAULT_VOICE)
    fast = await collect(espeak_engine, SENTENCE * 3, DEFAULT_VOICE, speed=2.0)
    assert len(long) > 3 * len(short)
    assert 0.35 < len(fast) / len(long) < 0.7


async def test_espeak_speaks_chinese_as_chinese(espeak_engine: EspeakEngine) -> None:
    audio = await collect(espeak_engine, "你好，世界。今天天气很好。", DEFAULT_VOICE)
    assert voiced_fraction(audio, espeak_engine.native_rate) > 0.3
    # Read as letter names ("chinese letter ..."), it would be far longer.
    assert len(audio) / espeak_engine.native_rate < 6.0


async def test_espeak_voice_is_deterministic(espeak_engine: EspeakEngine) -> None:
    a, b = distinct_ids()
    voice_a = pick_voice(TTSRequest(reference_id=a))
    voice_b = pick_voice(TTSRequest(reference_id=b))
    first = await collect(espeak_engine, SENTENCE, voice_a)
    again = await collect(espeak_engine, SENTENCE, pick_voice(TTSRequest(reference_id=a)))
    other = await collect(espeak_engine, SENTENCE, voice_b)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


async def test_espeak_many_concurrent_sessions(espeak_engine: EspeakEngine) -> None:
    texts = [f"Session number {i} says hello to the world." for i in range(20)]
    voices = [pick_voice(TTSRequest(reference_id=f"v{i}")) for i in range(20)]
    results = await asyncio.wait_for(
        asyncio.gather(*(collect(espeak_engine, t, v) for t, v in zip(texts, voices, strict=True))),
        timeout=60,
    )
    assert all(len(audio) > espeak_engine.native_rate for audio in results)


async def test_espeak_engine_close_is_final() -> None:
    engine = EspeakEngine(processes=1)
    assert len(await collect(engine, "Hi.", DEFAULT_VOICE)) > 0
    await engine.aclose()
    await engine.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await collect(engine, "Hi.", DEFAULT_VOICE)


# -- tone engine ---------------------------------------------------------------


async def test_tone_duration_follows_text_and_speed() -> None:
    engine = ToneEngine(rtf=0, ttfb_ms=0)
    text = "hello world " * 10
    audio = await collect(engine, text, DEFAULT_VOICE)
    seconds = len(audio) / engine.native_rate
    assert seconds == pytest.approx(0.065 * len(text), rel=0.1)
    fast = await collect(engine, text, DEFAULT_VOICE, speed=2.0)
    assert len(fast) / len(audio) == pytest.approx(0.5, abs=0.01)
    assert len(await collect(engine, "   ", DEFAULT_VOICE)) == 0


async def test_tone_is_speech_shaped_and_deterministic() -> None:
    engine = ToneEngine(rtf=0, ttfb_ms=0, piece_ms=250)
    audio = await collect(engine, SENTENCE, DEFAULT_VOICE)
    assert rms(audio) > 1000
    assert 0.4 < voiced_fraction(audio, engine.native_rate) < 0.95  # pauses at spaces
    assert np.array_equal(audio, await collect(engine, SENTENCE, DEFAULT_VOICE))
    assert not np.array_equal(audio, await collect(engine, SENTENCE, VOICES[-1]))
    # Any piece size gives the same audio: pieces join seamlessly.
    other = await collect(ToneEngine(rtf=0, ttfb_ms=0, piece_ms=333), SENTENCE, DEFAULT_VOICE)
    assert np.array_equal(audio, other)
    sentence_end = await collect(engine, "Stop. Go", DEFAULT_VOICE)
    comma = await collect(engine, "Stop, Go", DEFAULT_VOICE)
    assert len(sentence_end) > len(comma) > len(await collect(engine, "Stop Go", DEFAULT_VOICE))


async def test_tone_pacing_roughly_honours_ttfb_and_rtf() -> None:
    engine = ToneEngine(rtf=0.5, ttfb_ms=150, piece_ms=100)
    text = "paced speech " * 2  # 26 characters: about 1.7 s of audio, 17 pieces
    start = time.monotonic()
    arrivals = [time.monotonic() - start async for _ in engine.synthesize(text, DEFAULT_VOICE, 1.0)]
    audio_s = 0.065 * len(text)
    expected = 0.15 + (audio_s - 0.1) * 0.5
    assert arrivals[0] >= 0.12
    assert 0.7 * expected <= arrivals[-1] <= expected + 2.0

    fast = ToneEngine(rtf=0, ttfb_ms=0)
    start = time.monotonic()
    audio = await collect(fast, "as fast as possible " * 50, DEFAULT_VOICE)
    assert len(audio) / fast.native_rate > 60
    assert time.monotonic() - start < 2.0


async def test_tone_through_every_encoder() -> None:
    engine = ToneEngine(rtf=0, ttfb_ms=0)
    pieces = [p async for p in engine.synthesize(SENTENCE, DEFAULT_VOICE, 1.0)]
    seconds = sum(len(p) for p in pieces) / engine.native_rate
    for fmt, rate in FORMAT_RATES:
        encoder = StreamEncoder(fmt, rate, native_rate=engine.native_rate)
        data = b"".join(encoder.feed(p) for p in pieces) + encoder.close()
        got_rate, samples = decode(data, fmt, rate)
        assert got_rate == rate
        assert len(samples) / rate == pytest.approx(seconds, abs=0.08), (fmt, rate)
