"""The official ``fish-audio-sdk`` 1.3.0 against local_tts.

Both packages it ships are driven exactly as their users would: the current
``fishaudio`` (sync and async) and the frozen legacy ``fish_audio_sdk`` (sync
and async; it has no flush and no opus).  Each points at the server through
``base_url``, which the SDKs turn into ``ws://HOST:PORT/v1/tts/live``
(docs/protocol.md, 'Endpoint and handshake').  Errors are what the SDK raises
for a failed session: finish/error, a close before finish, a drop, a refused handshake.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import fish_audio_sdk as legacy
import fishaudio
import httpx_ws
import pytest
from fishaudio import AsyncFishAudio, FishAudio, FlushEvent, TTSConfig
from fishaudio.types import Prosody

from tests.local_tts.conftest import API_KEYS, decode, rms
from tests.local_tts.test_models import REFS
from tests.servers import LocalTTS

KEY = "sdk-test-key"
SYNC, ASYNC, LEGACY, LEGACY_ASYNC = "fishaudio", "fishaudio-async", "legacy", "legacy-async"
CLIENTS = [SYNC, ASYNC, LEGACY, LEGACY_ASYNC]
#: The model header each client sends by default.
DEFAULT_MODEL = {SYNC: "s2-pro", ASYNC: "s2-pro", LEGACY: "speech-1.5", LEGACY_ASYNC: "speech-1.5"}
FORMATS = {
    SYNC: ["pcm", "wav", "mp3", "opus"],
    ASYNC: ["pcm", "wav", "mp3", "opus"],
    LEGACY: ["pcm", "wav", "mp3"],
    LEGACY_ASYNC: ["pcm", "wav", "mp3"],
}
RATE = {"pcm": 16000, "wav": 24000, "mp3": 32000, "opus": None}
DEFAULT_RATE = {"pcm": 44100, "wav": 44100, "mp3": 44100, "opus": 48000}
PIECES = ["Hello ", "from the ", "official SDK. ", "Streaming ", "works."]
#: About 6.5 s of tone audio: many audio events, so faults fire mid-stream.
HUNDRED = (
    "Streaming audio comes back in pieces, and each piece is an audio event. "
    "Faults fire between them."
)


def speak(
    kind: str,
    server: LocalTTS,
    items: Iterable[Any],
    *,
    key: str = KEY,
    fmt: str = "mp3",
    sample_rate: int | None = None,
    speed: float | None = None,
    volume: float | None = None,
    reference_id: str | None = None,
) -> list[bytes]:
    """Stream ``items`` through one SDK client over the live WebSocket; the audio chunks."""
    items = list(items)
    prosody_args = {k: v for k, v in (("speed", speed), ("volume", volume)) if v is not None}
    if kind in (SYNC, ASYNC):
        config = TTSConfig(
            format=fmt,
            sample_rate=sample_rate,
            reference_id=reference_id,
            prosody=Prosody(**prosody_args) if prosody_args else None,
        )
        if kind == SYNC:
            with FishAudio(api_key=key, base_url=server.url) as client:
                return list(client.tts.stream_websocket(iter(items), config=config))

        async def run_async() -> list[bytes]:
            async with AsyncFishAudio(api_key=key, base_url=server.url) as client:
                stream = client.tts.stream_websocket(_aiter(items), config=config)
                return [chunk async for chunk in stream]

        return asyncio.run(run_async())

    request = legacy.TTSRequest(
        text="",
        format=fmt,
        sample_rate=sample_rate,
        reference_id=reference_id,
        prosody=legacy.Prosody(**prosody_args) if prosody_args else None,
    )
    if kind == LEGACY:
        with legacy.WebSocketSession(key, base_url=server.url) as ws:
            return list(ws.tts(request, iter(items)))

    async def run_legacy_async() -> list[bytes]:
        async with legacy.AsyncWebSocketSession(key, base_url=server.url) as ws:
            return [chunk async for chunk in ws.tts(request, _aiter(items))]

    return asyncio.run(run_legacy_async())


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def only_session(server: LocalTTS) -> dict[str, Any]:
    stats = server.wait_idle()
    assert len(stats["sessions"]) == 1, stats["sessions"]
    return stats["sessions"][0]


def ws_error(kind: str) -> type[Exception]:
    """What the client raises on finish/error or a close frame before finish."""
    return fishaudio.WebSocketError if kind in (SYNC, ASYNC) else legacy.WebSocketErr


def raises(kind: str, exc: type[Exception]) -> Any:
    """``pytest.raises`` for what a client raises mid-stream.

    httpx-ws 0.9 runs async sessions inside an anyio task group, so the async
    clients' errors reach the caller wrapped in an ExceptionGroup.
    """
    if kind in (ASYNC, LEGACY_ASYNC):
        return pytest.RaisesGroup(exc, flatten_subgroups=True)
    return pytest.raises(exc)


# -- streaming ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_stream_text(tone: LocalTTS, kind: str) -> None:
    chunks = speak(kind, tone, PIECES)
    assert len(chunks) > 1 and all(isinstance(c, bytes) for c in chunks)
    audio = decode(b"".join(chunks), "mp3")  # the SDKs' default format
    assert audio.sample_rate == 44100
    assert audio.duration > 2
    rec = only_session(tone)
    assert rec["text"] == "".join(PIECES)
    assert rec["model"] == DEFAULT_MODEL[kind]
    assert rec["end"] == "stop"
    assert rec["audio_bytes"] == sum(map(len, chunks))


@pytest.mark.parametrize("kind", [SYNC, ASYNC])
def test_text_and_flush(tone: LocalTTS, kind: str) -> None:
    items = ["Flushed text. ", FlushEvent(), "More ", "text.", FlushEvent(), " The tail."]
    chunks = speak(kind, tone, items, fmt="wav")
    audio = decode(b"".join(chunks), "wav")
    assert audio.duration > 2
    assert only_session(tone)["text"] == "Flushed text. More text. The tail."


def test_flush_brings_audio_before_the_text_ends(tone: LocalTTS) -> None:
    """A FlushEvent makes the server speak now: audio arrives while the iterable is still open."""
    got_audio = threading.Event()
    waited: list[bool] = []

    def items() -> Iterator[Any]:
        yield "A short line."
        yield FlushEvent()
        waited.append(got_audio.wait(15))
        yield " And the rest."

    chunks = []
    with FishAudio(api_key=KEY, base_url=tone.url) as client:
        for chunk in client.tts.stream_websocket(items(), config=TTSConfig(format="pcm")):
            chunks.append(chunk)
            got_audio.set()
    assert waited == [True], "no audio after flush until the text stream ended"
    assert decode(b"".join(chunks), "pcm", 44100).duration > 1


@pytest.mark.parametrize("kind", CLIENTS)
def test_empty_session(tone: LocalTTS, kind: str) -> None:
    assert speak(kind, tone, []) == []
    rec = only_session(tone)
    assert rec["end"] == "stop" and rec["audio_events"] == 0


@pytest.mark.parametrize(
    ("kind", "fmt"), [(kind, fmt) for kind in CLIENTS for fmt in FORMATS[kind]]
)
def test_every_format(tone: LocalTTS, kind: str, fmt: str) -> None:
    rate = RATE[fmt]
    chunks = speak(kind, tone, PIECES, fmt=fmt, sample_rate=rate)
    want = rate or DEFAULT_RATE[fmt]
    audio = decode(b"".join(chunks), fmt, want)
    assert audio.sample_rate == want
    assert audio.duration > 2
    assert only_session(tone)["format"] == fmt


@pytest.mark.parametrize("kind", CLIENTS)
def test_prosody(tone: LocalTTS, kind: str) -> None:
    def pcm(**prosody: float) -> Any:
        return decode(b"".join(speak(kind, tone, PIECES, fmt="pcm", **prosody)), "pcm", 44100)

    normal, fast = pcm(), pcm(speed=2.0)
    assert fast.duration == pytest.approx(normal.duration / 2, rel=0.1)
    quiet = pcm(volume=-20.0)
    assert rms(quiet.samples) / rms(normal.samples) == pytest.approx(0.1, rel=0.25)


@pytest.mark.parametrize("kind", CLIENTS)
def test_reference_id(tone: LocalTTS, kind: str) -> None:
    first = speak(kind, tone, PIECES, fmt="pcm", reference_id="0123456789abcdef0123456789abcdef")
    again = speak(kind, tone, PIECES, fmt="pcm", reference_id="0123456789abcdef0123456789abcdef")
    assert first and b"".join(first) == b"".join(again)  # the same voice every time


def test_espeak_speech_through_the_sdk(espeak: LocalTTS) -> None:
    chunks = speak(SYNC, espeak, ["The official client ", "speaks real words."], fmt="opus")
    audio = decode(b"".join(chunks), "opus")
    assert audio.sample_rate == 48000
    assert 0.8 < audio.duration < 8
    assert rms(audio.samples) > 300


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_finish_error_raises(tone: LocalTTS, kind: str) -> None:
    rule = {"action": "finish_error", "session": 1, "after_audio": 1, "message": "boom"}
    tone.set_faults({"rules": [rule]})
    with raises(kind, ws_error(kind)):
        speak(kind, tone, [HUNDRED], fmt="pcm")
    assert only_session(tone)["end"] == "error"


@pytest.mark.parametrize("kind", CLIENTS)
def test_close_before_finish_raises(tone: LocalTTS, kind: str) -> None:
    rule = {"action": "close", "session": 1, "after_audio": 2, "code": 1000}
    tone.set_faults({"rules": [rule]})
    with raises(kind, ws_error(kind)):
        speak(kind, tone, [HUNDRED], fmt="pcm")
    assert only_session(tone)["end"] == "close"


@pytest.mark.parametrize("kind", CLIENTS)
def test_drop_raises(tone: LocalTTS, kind: str) -> None:
    """A TCP drop surfaces as httpx-ws's network error, unwrapped."""
    tone.set_faults({"rules": [{"action": "drop", "session": 1, "after_audio": 2}]})
    with raises(kind, httpx_ws.WebSocketNetworkError):
        speak(kind, tone, [HUNDRED], fmt="pcm")
    assert only_session(tone)["end"] == "drop"
    # The next session (ordinal 2) is untouched by the rule.
    tone.reset()
    assert speak(kind, tone, [HUNDRED], fmt="pcm")


