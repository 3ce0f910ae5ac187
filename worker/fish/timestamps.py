"""The timestamped TTS reply (``POST /v1/tts/stream/with-timestamp``), sans-I/O.

The reply is Server-Sent Events, one JSON object per event (docs/protocol.md,
'Timestamps')::

    {"audio_base64": "...", "content": "words here",
     "alignment": {"audio_duration": 1.2,
                   "segments": [{"text": "words", "start": 0.0, "end": 0.6}, ...]},
     "chunk_seq": 0, "chunk_audio_offset_sec": 0.0}

:class:`TimestampParser` takes the reply's bytes as they arrive and returns
typed events: :class:`ChunkAudio` (the audio bytes of one event, in order),
:class:`ChunkEnd` (a chunk is complete: decode its joined audio on its own,
each chunk being a whole stream in the requested format) and
:class:`StreamFailed` (an ``{"event": "error"}`` object).  It keeps the newest
alignment of every chunk: a later event of the same ``chunk_seq`` replaces the
earlier snapshot.  :meth:`TimestampParser.segments` then gives every aligned
segment with absolute times: the chunk's start plus the segment's local time.

Errors are :class:`~worker.fish.errors.ProtocolError` (a reply that is not
this protocol: a ``data:`` line that is not a JSON object, a negative or
non-numeric time, audio for a chunk that already ended).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.fish.errors import ProtocolError

#: Longest SSE line we hold while waiting for its end (a chunk's audio is base64 in one line).
MAX_LINE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class AlignedSegment:
    """One aligned piece of text (a word or phrase), times in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Alignment:
    """One snapshot of a chunk's alignment; times are local to the chunk."""

    audio_duration: float | None
    segments: tuple[AlignedSegment, ...]


@dataclass(frozen=True, slots=True)
class ChunkAudio:
    """The audio bytes one event carried for chunk ``seq`` (may be empty)."""

    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkEnd:
    """Chunk ``seq`` is complete: no more audio for it will arrive."""

    seq: int
    offset: float  # chunk_audio_offset_sec: where the provider says the chunk starts
    content: str
    audio_bytes: int


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The provider sent an error object; the reply ends."""

    message: str


TimestampEvent = ChunkAudio | ChunkEnd | StreamFailed


class SseDecoder:
    """Server-Sent Events framing: bytes in, the ``(event, data)`` of each event out.

    Follows the HTML standard's rules: lines end in CRLF, LF or CR; ``data:``
    lines of one event are joined with newlines; one leading space after the
    colon is dropped; comments (``:``) and ``id``/``retry`` fields are ignored.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event = ""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Take more bytes; return every event they complete."""
        self._buffer += data
        out: list[tuple[str, str]] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, skip = cut
            line = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
            del self._buffer[: end + skip]
            if (event := self._line(line)) is not None:
                out.append(event)
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ProtocolError(f"an event-stream line is over {MAX_LINE_BYTES} bytes")
        return out

    def close(self) -> list[tuple[str, str]]:
        """The end of the stream: an event not closed by a blank line still counts."""
        out = self.feed(b"\n") if self._buffer else []
        if self._data:
            out.append((self._event or "message", "\n".join(self._data)))
            self._data, self._event = [], ""
        return out

    def _line(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event or "message", "\n".join(self._data))
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _line_end(buffer: bytearray) -> tuple[int, int] | None:
    """Where the first line ends and how many bytes its terminator takes."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr < 0 or (0 <= lf < cr):
        return None if lf < 0 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # a CR at the end may be the first half of CRLF
    return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1


