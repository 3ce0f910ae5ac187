"""``POST /v1/tts/stream/with-timestamp``: synthesis with word positions, as Server-Sent Events.

The request is the one ``POST /v1/tts`` takes (JSON or MessagePack
``TTSRequest``, Bearer key, ``model`` header).  The text is cut into chunks
exactly as a live session cuts it (:class:`worker.fish.ServerSession`), and
each chunk is spoken whole by the engine with its word positions
(:meth:`local_tts.engines.Engine.timed`).  The reply is ``text/event-stream``,
one JSON object per ``data:`` line, in the shape Fish Audio documents::

    {"audio_base64": "...", "content": "<the chunk's text>",
     "alignment": {"audio_duration": 1.2,
                   "segments": [{"text": "words", "start": 0.0, "end": 0.6}, ...]},
     "chunk_seq": 0, "chunk_audio_offset_sec": 0.0}

- A chunk is sent as several events, one per piece of about half a second.
  Its audio is one complete stream in the requested format (a fresh encoder
  per chunk): join the pieces of a chunk, decode each chunk on its own.
- Each event's ``alignment`` is a snapshot: every word that has begun in the
  chunk's audio sent so far, times in seconds from the chunk's start, and
  ``audio_duration`` the chunk's audio sent so far.  A later event of the same
  ``chunk_seq`` replaces it; the chunk's last event has every word.
- ``chunk_audio_offset_sec`` is where the chunk starts in the whole reply's
  audio: absolute time = offset + start.
- A segment is one word as the engine reported it, widened to the run of
  non-space characters it sits in (so ``"Dr."``, ``"don't"``, ``"world,"``).
- A failure after the headers is sent as ``{"event": "error", "message": ...}``
  and ends the stream; without one the stream ends after the last chunk.

Fault plans apply as on the live endpoint, counted in events: ``reject``
answers with its status, ``finish_error`` sends the error event, ``truncate``
drops the rest of the events (the stream still ends normally), ``unaligned``
sends the rest without their alignment, ``drop`` cuts the connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from local_tts.encoders import StreamEncoder
from local_tts.engines import Engine, WordSpan
from local_tts.faults import Fault, FaultAction
from local_tts.stats import SessionRecord
from local_tts.voices import Voice
from worker.fish import ServerSession, Start, Stop, Synthesize, TTSRequest
from worker.fish.request import AudioFormat

log = logging.getLogger(__name__)

#: The media type of the reply.
EVENT_STREAM = "text/event-stream"

#: Audio per event, in seconds: the size of a real provider's pieces.
PIECE_SECONDS = 0.5


class _Dropped(Exception):
    """A ``drop`` fault: the connection is cut without ending the stream."""


def chunks_of(tts: TTSRequest) -> list[str]:
    """The request's text cut into chunks exactly as a live session would cut it."""
    session = ServerSession()
    commands = session.receive_event(Start(tts)) + session.receive_event(Stop())
    return [command.text for command in commands if isinstance(command, Synthesize)]


def segments(text: str, words: tuple[WordSpan, ...], rate: int, upto: int) -> list[dict[str, Any]]:
    """The alignment segments of the words that begin before sample ``upto``, in seconds.

    A word's text is widened to the whitespace-free run it starts in, but never
    into the next word.
    """
    out: list[dict[str, Any]] = []
    for i, word in enumerate(words):
        if word.first >= upto:
            break
        limit = words[i + 1].start if i + 1 < len(words) else len(text)
        end = max(word.end, word.start)
        while end < limit and not text[end].isspace():
            end += 1
        out.append(
            {
                "text": text[word.start : end],
                "start": round(word.first / rate, 3),
                "end": round(min(word.last, upto) / rate, 3),
            }
        )
    return out


def sse(payload: dict[str, Any]) -> bytes:
    """One Server-Sent Event carrying ``payload`` as JSON on a single ``data:`` line."""
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


