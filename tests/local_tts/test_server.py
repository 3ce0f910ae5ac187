"""local_tts against the wire protocol (docs/protocol.md), raw.

A plain ``websockets`` client and ``ormsgpack`` drive the server exactly as
the protocol describes, so every check here is about bytes on the wire:
formats and rates that decode, text joined exactly, when audio and ``finish``
arrive, bad input answered with ``finish/error`` (and nothing else hurt),
pings, the concurrency limit, auth, fault injection and ``POST /v1/tts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ormsgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.protocol import State

from tests.fish_samples import SDK_DEFAULT_REQUEST
from tests.local_tts.conftest import (
    API_KEYS,
    CODECS,
    FAST_RTF,
    FAST_TTFB_MS,
    TONE_MAX_MESSAGE_BYTES,
    decode,
    rms,
    wav_rate,
)
from tests.servers import LocalTTS, ServerStartError

DEFAULT_RATE = {"pcm": 44100, "wav": 44100, "mp3": 44100, "opus": 48000}
RATES = {
    "pcm": (8000, 16000, 24000, 32000, 44100),
    "wav": (8000, 16000, 24000, 32000, 44100),
    "mp3": (32000, 44100),
    "opus": (48000,),
}
SHORT = "Hi there."
LONG = "Hi there. This sentence is a good deal longer than the first one was."
#: About 6.5 s of tone audio (13 audio events): room for faults to fire mid-stream.
HUNDRED = (
    "Streaming audio comes back in pieces, and each piece is an audio event. "
    "Faults fire between them."
)
CONTENT_TYPES = {
    "pcm": "application/octet-stream",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
}


# -- protocol helpers ----------------------------------------------------------


def pack(event: dict[str, Any]) -> bytes:
    return ormsgpack.packb(event)


def start(fmt: str = "pcm", **fields: Any) -> bytes:
    """A sparse start request (third-party clients send these)."""
    return pack({"event": "start", "request": {"text": "", "format": fmt, **fields}})


def text(value: str) -> bytes:
    return pack({"event": "text", "text": value})


FLUSH = pack({"event": "flush"})
STOP = pack({"event": "stop"})


@contextlib.asynccontextmanager
async def session(
    server: LocalTTS,
    *,
    key: str | None = "test-key",
    model: str | None = None,
    **kwargs: Any,
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the live endpoint, opened the way the protocol advises."""
    async with await open_ws(server, key=key, model=model, **kwargs) as ws:
        yield ws


async def open_ws(
    server: LocalTTS, *, key: str | None = "test-key", model: str | None = None, **kwargs: Any
) -> ClientConnection:
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if model is not None:
        headers["model"] = model
    options: dict[str, Any] = {
        "compression": None,
        "max_size": None,
        "ping_interval": None,
        "open_timeout": 30,
        "close_timeout": 5,
        "proxy": None,
    }
    options.update(kwargs)
    return await connect(server.ws_url, additional_headers=headers, **options)


async def recv(ws: ClientConnection, timeout: float = 30.0) -> dict[str, Any]:
    """The next server event; every frame must be one binary MessagePack map."""
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, bytes), f"server sent a text frame: {frame[:200]!r}"
    event = ormsgpack.unpackb(frame)
    assert isinstance(event, dict), f"server frame is not a map: {event!r}"
    assert isinstance(event.get("event"), str), f"server frame has no event name: {event!r}"
    if event["event"] == "audio":
        assert isinstance(event.get("audio"), bytes), f"audio is not binary: {event!r}"
    return event


@dataclass
class Outcome:
    """Everything the server sent in one session, up to and including ``finish``."""

    audio: list[bytes] = field(default_factory=list)
    finish: dict[str, Any] | None = None
    others: list[dict[str, Any]] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(self.audio)

    @property
    def reason(self) -> str | None:
        return None if self.finish is None else self.finish.get("reason")


async def collect(ws: ClientConnection, into: Outcome | None = None, timeout=30.0) -> Outcome:
    """Read events until ``finish``; audio before it is kept in order."""
    out = into or Outcome()
    while True:
        event = await recv(ws, timeout)
        if event["event"] == "audio":
            out.audio.append(event["audio"])
        elif event["event"] == "finish":
            out.finish = event
            return out
        else:  # e.g. "log": clients must ignore unknown events
            out.others.append(event)