class TimestampParser:
    """The events of one timestamped reply, and the newest alignment of each chunk."""

    def __init__(self) -> None:
        self._sse = SseDecoder()
        self._open: ChunkEnd | None = None  # the chunk receiving audio, its bytes so far
        self._ended: set[int] = set()
        self.offsets: dict[int, float] = {}
        self.contents: dict[int, str] = {}
        self.alignments: dict[int, Alignment] = {}
        self.failed: str | None = None

    def feed(self, data: bytes) -> list[TimestampEvent]:
        """Take bytes of the reply; return the events they complete."""
        return self._events(self._sse.feed(data))

    def close(self) -> list[TimestampEvent]:
        """The reply ended: the events still pending, and the end of the last chunk."""
        out = self._events(self._sse.close())
        if self._open is not None:
            out.append(self._end_open())
        return out

    def segments(self, placement: Mapping[int, float] | None = None) -> list[AlignedSegment]:
        """Every chunk's newest segments, in order, times made absolute in seconds.

        A chunk starts at ``placement[seq]`` when given (where its audio really
        begins in what the caller kept), else at its ``chunk_audio_offset_sec``.
        """
        out: list[AlignedSegment] = []
        for seq in sorted(self.alignments):
            base = (placement or {}).get(seq, self.offsets.get(seq, 0.0))
            for seg in self.alignments[seq].segments:
                out.append(AlignedSegment(seg.text, base + seg.start, base + seg.end))
        return out

    def unaligned(self) -> list[int]:
        """Chunks that carried audio but never an alignment (their words are unknown)."""
        return sorted(seq for seq in self._ended if seq not in self.alignments)

    def _events(self, raw: list[tuple[str, str]]) -> list[TimestampEvent]:
        out: list[TimestampEvent] = []
        for name, data in raw:
            if not data.strip():
                continue
            obj = _json_object(data)
            if name == "error" or obj.get("event") == "error":
                message = obj.get("message") or obj.get("error") or obj.get("detail") or data
                self.failed = str(message)
                out.append(StreamFailed(self.failed))
                continue
            out.extend(self._chunk_event(obj))
        return out

    def _chunk_event(self, obj: dict[str, Any]) -> list[TimestampEvent]:
        seq = _int(obj.get("chunk_seq", 0), "chunk_seq")
        audio = _audio(obj.get("audio_base64"))
        out: list[TimestampEvent] = []
        if audio and seq in self._ended:
            raise ProtocolError(f"audio for chunk {seq} after a later chunk began")
        if self._open is not None and seq != self._open.seq and seq not in self._ended:
            out.append(self._end_open())  # a new chunk begins (a late snapshot does not)
        if seq not in self._ended:
            if self._open is None:
                offset = _seconds(obj.get("chunk_audio_offset_sec", 0.0), "chunk_audio_offset_sec")
                self._open = ChunkEnd(seq, offset, str(obj.get("content") or ""), 0)
                self.offsets[seq], self.contents[seq] = offset, self._open.content
            self._open = ChunkEnd(
                seq, self._open.offset, self._open.content, self._open.audio_bytes + len(audio)
            )
            if audio:
                out.append(ChunkAudio(seq, audio))
        alignment = obj.get("alignment")
        if isinstance(alignment, dict):
            self.alignments[seq] = _alignment(alignment)  # the newest snapshot wins
        return out

    def _end_open(self) -> ChunkEnd:
        assert self._open is not None
        done, self._open = self._open, None
        self._ended.add(done.seq)
        return done


def _json_object(data: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"an event's data is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"an event's data is a JSON {type(obj).__name__}, not an object")
    return obj


def _audio(value: Any) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ProtocolError(f"audio_base64 is a {type(value).__name__}, not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"audio_base64 is not base64: {exc}") from exc


def _alignment(obj: dict[str, Any]) -> Alignment:
    duration = obj.get("audio_duration")
    raw = obj.get("segments") or []
    if not isinstance(raw, list):
        raise ProtocolError("alignment.segments is not a list")
    segments = []
    for i, seg in enumerate(raw):
        if not isinstance(seg, dict):
            raise ProtocolError(f"alignment.segments.{i} is not an object")
        start = _seconds(seg.get("start"), f"alignment.segments.{i}.start")
        end = _seconds(seg.get("end", start), f"alignment.segments.{i}.end")
        segments.append(AlignedSegment(str(seg.get("text") or ""), start, max(start, end)))
    return Alignment(
        None if duration is None else _seconds(duration, "alignment.audio_duration"),
        tuple(segments),
    )


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{name} is not a number (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"{name} must be a finite time of at least 0 (got {value!r})")
    return float(value)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{name} must be a whole number of at least 0 (got {value!r})")
    return value


__all__ = [
    "AlignedSegment",
    "Alignment",
    "ChunkAudio",
    "ChunkEnd",
    "SseDecoder",
    "StreamFailed",
    "TimestampEvent",
    "TimestampParser",
]
