"""One WebSocket connection of ``/v1/tts/live``: the thin I/O layer around
:class:`worker.fish.ServerSession`.

Two tasks per connection: the *reader* takes every frame as it arrives (so
pings are answered and ``text`` keeps flowing while audio is produced) and
feeds the sans-I/O session; the *writer* runs its commands in order —
synthesise, encode, send ``audio``; end the session with ``finish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from local_tts.encoders import StreamEncoder
from local_tts.engines import Engine
from local_tts.faults import Fault, FaultAction
from local_tts.stats import SessionRecord
from local_tts.voices import Voice, pick_voice
from worker.fish import (
    Audio,
    Command,
    EndSession,
    Finish,
    FinishReason,
    ServerSession,
    ServerState,
    Synthesize,
    encode_server_event,
)
from worker.fish.request import AudioFormat, TTSRequest

log = logging.getLogger(__name__)

#: The ASGI scope extension our uvicorn protocol adds (see local_tts.transport).
TRANSPORT_EXTENSION = "local_tts.transport"


class _Faulted(Exception):
    """A fault ended the session; the connection is already dealt with."""


@dataclass(frozen=True, slots=True)
class LiveLimits:
    max_message_bytes: int
    idle_timeout: float  # seconds a finished connection may wait for a new start


class LiveConnection:
    """Serves one accepted WebSocket until it closes."""

    def __init__(
        self,
        ws: WebSocket,
        engine: Engine,
        record: SessionRecord,
        faults: list[Fault],
        limits: LiveLimits,
        voices: Callable[[TTSRequest], Voice] = pick_voice,
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.record = record
        self.faults = [f for f in faults if f.action is not FaultAction.REJECT]
        self.limits = limits
        self.voices = voices  # the request's voice; raises for a model that cannot speak
        self.session = ServerSession(max_message_bytes=limits.max_message_bytes)
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self.encoder: StreamEncoder | None = None
        self.audio_sent = 0
        self.truncated = False  # a truncate fault fired: audio from now on is dropped
        ext = ws.scope.get("extensions", {}).get(TRANSPORT_EXTENSION, {})
        self._abort: Callable[[], None] | None = ext.get("abort")
        self._stall_transport: Callable[[], None] | None = ext.get("stall")

    async def serve(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop(writer)
        except _Faulted:
            pass
        finally:
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, _Faulted, Exception):
                await writer

    # -- reading -------------------------------------------------------------

    async def _read_loop(self, writer: asyncio.Task[None]) -> None:
        while True:
            message = await self._receive(writer)
            if message is None:
                return
            if message.get("bytes") is not None:
                data: bytes = message["bytes"]
                commands = self.session.receive_frame(data)
                if self.session.request is not None and self.session.sessions_started:
                    self.record.starts = self.session.sessions_started
                    self.record.format = self.session.request.format.value
            else:
                commands = self.session.receive_text_frame()
            for command in commands:
                if isinstance(command, Synthesize):
                    self.record.text += command.text
                if isinstance(command, EndSession) and command.reason is FinishReason.ERROR:
                    # Protocol errors end the session now, not after queued audio.
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, _Faulted):
                        await writer
                    await self._finish_error(command.message or "error")
                    return
                self.commands.put_nowait(command)

    async def _receive(self, writer: asyncio.Task[None]) -> MutableMapping[str, Any] | None:
        """Next frame, or None when the peer is gone or the connection should end."""
        receive = asyncio.ensure_future(self.ws.receive())
        idle = self.limits.idle_timeout if self._idle() else None
        done, _ = await asyncio.wait({receive, writer}, timeout=idle, return_when="FIRST_COMPLETED")
        if receive not in done:
            receive.cancel()
            if writer in done:  # the writer ended the connection (error or fault)
                writer.result()
                return None
            await self._close(1000)  # idle after a finished session
            return None
        message = receive.result()
        if message["type"] == "websocket.disconnect":
            if message.get("code") == 1009:  # refused by the transport; it sent finish/error
                self.record.end, self.record.error = "error", "message too big"
            elif self.record.end == "open":
                self.record.end = "disconnect"
            return None
        return message

    def _idle(self) -> bool:
        return self.session.state is ServerState.AWAITING_START and self.record.starts > 0

    # -- writing -------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            command = await self.commands.get()
            request = self.session.request
            if request is None:  # pragma: no cover - the session guarantees a start first
                continue
            if self.encoder is None:
                self.encoder = StreamEncoder(
                    request.format,
                    request.effective_sample_rate,
                    native_rate=self.engine.native_rate,
                    volume_db=request.volume_db,
                    mp3_bitrate_kbps=request.mp3_bitrate,
                    opus_bitrate_kbps=request.opus_bitrate,
                )
            if isinstance(command, Synthesize):
                try:
                    await self._synthesize(command.text)
                except (_Faulted, asyncio.CancelledError):
                    raise
                except Exception as exc:  # an engine or encoder failure ends this session only
                    log.exception("synthesis failed")
                    for end in self.session.synthesis_failed(str(exc)):
                        assert isinstance(end, EndSession)
                        await self._finish_error(end.message or "synthesis failed")
                    raise _Faulted from exc
            elif command.reason is FinishReason.STOP:
                tail = await self._encode(self.encoder.close, None)
                if tail:
                    await self._send_audio(tail)
                await self._apply_faults()
                await self.ws.send_bytes(encode_server_event(Finish(FinishReason.STOP)))
                self.record.end = "stop"
                self.encoder = None
                self.truncated = False
                self.session.session_finished()

    async def _synthesize(self, text: str) -> None:
        request = self.session.request
        assert request is not None and self.encoder is not None
        voice = self.voices(request)
        async for piece in self.engine.synthesize(text, voice, request.speed):
            data = await self._encode(self.encoder.feed, piece)
            if data:
                await self._send_audio(data)

    async def _encode(self, fn: Callable[..., bytes], arg: Any) -> bytes:
        assert self.encoder is not None
        if self.encoder.fmt in (AudioFormat.PCM, AudioFormat.WAV):
            return fn(arg) if arg is not None else fn()
        # Lossy encoding takes real CPU time: keep it off the event loop.
        return await asyncio.to_thread(fn, arg) if arg is not None else await asyncio.to_thread(fn)

    async def _send_audio(self, data: bytes) -> None:
        await self._apply_faults()
        if self.truncated:
            self.record.audio_dropped += 1
            return
        await self.ws.send_bytes(encode_server_event(Audio(data)))
        self.audio_sent += 1
        self.record.audio_events += 1
        self.record.audio_bytes += len(data)

    # -- endings and faults --------------------------------------------------

    async def _apply_faults(self) -> None:
        for fault in list(self.faults):  # a fault that lets the session go on is removed too
            if self.audio_sent < fault.after_audio:
                continue
            self.faults.remove(fault)
            await self._inject(fault)

    async def _inject(self, fault: Fault) -> None:
        log.info("injecting %s after %d audio events", fault.action.value, self.audio_sent)
        if fault.action is FaultAction.TRUNCATE:
            self.truncated = True  # the session goes on, and ends with finish/stop
            return
        if fault.action is FaultAction.UNALIGNED:
            return  # a live session has no timings to leave out
        if fault.action is FaultAction.FINISH_ERROR:
            await self._finish_error(fault.message)
        elif fault.action is FaultAction.CLOSE:
            self.record.end = "close"
            await self._close(fault.code)
        elif fault.action is FaultAction.DROP:
            self.record.end = "drop"
            if self._abort is not None:
                self._abort()
        elif fault.action is FaultAction.STALL:
            self.record.end = "stall"
            if not fault.pings and self._stall_transport is not None:
                self._stall_transport()
            await asyncio.Event().wait()  # silent until the peer goes away
        raise _Faulted(fault.action.value)

    async def _finish_error(self, message: str) -> None:
        self.record.end = "error"
        self.record.error = message
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.send_bytes(encode_server_event(Finish(FinishReason.ERROR, message)))
        await self._close(1000)

    async def _close(self, code: int) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.close(code)