@pytest.mark.parametrize("kind", CLIENTS)
def test_wrong_key_is_401_at_the_upgrade(auth: LocalTTS, kind: str) -> None:
    with pytest.raises(httpx_ws.WebSocketUpgradeError) as info:
        speak(kind, auth, PIECES, key="not-a-key")
    assert info.value.response.status_code == 401
    assert auth.stats()["handshakes"]["rejected"] == {"401": 1}
    assert speak(kind, auth, PIECES, key=API_KEYS[0])  # the right key works


# -- POST /v1/tts --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "pcm"])
def test_fishaudio_convert(tone: LocalTTS, fmt: str) -> None:
    with FishAudio(api_key=KEY, base_url=tone.url) as client:
        data = client.tts.convert(text="".join(PIECES), format=fmt)
    audio = decode(data, fmt, DEFAULT_RATE[fmt])
    assert audio.sample_rate == DEFAULT_RATE[fmt]
    assert audio.duration > 2
    rec = only_session(tone)
    assert rec["text"] == "".join(PIECES)
    assert rec["model"] == "s2-pro"


def test_fishaudio_convert_async_with_speed(tone: LocalTTS) -> None:
    async def run() -> tuple[bytes, bytes]:
        async with AsyncFishAudio(api_key=KEY, base_url=tone.url) as client:
            normal = await client.tts.convert(text="".join(PIECES), format="pcm")
            fast = await client.tts.convert(text="".join(PIECES), format="pcm", speed=2.0)
            return normal, fast

    normal, fast = asyncio.run(run())
    assert len(fast) / len(normal) == pytest.approx(0.5, rel=0.1)


