"""Per-session streaming encoders: engine PCM in, the bytes of one audio stream out.

A :class:`StreamEncoder` lives for one session.  Every ``feed()`` takes int16
mono PCM at the engine's rate, applies the session's gain, resamples to the
requested rate and encodes; ``close()`` flushes.  Joining everything it
returned gives one complete stream in the requested format (docs/protocol.md,
'Audio payloads'):

- ``pcm``: raw s16le mono, no header;
- ``wav``: one RIFF/WAVE header at the very start, with Fish's placeholder
  sizes (the length is unknown while streaming), then s16le PCM;
- ``mp3``: CBR MP3 frames, mono, no ID3 tag;
- ``opus``: one Ogg Opus stream at 48 kHz; Ogg pages may straddle feeds.

A session that never fed audio produces no bytes at all, in every format.
"""

from __future__ import annotations

import logging
import struct
from fractions import Fraction

import av
import numpy as np

from worker.fish.request import SAMPLE_RATES, AudioFormat

log = logging.getLogger(__name__)

#: Fish's placeholder sizes in a streamed WAV header (its docs name them).
WAV_RIFF_SIZE = 0xFFFFFF24
WAV_DATA_SIZE = 0xFFFFFF00
WAV_HEADER_BYTES = 44

_CONTENT_TYPES = {
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.OPUS: "audio/ogg",
    # Raw s16le has no registered MIME type ("audio/L16" is big-endian).
    AudioFormat.PCM: "application/octet-stream",
}

# Ogg pages are closed every this many microseconds (the muxer's default is a
# second, and it holds one finished page back), so audio leaves within a feed
# or two rather than seconds later; ~1 kbps of page headers is the price.
_OGG_PAGE_US = 200_000
_MP3_QUALITY = 7
_OPUS_COMPLEXITY = 4


def content_type(fmt: AudioFormat | str) -> str:
    """The MIME type of a stream in ``fmt``; ``application/octet-stream`` if unknown."""
    try:
        return _CONTENT_TYPES[AudioFormat(fmt)]
    except ValueError:
        return "application/octet-stream"


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte s16le mono RIFF/WAVE header with Fish's placeholder sizes."""
    return (
        b"RIFF"
        + struct.pack("<I", WAV_RIFF_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", WAV_DATA_SIZE)
    )


def apply_gain(pcm: np.ndarray, volume_db: float) -> np.ndarray:
    """``pcm`` (int16) scaled by ``volume_db`` decibels, clipped to the int16 range."""
    if volume_db == 0:
        return pcm
    scaled = pcm.astype(np.float32) * np.float32(10 ** (volume_db / 20))
    return np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)


