"""Session state machines for both ends of the Fish live protocol (sans-I/O).

:class:`ClientSession` turns calls into frames and frames into events, and
refuses anything out of order.  :class:`ServerSession` turns client frames into
*commands* for the server's I/O layer: synthesise this text, end the session.
Neither touches a socket.

Server lifecycle (docs/protocol.md, 'Session order')::

    AWAITING_START --start--> STREAMING --stop--> STOPPING --all audio sent--> AWAITING_START
          any state --bad frame / out-of-order event--> CLOSED (finish/error)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from worker.fish.errors import FishError, ProtocolError, UnexpectedEvent
from worker.fish.events import (
    Audio,
    ClientEvent,
    Finish,
    FinishReason,
    Flush,
    ServerEvent,
    Start,
    Stop,
    Text,
    decode_client_event,
    decode_server_event,
    encode_client_event,
)
from worker.fish.request import TTSRequest

# -- client --------------------------------------------------------------------


class ClientState(StrEnum):
    """Where a client session stands."""

    IDLE = "idle"  # connected, nothing sent
    STREAMING = "streaming"  # start sent; text and flush allowed
    STOPPED = "stopped"  # stop sent; waiting for the remaining audio and finish
    FINISHED = "finished"  # finish/stop received: the audio is complete
    FAILED = "failed"  # finish/error received or the server broke the protocol


class ClientSession:
    """The client's side of one session: frames out, typed events in."""

    def __init__(self) -> None:
        self.state = ClientState.IDLE
        self.audio_bytes = 0
        self.audio_events = 0
        self.text_bytes = 0  # UTF-8 bytes sent in text events: what the provider bills

    def start(self, request: TTSRequest) -> bytes:
        self._require("start", ClientState.IDLE)
        self.state = ClientState.STREAMING
        return encode_client_event(Start(request))

    def text(self, text: str) -> bytes:
        self._require("text", ClientState.STREAMING)
        self.text_bytes += len(text.encode())
        return encode_client_event(Text(text))

    def flush(self) -> bytes:
        self._require("flush", ClientState.STREAMING)
        return encode_client_event(Flush())

    def stop(self) -> bytes:
        self._require("stop", ClientState.STREAMING)
        self.state = ClientState.STOPPED
        return encode_client_event(Stop())

    def receive(self, data: bytes) -> ServerEvent:
        """Decode one server frame and advance the state; unknown events pass through."""
        event = decode_server_event(data)
        if isinstance(event, Audio):
            if self.state not in (ClientState.STREAMING, ClientState.STOPPED):
                self._fail(f"'audio' received in state {self.state.value}")
            self.audio_bytes += len(event.audio)
            self.audio_events += 1
        elif isinstance(event, Finish):
            if event.reason is FinishReason.ERROR:
                self.state = ClientState.FAILED
            elif self.state is ClientState.STOPPED:
                self.state = ClientState.FINISHED
            else:
                # finish/stop before our stop: audio for the rest would be lost.
                self._fail(f"'finish' received in state {self.state.value}, before 'stop'")
        return event

    @property
    def done(self) -> bool:
        return self.state in (ClientState.FINISHED, ClientState.FAILED)

    def _require(self, what: str, state: ClientState) -> None:
        if self.state is not state:
            raise UnexpectedEvent(f"cannot send '{what}' in state {self.state.value}")

    def _fail(self, message: str) -> None:
        self.state = ClientState.FAILED
        raise UnexpectedEvent(message)


# -- server --------------------------------------------------------------------


class ServerState(StrEnum):
    """Where a server session stands."""

    AWAITING_START = "awaiting_start"  # connected, or the previous session finished
    STREAMING = "streaming"  # start received; text accumulates in the buffer
    STOPPING = "stopping"  # stop received; remaining audio then finish/stop
    CLOSED = "closed"  # finish/error sent; the socket must close


@dataclass(frozen=True, slots=True)
class Synthesize:
    """Command: synthesise this text (a cut of the buffer, joined exactly) and send its audio."""

    text: str


@dataclass(frozen=True, slots=True)
class EndSession:
    """Command: after all earlier audio, send ``finish`` with this reason."""

    reason: FinishReason
    message: str | None = None