async def run(ws: ClientConnection, request: bytes, texts: Sequence[str]) -> Outcome:
    """One session: start, the texts, stop, then everything up to finish."""
    await ws.send(request)
    for piece in texts:
        await ws.send(text(piece))
    await ws.send(STOP)
    return await collect(ws)


async def synth(
    server: LocalTTS, texts: Sequence[str], fmt: str = "pcm", model: str | None = None, **fields
) -> Outcome:
    """One session on a fresh socket; asserts it ended with ``finish/stop``."""
    async with session(server, model=model) as ws:
        out = await run(ws, start(fmt, **fields), texts)
    assert out.finish == {"event": "finish", "reason": "stop"}, out.finish
    return out


def record(server: LocalTTS, model: str) -> dict[str, Any]:
    """The stats record of the one session that used ``model`` (waits for it to close)."""
    stats = server.wait_idle()
    found = [s for s in stats["sessions"] if s["model"] == model]
    assert len(found) == 1, f"expected one session with model {model!r}: {stats['sessions']}"
    return found[0]


async def expect_closed(ws: ClientConnection, timeout: float = 10.0) -> ConnectionClosed:
    """The server closes the socket with nothing more sent."""
    try:
        extra = await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc
    except TimeoutError:
        raise AssertionError(f"server did not close the socket within {timeout} s") from None
    raise AssertionError(f"server sent more after the end: {extra!r}"[:300])