class _Sink:
    """A write-only file for the Ogg muxer, drained after every feed."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


class StreamEncoder:
    """Encodes one session's audio as a single stream, piece by piece.

    Not thread-safe; call ``feed`` and ``close`` from one thread at a time
    (running them in a worker thread is fine: they do not touch the loop).
    """

    def __init__(
        self,
        fmt: AudioFormat | str,
        sample_rate: int,
        *,
        native_rate: int,
        volume_db: float = 0.0,
        mp3_bitrate_kbps: int = 128,
        opus_bitrate_kbps: int = 32,
    ) -> None:
        self.fmt = AudioFormat(fmt)
        supported = SAMPLE_RATES[self.fmt]
        if sample_rate not in supported:
            raise ValueError(
                f"sample rate {sample_rate} Hz is not supported for {self.fmt.value} "
                f"(supported: {', '.join(map(str, supported))})"
            )
        if native_rate <= 0:
            raise ValueError(f"native_rate must be positive, got {native_rate}")
        self.sample_rate = sample_rate
        self.native_rate = native_rate
        self.volume_db = volume_db
        self.mp3_bitrate_kbps = mp3_bitrate_kbps
        self.opus_bitrate_kbps = opus_bitrate_kbps
        self.samples_in = 0  # at native_rate
        self.samples_out = 0  # at sample_rate, handed to the codec or written
        self._started = False
        self._closed = False
        # Keeps its filter state across feeds, so piece joins have no clicks.
        self._resampler = (
            av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            if sample_rate != native_rate
            else None
        )
        self._mp3: av.AudioCodecContext | None = None
        self._ogg: av.container.OutputContainer | None = None
        self._opus: av.AudioStream | None = None
        self._sink = _Sink()

    @property
    def duration(self) -> float:
        """Seconds of audio fed so far."""
        return self.samples_in / self.native_rate

    def feed(self, pcm: np.ndarray) -> bytes:
        """Encode int16 mono ``pcm`` at ``native_rate``; return the bytes ready now (maybe b"")."""
        if self._closed:
            raise RuntimeError("encoder is closed")
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected 1-D int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        if pcm.size == 0:
            return b""
        head = b"" if self._started else self._start()
        gained = apply_gain(pcm, self.volume_db)
        pts, self.samples_in = self.samples_in, self.samples_in + pcm.size
        if self._resampler is None and self.fmt in (AudioFormat.PCM, AudioFormat.WAV):
            # Already at the right rate and layout: skip PyAV (the benchmark's hot path).
            self.samples_out += gained.size
            return head + gained.astype("<i2", copy=False).tobytes()
        frame = av.AudioFrame.from_ndarray(gained.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.native_rate
        frame.pts = pts
        frame.time_base = Fraction(1, self.native_rate)
        frames = self._resampler.resample(frame) if self._resampler else [frame]
        return head + self._encode(frames)

    def close(self) -> bytes:
        """Flush the resampler and codec; return the last bytes of the stream (b"" if never fed)."""
        if self._closed:
            return b""
        self._closed = True
        if not self._started:
            return b""
        tail = self._encode(self._resampler.resample(None)) if self._resampler else b""
        if self._mp3 is not None:
            tail += b"".join(bytes(p) for p in self._mp3.encode(None))
        if self._ogg is not None and self._opus is not None:
            self._ogg.mux(self._opus.encode(None))
            self._ogg.close()  # writes the last page, with its end-of-stream flag
            tail += self._sink.drain()
        return tail

    # -- internals ---------------------------------------------------------------

    def _start(self) -> bytes:
        """Open the codec on the first audio, so an empty session costs and emits nothing."""
        self._started = True
        if self.fmt is AudioFormat.WAV:
            return wav_header(self.sample_rate)
        if self.fmt is AudioFormat.MP3:
            ctx = av.CodecContext.create("libmp3lame", "w")
            assert isinstance(ctx, av.AudioCodecContext)
            ctx.sample_rate = self.sample_rate
            ctx.layout = "mono"
            ctx.format = "s16p"
            ctx.bit_rate = self.mp3_bitrate_kbps * 1000  # CBR: lame's default with a bit rate
            ctx.time_base = Fraction(1, self.sample_rate)
            # lame's quality 7 ("fast, ok quality") encodes ~1.7x faster than its
            # default; a test server's speech loses nothing audible to it.
            ctx.options = {"compression_level": str(_MP3_QUALITY)}
            ctx.open()
            self._mp3 = ctx
        elif self.fmt is AudioFormat.OPUS:
            ogg = av.open(
                self._sink,
                "w",
                format="ogg",
                container_options={"page_duration": str(_OGG_PAGE_US), "flush_packets": "1"},
            )
            stream = ogg.add_stream(
                "libopus",
                rate=self.sample_rate,
                layout="mono",
                # Complexity 4 of 10 encodes ~3x faster than the default and is
                # plenty for speech; above 6 libopus switches to costly analysis.
                options={"compression_level": str(_OPUS_COMPLEXITY)},
            )
            if self.opus_bitrate_kbps > 0:  # -1000 = automatic: libopus picks
                stream.bit_rate = self.opus_bitrate_kbps * 1000
            self._ogg, self._opus = ogg, stream
        return b""

    def _encode(self, frames: list[av.AudioFrame]) -> bytes:
        out: list[bytes] = []
        for frame in frames:
            if frame.samples == 0:
                continue
            # Our own timestamps at the output rate: contiguous by construction.
            frame.pts = self.samples_out
            frame.time_base = Fraction(1, self.sample_rate)
            self.samples_out += frame.samples
            if self.fmt in (AudioFormat.PCM, AudioFormat.WAV):
                out.append(frame.to_ndarray().astype("<i2", copy=False).tobytes())
            elif self._mp3 is not None:
                out.extend(bytes(p) for p in self._mp3.encode(frame))
            elif self._ogg is not None and self._opus is not None:
                self._ogg.mux(self._opus.encode(frame))
        if self._ogg is not None:
            out.append(self._sink.drain())
        return b"".join(out)