def test_fishaudio_convert_errors(tone: LocalTTS, auth: LocalTTS) -> None:
    with (
        FishAudio(api_key="not-a-key", base_url=auth.url) as client,
        pytest.raises(fishaudio.AuthenticationError) as info,
    ):
        client.tts.convert(text="hi")
    assert info.value.status == 401
    with (
        FishAudio(api_key=KEY, base_url=tone.url) as client,
        pytest.raises(fishaudio.APIError) as bad,
    ):
        client.tts.convert(text="hi", format="mp3", config=TTSConfig(sample_rate=22050))
    assert bad.value.status == 400
    assert "sample_rate" in bad.value.message


def test_legacy_session_tts(tone: LocalTTS, auth: LocalTTS) -> None:
    request = legacy.TTSRequest(text="".join(PIECES), format="wav", sample_rate=16000)
    with legacy.Session(KEY, base_url=tone.url) as session:
        data = b"".join(session.tts(request))
    audio = decode(data, "wav")
    assert audio.sample_rate == 16000 and audio.duration > 2
    assert only_session(tone)["model"] == "speech-1.5"
    with (
        legacy.Session("not-a-key", base_url=auth.url) as session,
        pytest.raises(legacy.HttpCodeErr) as info,
    ):
        b"".join(session.tts(request))
    assert info.value.status == 401