class TimestampStream:
    """The events of one timestamped request; iterate :meth:`events` once."""

    def __init__(
        self,
        engine: Engine,
        tts: TTSRequest,
        voice: Voice,
        record: SessionRecord,
        faults: list[Fault],
        on_close: Callable[[SessionRecord], None],
    ) -> None:
        self.engine = engine
        self.tts = tts
        self.voice = voice
        self.record = record
        self.faults = [f for f in faults if f.action is not FaultAction.REJECT]
        self.on_close = on_close
        self.truncated = False
        self.unaligned = False  # an unaligned fault: the rest goes without its timings

    async def events(self) -> AsyncIterator[bytes]:
        """Every event of the reply, chunk by chunk; always closes the stats record."""
        try:
            offset = 0  # samples at the engine's rate before the current chunk
            for seq, content in enumerate(chunks_of(self.tts)):
                timed = await self.engine.timed(content, self.voice, self.tts.speed)
                async for event in self._chunk(seq, content, timed.pcm, timed.words, offset):
                    yield event
                offset += len(timed.pcm)
            self.record.end = "stop"
        except _Dropped:
            self.record.end = "drop"
            raise
        except _ErrorSent:
            pass
        except Exception as exc:  # an engine or encoder failure ends this reply only
            log.exception("timestamped synthesis failed")
            self.record.end, self.record.error = "error", str(exc)
            yield sse({"event": "error", "message": f"synthesis failed: {exc}"})
        finally:
            self.on_close(self.record)

    async def _chunk(
        self, seq: int, content: str, pcm: np.ndarray, words: tuple[WordSpan, ...], offset: int
    ) -> AsyncIterator[bytes]:
        if not len(pcm):
            return
        rate = self.engine.native_rate
        encoder = StreamEncoder(
            self.tts.format,
            self.tts.effective_sample_rate,
            native_rate=rate,
            volume_db=self.tts.volume_db,
            mp3_bitrate_kbps=self.tts.mp3_bitrate,
            opus_bitrate_kbps=self.tts.opus_bitrate,
        )
        step = max(1, round(PIECE_SECONDS * rate))
        for start in range(0, len(pcm), step):
            stop = min(start + step, len(pcm))
            data = await self._encode(encoder, pcm[start:stop], last=stop == len(pcm))
            payload = {
                "audio_base64": base64.b64encode(data).decode("ascii"),
                "content": content,
                "alignment": {
                    "audio_duration": round(stop / rate, 3),
                    "segments": segments(content, words, rate, stop),
                },
                "chunk_seq": seq,
                "chunk_audio_offset_sec": round(offset / rate, 6),
            }
            if (event := await self._send(payload, len(data))) is not None:
                yield event
            if self.record.end == "error":
                yield sse({"event": "error", "message": self.record.error or "error"})
                raise _ErrorSent

    async def _encode(self, encoder: StreamEncoder, piece: np.ndarray, *, last: bool) -> bytes:
        def run() -> bytes:
            data = encoder.feed(piece)
            return data + encoder.close() if last else data

        if encoder.fmt in (AudioFormat.PCM, AudioFormat.WAV):
            return run()
        return await asyncio.to_thread(run)  # lossy encoding takes real CPU time

    async def _send(self, payload: dict[str, Any], size: int) -> bytes | None:
        """The event to send, or None when a truncate fault swallows it."""
        for fault in list(self.faults):
            if self.record.audio_events < fault.after_audio:
                continue
            self.faults.remove(fault)
            log.info("injecting %s after %d events", fault.action.value, self.record.audio_events)
            if fault.action is FaultAction.TRUNCATE:
                self.truncated = True
            elif fault.action is FaultAction.UNALIGNED:
                self.unaligned = True
            elif fault.action is FaultAction.FINISH_ERROR:
                self.record.end, self.record.error = "error", fault.message
                return None
            elif fault.action is FaultAction.DROP:
                raise _Dropped(fault.action.value)
        if self.truncated:
            self.record.audio_dropped += 1
            return None
        if self.unaligned:
            payload = {**payload, "alignment": None}
        self.record.audio_events += 1
        self.record.audio_bytes += size
        return sse(payload)


class _ErrorSent(Exception):
    """The error event has been sent; the stream ends."""