Command = Synthesize | EndSession

# Where a chunk may end: after sentence punctuation (Latin or CJK) plus any spaces.
_SENTENCE_END = re.compile(r"[.!?;:…。！？；：\n]+[\"'”’)\]]*\s*")
_SPACE = re.compile(r"\s+")


class ServerSession:
    """The server's side: client frames in, :data:`Command` values out."""

    def __init__(self, max_message_bytes: int = 1 << 20) -> None:
        self.state = ServerState.AWAITING_START
        self.max_message_bytes = max_message_bytes
        self.request: TTSRequest | None = None
        self.sessions_started = 0
        self._buffer = ""

    def receive_frame(self, data: bytes) -> list[Command]:
        """Feed one binary frame; returns the commands it causes, in order."""
        if self.state is ServerState.CLOSED:
            return []
        if len(data) > self.max_message_bytes:
            return self.fail(
                f"message of {len(data)} bytes is over the limit of {self.max_message_bytes} bytes"
            )
        try:
            event = decode_client_event(data)
        except FishError as exc:
            return self.fail(str(exc))
        return self.receive_event(event)

    def receive_event(self, event: ClientEvent) -> list[Command]:
        """Feed one decoded event (``POST /v1/tts`` drives a session this way)."""
        if self.state is ServerState.CLOSED:
            return []
        try:
            return self._on_event(event)
        except FishError as exc:
            return self.fail(str(exc))

    def receive_text_frame(self) -> list[Command]:
        """A text (non-binary) frame arrived: the protocol allows binary frames only."""
        return self.fail("text frames are not accepted; send binary MessagePack frames")

    def synthesis_failed(self, message: str) -> list[Command]:
        return self.fail(f"synthesis failed: {message}")

    def session_finished(self) -> None:
        """The I/O layer sent finish/stop: the socket may carry a new session."""
        if self.state is ServerState.STOPPING:
            self.state = ServerState.AWAITING_START
            self.request = None

    def fail(self, message: str) -> list[Command]:
        self.state = ServerState.CLOSED
        self._buffer = ""
        return [EndSession(FinishReason.ERROR, message)]

    def _on_event(self, event: ClientEvent) -> list[Command]:
        name = type(event).__name__.lower()
        if self.state is ServerState.STOPPING:
            raise UnexpectedEvent(f"'{name}' after 'stop'")
        if isinstance(event, Start):
            if self.state is not ServerState.AWAITING_START:
                raise UnexpectedEvent("second 'start' in one session")
            self.state = ServerState.STREAMING
            self.request = event.request
            self.sessions_started += 1
            self._buffer = event.request.text
            return self._cut()
        if self.state is not ServerState.STREAMING:
            raise UnexpectedEvent(f"'{name}' before 'start'")
        if isinstance(event, Text):
            self._buffer += event.text
            return self._cut()
        if isinstance(event, Flush):
            return self._drain()
        if isinstance(event, Stop):
            self.state = ServerState.STOPPING
            return [*self._drain(), EndSession(FinishReason.STOP)]
        raise ProtocolError(f"unhandled event {event!r}")  # pragma: no cover

    def _drain(self) -> list[Command]:
        text, self._buffer = self._buffer, ""
        return [Synthesize(text)] if text else []

    def _cut(self) -> list[Command]:
        assert self.request is not None
        out: list[Command] = []
        limit = self.request.chunk_length
        floor = min(self.request.min_chunk_length, limit)
        while len(self._buffer) >= limit:
            cut = _best_cut(self._buffer, floor, limit)
            out.append(Synthesize(self._buffer[:cut]))
            self._buffer = self._buffer[cut:]
        return out


def _best_cut(text: str, floor: int, limit: int) -> int:
    """Index to cut ``text`` at: the last sentence end in (floor, limit], else the
    last space, else ``limit``.  Never splits a word when it can avoid it."""
    window = text[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if floor < m.end() <= limit]
    if ends:
        return ends[-1]
    spaces = [m.end() for m in _SPACE.finditer(window) if floor < m.end() <= limit]
    if spaces:
        return spaces[-1]
    return limit