async def expect_silence(ws: ClientConnection, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        event = await recv(ws, seconds)
        raise AssertionError(f"expected nothing for {seconds} s, got {event!r}"[:300])


# -- formats and rates -----------------------------------------------------------


FORMAT_CASES = [(fmt, None) for fmt in RATES] + [
    (fmt, rate) for fmt, rates in RATES.items() for rate in rates
]


@pytest.mark.parametrize(("fmt", "rate"), FORMAT_CASES, ids=lambda v: str(v))
async def test_every_format_and_rate_decodes(tone: LocalTTS, fmt: str, rate: int | None) -> None:
    want = rate or DEFAULT_RATE[fmt]
    fields = {} if rate is None else {"sample_rate": rate}
    short = await synth(tone, [SHORT], fmt, **fields)
    long = await synth(tone, [LONG[:30], LONG[30:]], fmt, **fields)
    a, b = decode(short.data, fmt, want), decode(long.data, fmt, want)
    assert a.sample_rate == b.sample_rate == want
    assert a.codec in CODECS[fmt], a.codec
    if fmt == "wav":
        assert wav_rate(short.data) == want
    assert a.duration > 0.3, f"{SHORT!r} gave only {a.duration:.3f} s"
    assert b.duration > 3 * a.duration, (
        f"{len(LONG)} chars gave {b.duration:.2f} s, {len(SHORT)} chars gave {a.duration:.2f} s"
    )
    assert rms(b.samples) > 300, "audio is (nearly) silent"


async def test_pcm_sample_count_follows_the_rate(tone: LocalTTS) -> None:
    """pcm has no header: the only evidence of its rate is how many samples there are."""
    reference = decode((await synth(tone, [LONG], "wav")).data, "wav")
    for rate in RATES["pcm"]:
        pcm = decode((await synth(tone, [LONG], "pcm", sample_rate=rate)).data, "pcm", rate)
        assert pcm.duration == pytest.approx(reference.duration, rel=0.01), f"pcm at {rate} Hz"


@pytest.mark.parametrize("kbps", [64, 128, 192])
async def test_mp3_bitrate_is_honoured(tone: LocalTTS, kbps: int) -> None:
    out = await synth(tone, [LONG, " ", LONG], "mp3", mp3_bitrate=kbps)
    audio = decode(out.data, "mp3")
    assert len(out.data) * 8 / audio.duration / 1000 == pytest.approx(kbps, rel=0.05)


async def test_start_accepts_nil_missing_and_unknown_keys(tone: LocalTTS) -> None:
    """fishaudio sends every key (nils included), others send sparse maps or extras."""
    request = dict(SDK_DEFAULT_REQUEST, format="opus", opus_bitrate=64000)  # bps, as livekit-js
    request.update(features=["quality-guard"], some_future_field={"x": 1})
    async with session(tone) as ws:
        out = await run(ws, pack({"event": "start", "request": request}), [SHORT])
    assert out.reason == "stop", out.finish
    assert decode(out.data, "opus").sample_rate == 48000


# -- real speech -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(RATES))
async def test_espeak_every_format(espeak: LocalTTS, fmt: str) -> None:
    rate = DEFAULT_RATE[fmt]
    short = decode((await synth(espeak, ["Hello."], fmt)).data, fmt, rate)
    long = decode((await synth(espeak, [LONG], fmt)).data, fmt, rate)
    assert short.sample_rate == long.sample_rate == DEFAULT_RATE[fmt]
    assert 0.2 < short.duration < 3, short.duration
    assert long.duration > 2 * short.duration, (short.duration, long.duration)


async def test_espeak_is_speech_not_silence(espeak: LocalTTS) -> None:
    sentence = "The quick brown fox jumps over the lazy dog."
    out = await synth(espeak, [sentence], "pcm", sample_rate=16000)
    audio = decode(out.data, "pcm", 16000)
    samples = audio.samples.astype(np.float64)
    assert 1.0 < audio.duration < 8.0, f"{audio.duration:.2f} s for nine words"
    assert rms(audio.samples) > 500 and np.abs(samples).max() > 4000, "too quiet to be speech"
    # Speech comes in syllables and words: loudness varies a lot from 20 ms to 20 ms.
    window = 320
    frames = samples[: len(samples) // window * window].reshape(-1, window)
    energy = np.sqrt((frames**2).mean(axis=1))
    loud = energy > 0.1 * energy.max()
    assert 0.3 < loud.mean() < 0.98, f"{loud.mean():.0%} of 20 ms windows are loud"
    assert energy.std() / energy.mean() > 0.5, "loudness is too steady for speech"
    # ... and its spectrum moves (vowels, fricatives), unlike a tone.
    spectrum = np.abs(np.fft.rfft(frames[loud] * np.hanning(window), axis=1))
    peaks = spectrum.argmax(axis=1) * 16000 / window
    assert np.unique(np.round(peaks / 50)).size >= 5, f"spectral peaks barely move: {peaks}"
    other = decode((await synth(espeak, ["Something else entirely."], "pcm")).data, "pcm", 44100)
    assert other.duration != pytest.approx(audio.duration, abs=0.01)


# -- text, chunking, flush, stop ----------------------------------------------------


async def test_text_is_joined_exactly(tone: LocalTTS) -> None:
    pieces = [
        "Hel",
        "lo",
        ", wo",
        "rld! ",
        "",
        "Ünïcödé and emoji 😀 ",
        "tabs\tand  double  spaces,",
        "no separator",
        "here. ",
        "A long tail that pushes the buffer over chunk_length so it is cut, "
        "and then some more words after the cut. ",
        "The end.",
    ]
    async with session(tone, model="join-exact") as ws:
        await ws.send(start("pcm", chunk_length=100))
        for piece in pieces[:6]:
            await ws.send(text(piece))
        await ws.send(FLUSH)
        for piece in pieces[6:]:
            await ws.send(text(piece))
        await ws.send(STOP)
        out = await collect(ws)
    assert out.reason == "stop"
    rec = record(tone, "join-exact")
    assert rec["text"] == "".join(pieces)
    assert rec["end"] == "stop"
    assert rec["audio_events"] == len(out.audio)
    assert rec["audio_bytes"] == len(out.data)


async def test_long_text_is_synthesised_before_stop(tone: LocalTTS) -> None:
    """Once the buffer reaches chunk_length, audio flows while the client keeps sending."""
    async with session(tone) as ws:
        await ws.send(start("pcm", chunk_length=100))
        for word in (HUNDRED + " " + HUNDRED).split(" "):
            await ws.send(text(word + " "))
        first = await recv(ws, timeout=10)
        assert first["event"] == "audio", f"expected audio before stop, got {first!r}"
        out = Outcome(audio=[first["audio"]])
        await ws.send(STOP)
        await collect(ws, out)
    assert out.reason == "stop"
    assert decode(out.data, "pcm", 44100).duration > 10


async def test_short_text_waits_for_flush_and_finish_waits_for_stop(tone: LocalTTS) -> None:
    async with session(tone, model="flush") as ws:
        await ws.send(start("wav", chunk_length=200))
        await ws.send(text("Short text."))
        await expect_silence(ws, 0.5)  # below chunk_length: buffered, not spoken
        await ws.send(FLUSH)
        first = await recv(ws, timeout=10)
        assert first["event"] == "audio", first
        out = Outcome(audio=[first["audio"]])
        # All its audio arrives, and then nothing: no finish before stop.
        with contextlib.suppress(TimeoutError):
            while True:
                event = await recv(ws, 0.5)
                assert event["event"] == "audio", f"{event!r} before stop"
                out.audio.append(event["audio"])
        await ws.send(text(" More after the flush."))
        await ws.send(STOP)
        await collect(ws, out)
    assert out.reason == "stop"
    decoded = decode(out.data, "wav")
    assert decoded.duration > 1.5
    assert record(tone, "flush")["text"] == "Short text. More after the flush."


async def test_empty_session_finishes_without_audio(tone: LocalTTS) -> None:
    async with session(tone) as ws:
        out = await run(ws, start("mp3"), [])
    assert out.finish == {"event": "finish", "reason": "stop"}
    assert out.audio == []


async def test_new_start_after_finish_on_the_same_socket(tone: LocalTTS) -> None:
    async with session(tone) as ws:
        first = await run(ws, start("pcm", sample_rate=16000), [SHORT])
        assert first.reason == "stop"
        await expect_silence(ws, 0.3)  # finish exactly once, and the socket stays open
        assert ws.state is State.OPEN
        second = await run(ws, start("wav", sample_rate=24000), [LONG])
        assert second.reason == "stop"
        third = await run(ws, start("mp3"), [])
        assert third.reason == "stop" and third.audio == []
    assert decode(first.data, "pcm", 16000).duration > 0.3
    assert wav_rate(second.data) == 24000
    assert decode(second.data, "wav").duration > 3


async def test_prosody_speed_and_volume(tone: LocalTTS) -> None:
    def pcm(out: Outcome) -> Any:
        return decode(out.data, "pcm", 44100)

    normal = pcm(await synth(tone, [LONG], "pcm"))
    slow = pcm(await synth(tone, [LONG], "pcm", prosody={"speed": 0.5, "volume": 0}))
    fast = pcm(await synth(tone, [LONG], "pcm", prosody={"speed": 2.0}))
    assert slow.duration == pytest.approx(2 * normal.duration, rel=0.1)
    assert fast.duration == pytest.approx(normal.duration / 2, rel=0.1)
    quiet = pcm(await synth(tone, [LONG], "pcm", prosody={"speed": 1.0, "volume": -20}))
    loud = pcm(await synth(tone, [LONG], "pcm", prosody={"volume": 6}))
    assert rms(quiet.samples) / rms(normal.samples) == pytest.approx(0.1, rel=0.25)
    assert rms(loud.samples) / rms(normal.samples) == pytest.approx(2.0, rel=0.2)


async def test_reference_id_picks_a_stable_voice(tone: LocalTTS) -> None:
    a1 = await synth(tone, [SHORT], "pcm", reference_id="voice-a")
    a2 = await synth(tone, [SHORT], "pcm", reference_id="voice-a")
    assert a1.data and a1.data == a2.data


# -- bad input ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    frames: Sequence[bytes | str]
    pattern: str


BAD_INPUT = {
    "malformed_msgpack": Bad([b"\xc1\x92\xff"], r"messagepack|msgpack"),
    "not_a_map": Bad([pack([1, 2])], r"map"),  # type: ignore[arg-type]
    "text_frame": Bad([start(), '{"event": "text", "text": "hi"}'], r"text frame|binary"),
    "unknown_event": Bad([start(), pack({"event": "bogus"})], r"bogus"),
    "text_before_start": Bad([text("hello")], r"before .*start"),
    "second_start": Bad([start(), text("Hi. "), start()], r"second|again|already"),
    "event_after_stop": Bad([start(), text(HUNDRED * 3), STOP, text("late")], r"after .*stop"),
    "start_without_request": Bad([pack({"event": "start"})], r"request"),
    "over_max_message_bytes": Bad(
        [start(), text("x" * (TONE_MAX_MESSAGE_BYTES + 1000))], r"limit|too (big|large)|max"
    ),
    # Far over the limit (and over the WebSocket layer's own frame cap): still finish/error.
    "far_over_max_message_bytes": Bad(
        [start(), text("y" * (3 << 20))], r"limit|too (big|large)|max"
    ),
    "mp3_at_22050": Bad([start("mp3", sample_rate=22050)], r"sample_rate"),
    "opus_at_44100": Bad([start("opus", sample_rate=44100)], r"sample_rate"),
    "prosody_speed_5": Bad([start(prosody={"speed": 5})], r"speed"),
    "unknown_format": Bad([start("flac")], r"format"),
}


async def _bad_session(server: LocalTTS, bad: Bad, done: asyncio.Event) -> Outcome:
    try:
        async with session(server, model="bad") as ws:
            out = Outcome()
            try:
                for frame in bad.frames:
                    await ws.send(frame)
            except ConnectionClosed:
                # The server may refuse a message while we are still sending it; what it
                # said before closing must still be readable.
                pass
            try:
                await collect(ws, out)
            except ConnectionClosed as exc:
                raise AssertionError(
                    f"server closed the socket without finish/error: {exc}"
                ) from None
            closed = await expect_closed(ws)
        assert closed.rcvd is not None, "server dropped the connection instead of closing it"
        return out
    finally:
        done.set()


async def _healthy_session(server: LocalTTS, bad_started: asyncio.Event, bad_done: asyncio.Event):
    async with session(server, model="healthy") as ws:
        await ws.send(start("mp3", chunk_length=100))
        await ws.send(text("A healthy session starts first, "))
        bad_started.set()
        await bad_done.wait()
        await ws.send(text("and it finishes normally after the bad one."))
        await ws.send(STOP)
        return await collect(ws)


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_gets_finish_error_and_harms_no_one(tone: LocalTTS, case: str) -> None:
    bad = BAD_INPUT[case]
    started, done = asyncio.Event(), asyncio.Event()
    healthy_task = asyncio.create_task(_healthy_session(tone, started, done))
    await asyncio.wait_for(started.wait(), 30)
    out = await _bad_session(tone, bad, done)
    healthy = await healthy_task

    assert out.finish is not None and out.reason == "error", out.finish
    message = out.finish.get("message")
    assert isinstance(message, str) and message, f"finish/error without a message: {out.finish}"
    assert re.search(bad.pattern, message, re.IGNORECASE), (
        f"{case}: message {message!r} does not say what was wrong (/{bad.pattern}/)"
    )
    assert healthy.reason == "stop", f"healthy session hurt by {case}: {healthy.finish}"
    assert decode(healthy.data, "mp3").duration > 2
    assert record(tone, "bad")["end"] == "error"
    assert record(tone, "healthy")["text"] == (
        "A healthy session starts first, and it finishes normally after the bad one."
    )
    # And the server still takes new sessions.
    assert (await synth(tone, [SHORT])).data


# -- pings -------------------------------------------------------------------------


async def answers_pings_while_synthesising(
    server: LocalTTS, long_text: str, wait: float
) -> Outcome:
    """Ping every 50 ms while ``server`` speaks ``long_text``; each pong must come within 1 s."""
    async with session(server) as ws:
        await ws.send(start("mp3", chunk_length=300))
        await ws.send(text(long_text))
        await ws.send(STOP)
        out = Outcome()
        reader = asyncio.create_task(collect(ws, out, timeout=2 * wait))
        deadline = time.monotonic() + wait
        while not out.audio and not reader.done():  # synthesis is under way
            assert time.monotonic() < deadline, f"no audio within {wait} s"
            await asyncio.sleep(0.01)
        latencies = []
        while not reader.done():
            pong = await ws.ping()
            sent = time.monotonic()
            try:
                await asyncio.wait_for(pong, 1.0)
            except TimeoutError:
                raise AssertionError(
                    f"no pong within 1 s during synthesis (after {len(out.audio)} audio events)"
                ) from None
            latencies.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
        await reader
    assert out.reason == "stop"
    assert len(latencies) >= 5, f"synthesis too short to test pings: {len(latencies)} pings"
    assert max(latencies) < 1.0, latencies
    return out


async def test_pings_are_answered_while_synthesising(espeak: LocalTTS) -> None:
    long_text = " ".join(f"This is sentence number {i} of a long narration." for i in range(40))
    await answers_pings_while_synthesising(espeak, long_text, wait=30)


# -- concurrency ---------------------------------------------------------------------


async def test_fifty_concurrent_sessions_and_the_fifty_first_gets_429(local_tts_factory) -> None:
    server = local_tts_factory(
        engine="tone", rtf=FAST_RTF, ttfb_ms=FAST_TTFB_MS, max_concurrency=50
    )
    texts = {f"s{i}": f"Session number {i} says hello{'!' * (i % 5)}" for i in range(50)}
    conns: dict[str, ClientConnection] = {}
    try:
        opened = await asyncio.gather(*(open_ws(server, model=m) for m in texts))
        conns = dict(zip(texts, opened, strict=True))
        for model, ws in conns.items():  # hold all 50 open: start, text, no stop
            await ws.send(start("pcm", sample_rate=16000))
            await ws.send(text(texts[model]))
        assert server.stats()["sessions_active"] == 50

        with pytest.raises(InvalidStatus) as info:
            await open_ws(server, model="one-too-many")
        response = info.value.response
        assert response.status_code == 429
        assert json.loads(response.body)["status"] == 429

        async def finish(ws: ClientConnection) -> Outcome:
            await ws.send(STOP)
            return await collect(ws)

        outcomes = dict(
            zip(conns, await asyncio.gather(*(finish(ws) for ws in conns.values())), strict=True)
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in conns.values()))

    stats = server.wait_idle()
    by_model = {s["model"]: s for s in stats["sessions"]}
    for model, out in outcomes.items():
        assert out.reason == "stop", f"{model}: {out.finish}"
        audio = decode(out.data, "pcm", 16000)
        assert audio.duration > 1.5, f"{model}: {audio.duration:.2f} s"
        assert by_model[model]["text"] == texts[model]
        assert by_model[model]["audio_bytes"] == len(out.data)
    assert stats["sessions_peak"] == 50
    assert stats["handshakes"]["rejected"] == {"429": 1}
    assert "one-too-many" not in by_model
    # The slots are free again.
    assert (await synth(server, [SHORT])).data


# -- auth and the model header ----------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEYS[0]}", "Bearer"],
    ids=["missing", "wrong", "not_bearer", "empty"],
)
async def test_bad_key_gets_401_before_the_upgrade(auth: LocalTTS, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with pytest.raises(InvalidStatus) as info:
        await connect(auth.ws_url, additional_headers=headers, proxy=None, open_timeout=30)
    response = info.value.response
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["status"] == 401 and isinstance(body["message"], str) and body["message"]
    stats = auth.stats()
    assert stats["handshakes"]["rejected"] == {"401": 1}
    assert stats["handshakes"]["accepted"] == 0


async def test_right_keys_are_accepted_and_the_model_header_recorded(auth: LocalTTS) -> None:
    for key, model in zip(API_KEYS, ("s1", "s2-pro"), strict=True):
        async with session(auth, key=key, model=model) as ws:
            out = await run(ws, start("pcm"), [SHORT])
        assert out.reason == "stop" and out.data
        assert record(auth, model)["model"] == model
    async with session(auth, key=API_KEYS[0], model=None) as ws:
        assert (await run(ws, start("pcm"), [SHORT])).reason == "stop"
    stats = auth.wait_idle()
    assert stats["handshakes"]["accepted"] == 3
    assert stats["sessions"][-1]["model"], "no model recorded when the header is missing"


def test_rest_needs_the_key_too(auth: LocalTTS) -> None:
    body = {"text": SHORT, "format": "pcm"}
    wrong = auth.http.post("/v1/tts", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["status"] == 401
    right = auth.http.post("/v1/tts", json=body, headers={"Authorization": f"Bearer {API_KEYS[1]}"})
    assert right.status_code == 200 and len(right.content) > 1000


# -- fault injection ---------------------------------------------------------------------


async def test_fault_reject(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "reject", "status": 500, "session": 1}]})
    with pytest.raises(InvalidStatus) as info:
        await open_ws(tone)
    assert info.value.response.status_code == 500
    assert (await synth(tone, [SHORT])).data  # session 2 is unaffected
    stats = tone.wait_idle()
    assert stats["handshakes"]["rejected"] == {"500": 1}
    assert stats["handshakes"]["accepted"] == 1