# -- voices (models) and the account -------------------------------------------------


class VoiceClient:
    """One client's voice and account calls under common names, run to completion.

    ``fishaudio`` names them ``voices.list`` and so on; the legacy package
    ``list_models`` and so on, with ``.awaitable`` for its async form.  Async
    calls run on one event loop that lives as long as this object.
    """

    def __init__(self, kind: str, server: LocalTTS, key: str = KEY) -> None:
        self.kind = kind
        self.runner = asyncio.Runner()
        self.client: Any
        if kind == SYNC:
            self.client = FishAudio(api_key=key, base_url=server.url)
        elif kind == ASYNC:
            self.client = AsyncFishAudio(api_key=key, base_url=server.url)
        else:
            self.client = legacy.Session(key, base_url=server.url)

    def _call(self, new: str, old: str, *args: Any, **kwargs: Any) -> Any:
        if self.kind in (SYNC, ASYNC):
            space, name = new.split(".")
            result = getattr(getattr(self.client, space), name)(*args, **kwargs)
            return self.runner.run(result) if self.kind == ASYNC else result
        call = getattr(self.client, old)
        if self.kind == LEGACY_ASYNC:
            return self.runner.run(call.awaitable(*args, **kwargs))
        return call(*args, **kwargs)

    def list(self, *, tags: Any = None, **kwargs: Any) -> Any:
        if tags is not None:
            kwargs["tags" if self.kind in (SYNC, ASYNC) else "tag"] = tags
        return self._call("voices.list", "list_models", **kwargs)

    def get(self, voice_id: str) -> Any:
        return self._call("voices.get", "get_model", voice_id)

    def create(self, **kwargs: Any) -> Any:
        return self._call("voices.create", "create_model", **kwargs)

    def update(self, voice_id: str, **kwargs: Any) -> Any:
        return self._call("voices.update", "update_model", voice_id, **kwargs)

    def delete(self, voice_id: str) -> Any:
        return self._call("voices.delete", "delete_model", voice_id)

    def credits(self) -> Any:
        return self._call("account.get_credits", "get_api_credit")

    def package(self) -> Any:
        return self._call("account.get_package", "get_package")

    def close(self) -> None:
        if self.kind == SYNC:
            self.client.close()
        elif self.kind == ASYNC:
            self.runner.run(self.client.close())
        else:  # a legacy session holds a sync and an async client
            self.client.__exit__(None, None, None)
            self.runner.run(self.client.__aexit__(None, None, None))
        self.runner.close()

    def __enter__(self) -> VoiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.parametrize("kind", CLIENTS)
