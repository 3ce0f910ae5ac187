"""The timestamped client: ``POST /v1/tts/stream/with-timestamp`` over httpx, streamed.

One call of :func:`stream_tts_timestamped` is one provider request for one
segment: the same :class:`~worker.fish.client.ProviderConfig`,
:class:`~worker.fish.request.TTSRequest`, errors and write callback as
:func:`~worker.fish.client.stream_tts`, plus the segment's word and sentence
marks.  The reply is read as it arrives and parsed by
:class:`~worker.fish.timestamps.TimestampParser`.

- The callback always receives raw s16le mono PCM at the request's rate,
  whatever format was asked for: each chunk is a whole stream of its own, so
  ``pcm`` and ``wav`` chunks go through their own
  :class:`~worker.audio.pcm.PcmStream`, and ``mp3``/``opus`` chunks are decoded
  one by one with PyAV once complete.  Ask for ``pcm`` where possible: it
  streams without waiting for a chunk's end.
- A chunk's words are placed where its audio really starts in what the
  callback received (the samples written before it), which equals the
  provider's ``chunk_audio_offset_sec`` for PCM and stays right for decoded
  chunks whatever their codec delay.
- Marks are relative to the segment: milliseconds from its first sample, and
  characters of ``text`` as sent.  Sentences are built from the words; both
  are tidied (no overlap, nothing past the audio).
- A chunk that carried audio but no alignment makes the timings incomplete:
  :class:`~worker.fish.errors.ProviderFinishError` (transient, retried like a
  truncated segment) unless ``require_alignment=False``.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import httpx
import numpy as np
import ormsgpack

from worker.audio.errors import CorruptAudio
from worker.audio.pcm import PcmStream
from worker.fish.client import (
    USER_AGENT,
    AudioCallback,
    ProviderConfig,
    _status_error,
    next_or_timeout,
)
from worker.fish.errors import (
    ProtocolError,
    ProviderDropped,
    ProviderFinishError,
    ProviderTimeout,
)
from worker.fish.request import AudioFormat, TTSRequest
from worker.fish.timestamps import ChunkAudio, ChunkEnd, StreamFailed, TimestampParser
from worker.timings import Mark, MarkKind, locate, sentences, tidy

#: The path of the timestamped endpoint, under the provider's HTTP base URL.
TIMESTAMP_PATH = "/v1/tts/stream/with-timestamp"

_CONTAINERS = {AudioFormat.MP3: "mp3", AudioFormat.OPUS: "ogg"}
#: How much of a chunk's audio its alignment may leave out before its timings
#: count as incomplete (a decoder's padding, a rounded duration).
ALIGNMENT_SLACK_S = 0.25

#: Samples of priming LAME puts before an MP3's audio (576 of encoder delay and
#: 529 of decoder delay), dropped when a stream does not declare them.
MP3_PRIMING = 1105


def timestamp_url(ws_url: str) -> str:
    """The timestamped endpoint of the provider whose live WebSocket is ``ws_url``."""
    scheme, sep, rest = ws_url.partition("://")
    http = {"wss": "https", "ws": "http"}.get(scheme, scheme)
    base = rest.rstrip("/").removesuffix("/v1/tts/live")
    return f"{http}{sep}{base}{TIMESTAMP_PATH}"


@dataclass(frozen=True, slots=True)
class TimedStreamResult:
    """What one timestamped request produced."""

    audio_bytes: int  # PCM bytes handed to the callback
    sample_rate: int
    chunks: int
    text_bytes: int  # UTF-8 bytes sent: what the provider bills
    first_audio_s: float | None  # from the request to the first audio
    elapsed_s: float
    words: tuple[Mark, ...]  # ms from the segment's start; characters of the text sent
    sentences: tuple[Mark, ...]
    unaligned_chunks: tuple[int, ...]  # chunks with audio and no alignment

    @property
    def duration_ms(self) -> int:
        """Audio handed to the callback, in whole milliseconds."""
        return self.audio_bytes // 2 * 1000 // self.sample_rate

    @property
    def marks(self) -> tuple[Mark, ...]:
        """Sentences then words."""
        return self.sentences + self.words


async def stream_tts_timestamped(
    config: ProviderConfig,
    request: TTSRequest,
    text: str,
    on_audio: AudioCallback,
    *,
    url: str | None = None,
    cancel: asyncio.Event | None = None,
    require_alignment: bool = True,
) -> TimedStreamResult:
    """Speak ``text`` through the timestamped endpoint; PCM to ``on_audio``, marks returned.

    ``url`` defaults to the endpoint beside ``config.ws_url``.  Raises a
    ProviderError on failure and :class:`StreamCanceled` when ``cancel`` is set.
    """
    started = time.monotonic()
    body = ormsgpack.packb(request.model_copy(update={"text": text}).to_wire())
    headers = {
        **config.headers(),
        "Content-Type": "application/msgpack",
        "Accept": "text/event-stream",
        "User-Agent": USER_AGENT,
    }
    timeout = httpx.Timeout(config.connect_timeout, read=None)
    reader = _Reader(request, on_audio)
    first: float | None = None
    try:
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream(
                "POST", url or timestamp_url(config.ws_url), content=body, headers=headers
            ) as response,
        ):
            if response.status_code != 200:
                raise _status_error(response.status_code, await response.aread())
            chunks = response.aiter_bytes()
            while True:
                wait = config.first_audio_timeout if first is None else config.silence_timeout
                data = await _next(chunks, wait, cancel, waiting_first=first is None)
                if data is None:
                    break
                if await reader.feed(data) and first is None:
                    first = time.monotonic() - started
            await reader.close()
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(f"the provider did not answer in time: {exc!r}") from exc
    except httpx.TransportError as exc:
        raise ProviderDropped(f"the provider's reply broke off: {exc!r}") from exc
    except (ProtocolError, CorruptAudio, av.FFmpegError) as exc:
        raise ProviderDropped(f"the provider's reply is not valid: {exc}") from exc
    return reader.result(text, first, time.monotonic() - started, require_alignment)


async def _next(
    chunks: AsyncIterator[bytes],
    timeout: float,
    cancel: asyncio.Event | None,
    *,
    waiting_first: bool,
) -> bytes | None:
    """The next bytes of the reply, None at its end; timeouts and cancel raise."""
    return await next_or_timeout(anext(chunks, None), timeout, cancel, waiting_first=waiting_first)


class _Reader:
    """Parsed events to PCM for the callback, and where each chunk's audio began."""

    def __init__(self, request: TTSRequest, on_audio: AudioCallback) -> None:
        self.format = request.format
        self.rate = request.effective_sample_rate
        self.on_audio = on_audio
        self.parser = TimestampParser()
        self.written = 0  # PCM bytes handed on
        self.placement: dict[int, float] = {}  # chunk -> seconds of audio before it
        self._pcm: PcmStream | None = None
        self._held: list[bytes] = []  # a compressed chunk's bytes until it ends

    async def feed(self, data: bytes) -> bool:
        """Take reply bytes; whether any audio was among them."""
        return await self._handle(self.parser.feed(data))

    async def close(self) -> None:
        await self._handle(self.parser.close())

    async def _handle(self, events: list[ChunkAudio | ChunkEnd | StreamFailed]) -> bool:
        audio = False
        for event in events:
            if isinstance(event, StreamFailed):
                raise ProviderFinishError(f"the provider ended with an error: {event.message}")
            if isinstance(event, ChunkAudio):
                audio = True
                self.placement.setdefault(event.seq, self.written / 2 / self.rate)
                await self._audio(event.data)
            else:
                await self._end()
        return audio

    async def _audio(self, data: bytes) -> None:
        if self.format in _CONTAINERS:
            self._held.append(data)
            return
        if self._pcm is None:
            self._pcm = PcmStream(self.format)
        await self._write(self._pcm.feed(data))

    async def _end(self) -> None:
        if self._pcm is not None:
            tail, self._pcm = self._pcm.close(), None
            await self._write(tail)
        if self._held:
            joined, self._held = b"".join(self._held), []
            fmt = _CONTAINERS[AudioFormat(self.format)]
            await self._write(await asyncio.to_thread(decode_chunk, joined, fmt, self.rate))

    async def _write(self, pcm: bytes) -> None:
        if not pcm:
            return
        self.written += len(pcm)
        result = self.on_audio(pcm)
        if inspect.isawaitable(result):
            await result

    def result(
        self, text: str, first: float | None, elapsed: float, require_alignment: bool
    ) -> TimedStreamResult:
        unaligned = tuple(self.parser.unaligned())
        if unaligned and require_alignment:
            raise ProviderFinishError(f"timings incomplete: chunks {list(unaligned)} have none")
        if require_alignment and (short := self._short_alignment()) is not None:
            raise ProviderFinishError(f"timings incomplete: {short}")
        duration_ms = self.written // 2 * 1000 // self.rate
        words = locate(text, self.parser.segments(self.placement))
        marks = tidy([*sentences(text, words), *words], duration_ms)
        return TimedStreamResult(
            audio_bytes=self.written,
            sample_rate=self.rate,
            chunks=len(self.parser.offsets),
            text_bytes=len(text.encode()),
            first_audio_s=first,
            elapsed_s=elapsed,
            words=tuple(m for m in marks if m.kind is MarkKind.WORD),
            sentences=tuple(m for m in marks if m.kind is MarkKind.SENTENCE),
            unaligned_chunks=unaligned,
        )

    def _short_alignment(self) -> str | None:
        """Which chunk's newest alignment stops well short of its audio, if any: a
        provider whose timings broke off mid-chunk."""
        starts = sorted(self.placement.items(), key=lambda item: item[1])
        total = self.written / 2 / self.rate
        for n, (seq, start) in enumerate(starts):
            end = starts[n + 1][1] if n + 1 < len(starts) else total
            aligned = self.parser.alignments.get(seq)
            if aligned is None or aligned.audio_duration is None:
                continue
            if aligned.audio_duration < end - start - ALIGNMENT_SLACK_S:
                return (
                    f"chunk {seq} is aligned for {aligned.audio_duration:.2f}s "
                    f"of its {end - start:.2f}s of audio"
                )
        return None