async def test_fault_drop_on_the_second_session(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "drop", "session": 2, "after_audio": 3}]})
    normal = await synth(tone, [HUNDRED], model="first")
    assert len(normal.audio) > 3
    out = Outcome()
    async with session(tone, model="second") as ws:
        await ws.send(start("pcm"))
        await ws.send(text(HUNDRED))
        await ws.send(STOP)
        with pytest.raises(ConnectionClosedError) as info:
            await collect(ws, out)
    assert info.value.rcvd is None, f"expected a TCP drop, got a close frame: {info.value.rcvd}"
    assert out.finish is None
    assert len(out.audio) == 3
    assert record(tone, "second")["end"] == "drop"
    assert record(tone, "first")["end"] == "stop"


@pytest.mark.parametrize("after", [0, 2])
async def test_fault_finish_error(tone: LocalTTS, after: int) -> None:
    tone.set_faults(
        {
            "rules": [
                {"action": "finish_error", "session": 1, "after_audio": after, "message": "boom"}
            ]
        }
    )
    async with session(tone, model="fe") as ws:
        await ws.send(start("pcm"))
        await ws.send(text(HUNDRED))
        await ws.send(STOP)
        out = await collect(ws)
        await expect_closed(ws)
    assert out.finish == {"event": "finish", "reason": "error", "message": "boom"}
    assert len(out.audio) == after
    assert record(tone, "fe")["end"] == "error"