def test_voice_client(tone: LocalTTS, kind: str) -> None:
    with VoiceClient(kind, tone) as api:
        builtins = api.list(page_size=100)
        assert builtins.total == len(builtins.items) > 10
        made = api.create(title="SDK voice", voices=REFS, texts=["one", "two"], tags=["sdk"])
        assert (made.title, made.state, made.visibility) == ("SDK voice", "trained", "private")
        got = api.get(made.id)
        assert got.id == made.id and got.tags == ["sdk"]
        assert [v.id for v in api.list(self_only=True).items] == [made.id]
        assert api.list(tags="sdk", title="sdk").total == 1
        assert api.list(page_size=100).total == builtins.total + 1  # its owner sees it
        assert api.update(made.id, title="Renamed", tags=["a", "b"]) is None
        assert (api.get(made.id).title, api.get(made.id).tags) == ("Renamed", ["a", "b"])
        assert float(api.credits().credit) > 0
        assert api.package().balance > 0
        api.delete(made.id)
        not_found = fishaudio.NotFoundError if kind in (SYNC, ASYNC) else legacy.HttpCodeErr
        with pytest.raises(not_found) as info:
            api.get(made.id)
        assert info.value.status == 404
        with pytest.raises(fishaudio.APIError if kind in (SYNC, ASYNC) else legacy.HttpCodeErr):
            api.create(title="Not audio", voices=[b"plain text, not a recording"])


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_created_voice_speaks_with_the_voice_of_its_references(tone: LocalTTS, kind: str) -> None:
    with VoiceClient(kind, tone) as api:
        first = api.create(title="First", voices=REFS)
        twin = api.create(title="Twin", voices=REFS)
        other = api.create(title="Other", voices=[REFS[1]])
    by_first = b"".join(speak(kind, tone, PIECES, fmt="pcm", reference_id=first.id))
    assert by_first == b"".join(speak(kind, tone, PIECES, fmt="pcm", reference_id=twin.id))
    assert by_first != b"".join(speak(kind, tone, PIECES, fmt="pcm"))
    assert by_first != b"".join(speak(kind, tone, PIECES, fmt="pcm", reference_id=other.id))
    received = [s["reference_id"] for s in tone.wait_idle()["sessions"]]
    assert received == [first.id, twin.id, None, other.id]


@pytest.mark.parametrize("kind", [SYNC, LEGACY_ASYNC])
def test_a_deleted_voice_ends_the_session_with_an_error(tone: LocalTTS, kind: str) -> None:
    with VoiceClient(kind, tone) as api:
        made = api.create(title="Gone soon", voices=REFS)
        api.delete(made.id)
    with raises(kind, ws_error(kind)):
        speak(kind, tone, PIECES, fmt="pcm", reference_id=made.id)
    rec = only_session(tone)
    assert rec["end"] == "error" and made.id in rec["error"]


def test_voice_calls_need_the_key(auth: LocalTTS) -> None:
    with (
        VoiceClient(SYNC, auth, key="not-a-key") as api,
        pytest.raises(fishaudio.AuthenticationError),
    ):
        api.list()
    with (
        VoiceClient(LEGACY, auth, key="not-a-key") as api,
        pytest.raises(legacy.HttpCodeErr) as info,
    ):
        api.create(title="No key", voices=REFS)
    assert info.value.status == 401
    with VoiceClient(SYNC, auth, key=API_KEYS[0]) as api:
        assert api.list().total > 0