def decode_chunk(data: bytes, container: str, rate: int) -> bytes:
    """One chunk's compressed stream decoded whole to s16le mono PCM at ``rate``.

    An MP3 stream whose first frame has no LAME tag does not declare its
    encoder's priming, so the decoder cannot drop it: LAME's 1105 samples
    (:data:`MP3_PRIMING`) are dropped here instead, or every chunk's words
    would sound 25 ms (at 44.1 kHz) after their marks.  Ogg Opus declares
    its pre-skip, which the decoder honours.
    """
    out: list[np.ndarray] = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(io.BytesIO(data), "r", format=container) as source:
        if not source.streams.audio:
            raise CorruptAudio(f"a {container} chunk has no audio stream")
        stream = source.streams.audio[0]
        skip = 0
        if container == "mp3" and not stream.start_time:
            skip = round(MP3_PRIMING * rate / (stream.codec_context.sample_rate or rate))
        for frame in source.decode(stream):
            out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    pcm = np.concatenate(out) if out else np.zeros(0, np.int16)
    return pcm[skip:].astype("<i2").tobytes()


__all__ = [
    "MP3_PRIMING",
    "TIMESTAMP_PATH",
    "TimedStreamResult",
    "decode_chunk",
    "stream_tts_timestamped",
    "timestamp_url",
]