@pytest.mark.parametrize("code", [1000, 4000])
async def test_fault_close_before_finish(tone: LocalTTS, code: int) -> None:
    tone.set_faults({"rules": [{"action": "close", "session": 1, "after_audio": 2, "code": code}]})
    out = Outcome()
    async with session(tone, model="cl") as ws:
        await ws.send(start("pcm"))
        await ws.send(text(HUNDRED))
        await ws.send(STOP)
        with pytest.raises(ConnectionClosed) as info:
            await collect(ws, out)
    assert info.value.rcvd is not None and info.value.rcvd.code == code
    assert out.finish is None
    assert len(out.audio) == 2
    assert record(tone, "cl")["end"] == "close"


@pytest.mark.parametrize("pings", [True, False])
async def test_fault_stall(tone: LocalTTS, pings: bool) -> None:
    tone.set_faults(
        {"rules": [{"action": "stall", "session": 1, "after_audio": 1, "pings": pings}]}
    )
    # Keepalive as the SDK does it, only faster: a missing pong fails the connection.
    async with session(tone, ping_interval=0.2, ping_timeout=0.6, close_timeout=1) as ws:
        await ws.send(start("pcm"))
        await ws.send(text(HUNDRED))
        await ws.send(STOP)
        first = await recv(ws)
        assert first["event"] == "audio"
        if pings:
            await expect_silence(ws, 1.5)  # silent, yet alive: keepalive pings were answered
            assert ws.state is State.OPEN
            await asyncio.wait_for(await ws.ping(), 1.0)
        else:
            with pytest.raises(ConnectionClosedError) as info:
                await recv(ws, timeout=10)
            assert info.value.sent is not None and info.value.sent.code == 1011, info.value
            assert "ping timeout" in info.value.sent.reason


