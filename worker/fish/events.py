"""Typed events of the Fish live protocol and their MessagePack encoding.

Client → server: :class:`Start`, :class:`Text`, :class:`Flush`, :class:`Stop`.
Server → client: :class:`Audio`, :class:`Finish`, :class:`Log`, :class:`Unknown`.

Bytes in, typed values out; nothing here touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import ormsgpack

from worker.fish.errors import MalformedFrame
from worker.fish.request import TTSRequest, parse_request


class FinishReason(StrEnum):
    """Why the server ended a session."""

    STOP = "stop"  # normal end, after all audio
    ERROR = "error"  # synthesis or the session failed; may carry a message


@dataclass(frozen=True, slots=True)
class Start:
    request: TTSRequest


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Flush:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Audio:
    audio: bytes


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Log:
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event this core does not know; clients must ignore it."""

    event: str | None
    fields: dict[str, Any] = field(default_factory=dict)


ClientEvent = Start | Text | Flush | Stop
ServerEvent = Audio | Finish | Log | Unknown


def _pack(obj: dict[str, Any]) -> bytes:
    return ormsgpack.packb(obj)


def _unpack_map(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    try:
        obj = ormsgpack.unpackb(bytes(data))
    except (ormsgpack.MsgpackDecodeError, ValueError, TypeError) as exc:
        raise MalformedFrame(f"frame is not valid MessagePack: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedFrame(f"frame must be a MessagePack map, got {type(obj).__name__}")
    return obj


# -- client events -------------------------------------------------------------


def encode_client_event(event: ClientEvent) -> bytes:
    """Encode a client event as one binary frame's payload."""
    match event:
        case Start(request):
            return _pack({"event": "start", "request": request.to_wire()})
        case Text(text):
            return _pack({"event": "text", "text": text})
        case Flush():
            return _pack({"event": "flush"})
        case Stop():
            return _pack({"event": "stop"})
    raise TypeError(f"not a client event: {event!r}")


def decode_client_event(data: bytes | bytearray | memoryview) -> ClientEvent:
    """Decode a client frame; raise :class:`MalformedFrame` or ``InvalidRequest``."""
    obj = _unpack_map(data)
    name = obj.get("event")
    if name == "start":
        if "request" not in obj:
            raise MalformedFrame("'start' event has no 'request'")
        return Start(parse_request(obj["request"] if obj["request"] is not None else {}))
    if name == "text":
        text = obj.get("text")
        if not isinstance(text, str):
            raise MalformedFrame(f"'text' event needs a string 'text', got {type(text).__name__}")
        return Text(text)
    if name == "flush":
        return Flush()
    if name == "stop":
        return Stop()
    if name is None:
        raise MalformedFrame("frame has no 'event' key")
    raise MalformedFrame(f"unknown client event {name!r}")


# -- server events -------------------------------------------------------------


def encode_server_event(event: ServerEvent) -> bytes:
    """Encode a server event as one binary frame's payload."""
    match event:
        case Audio(audio):
            return _pack({"event": "audio", "audio": audio})
        case Finish(reason, message):
            obj: dict[str, Any] = {"event": "finish", "reason": reason.value}
            if message is not None:
                obj["message"] = message
            return _pack(obj)
        case Log(fields):
            return _pack({**fields, "event": "log"})
        case Unknown(name, fields):
            return _pack({**fields, "event": name})
    raise TypeError(f"not a server event: {event!r}")


def decode_server_event(data: bytes | bytearray | memoryview) -> ServerEvent:
    """Decode a server frame. Unknown events (and maps without ``event``) decode to
    :class:`Unknown` so clients can ignore them, as the docs ask."""
    obj = _unpack_map(data)
    name = obj.get("event")
    if name == "audio":
        audio = obj.get("audio")
        if audio is None:
            return Audio(b"")
        if not isinstance(audio, bytes | bytearray):
            raise MalformedFrame(f"'audio' must be binary, got {type(audio).__name__}")
        return Audio(bytes(audio))
    if name == "finish":
        reason = obj.get("reason")
        if reason not in ("stop", "error"):
            # The SDK ignores finish events without a known reason; so do we.
            return Unknown("finish", {k: v for k, v in obj.items() if k != "event"})
        message = obj.get("message")
        return Finish(FinishReason(reason), message if isinstance(message, str) else None)
    if name == "log":
        return Log({k: v for k, v in obj.items() if k != "event"})
    return Unknown(
        name if isinstance(name, str) else None, {k: v for k, v in obj.items() if k != "event"}
    )