async def test_fault_random_is_seeded(tone: LocalTTS) -> None:
    plan = {"random": {"seed": 7, "drop": 0.3, "finish_error": 0.3, "reject": 0.2}}

    async def one() -> str:
        try:
            async with session(tone) as ws:
                out = await run(ws, start("pcm"), [HUNDRED])
        except InvalidStatus as exc:
            return f"reject {exc.response.status_code}"
        except ConnectionClosed as exc:
            return f"closed {exc.rcvd}"
        return f"{out.reason} after {len(out.audio)}"

    runs = []
    for _ in range(2):
        tone.set_faults(plan)
        runs.append([await one() for _ in range(10)])
    assert runs[0] == runs[1], runs
    kinds = {r.split()[0] for r in runs[0]}
    assert kinds >= {"reject", "error", "stop"}, runs[0]


async def test_faults_from_the_command_line(local_tts_factory, tmp_path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"rules": [{"action": "reject", "status": 503, "session": 1}]}))
    server = local_tts_factory(engine="tone", rtf=FAST_RTF, extra_args=["--faults", f"@{plan}"])
    with pytest.raises(InvalidStatus) as info:
        await open_ws(server)
    assert info.value.response.status_code == 503
    assert (await synth(server, [SHORT])).data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_stop_the_server(local_tts_factory, sig: signal.Signals) -> None:
    server = local_tts_factory(engine="tone")
    assert server.proc is not None
    began = time.monotonic()
    server.proc.send_signal(sig)
    assert server.proc.wait(10) == 0, server.output()
    assert time.monotonic() - began < 5


@pytest.mark.integration  # starts a program
def test_start_failure_reports_the_servers_stderr() -> None:
    with pytest.raises(ServerStartError, match="invalid choice"):
        LocalTTS(engine="no-such-engine", startup_timeout=30).start()


def test_admin_reset_zeroes_the_counters(tone: LocalTTS) -> None:
    assert tone.http.post("/v1/tts", json={"text": SHORT, "format": "pcm"}).status_code == 200
    assert tone.wait_idle()["sessions_started"] >= 1
    tone.reset()
    stats = tone.stats()
    assert stats["sessions_started"] == 0 and stats["sessions"] == []
    assert stats["handshakes"] == {"accepted": 0, "rejected": {}}


# -- POST /v1/tts ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(RATES))
@pytest.mark.parametrize("body", ["json", "msgpack"])
def test_rest_returns_the_whole_audio(tone: LocalTTS, fmt: str, body: str) -> None:
    request = {"text": LONG, "format": fmt}
    if body == "json":
        response = tone.http.post("/v1/tts", json=request, headers={"model": "s1"})
    else:
        response = tone.http.post(
            "/v1/tts",
            content=ormsgpack.packb(request),
            headers={"Content-Type": "application/msgpack", "model": "s1"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == CONTENT_TYPES[fmt]
    audio = decode(response.content, fmt, DEFAULT_RATE[fmt])
    assert audio.sample_rate == DEFAULT_RATE[fmt]
    assert audio.duration > 3


async def test_rest_and_live_give_the_same_audio(tone: LocalTTS) -> None:
    live = await synth(tone, [LONG], "pcm", sample_rate=24000)
    response = tone.http.post("/v1/tts", json={"text": LONG, "format": "pcm", "sample_rate": 24000})
    assert response.status_code == 200
    assert response.content == live.data


@pytest.mark.parametrize(
    ("request_body", "field_name"),
    [
        ({"text": "hi", "format": "mp3", "sample_rate": 22050}, "sample_rate"),
        ({"text": "hi", "format": "wav", "sample_rate": 48000}, "sample_rate"),
        ({"text": "hi", "prosody": {"speed": 5}}, "speed"),
        ({"text": "hi", "format": "flac"}, "format"),
        ({"text": "hi", "mp3_bitrate": 100}, "mp3_bitrate"),
        ({"format": "mp3"}, "text"),
    ],
)
def test_rest_invalid_field_is_400(tone: LocalTTS, request_body: dict, field_name: str) -> None:
    response = tone.http.post("/v1/tts", json=request_body)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    assert field_name in body["message"], f"message does not name {field_name}: {body}"


def test_rest_unreadable_body_is_400(tone: LocalTTS) -> None:
    bad_json = tone.http.post(
        "/v1/tts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and bad_json.json()["status"] == 400
    bad_msgpack = tone.http.post(
        "/v1/tts", content=b"\xc1", headers={"Content-Type": "application/msgpack"}
    )
    assert bad_msgpack.status_code == 400 and bad_msgpack.json()["status"] == 400
