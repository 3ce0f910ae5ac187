"""Encoder back ends: take float32 mono blocks at the output rate, write one file.

WAV and raw PCM are written by hand (a WAV header is 44 bytes, and writing
it ourselves is how the sizes come out right: write the PCM, then patch the
header).  FLAC, MP3, Opus and M4A go through PyAV, which reframes our blocks
to each encoder's frame size.  Every muxer runs with ``+bitexact`` so the same
audio always gives the same bytes (and the same checksum) on a retry.

MP3 encoding is most of a short job's CPU: LAME at its default algorithm
quality (``-q 3``) costs about 12 ms of a core per second of 44.1 kHz speech.
Where the bit budget is generous (:data:`MP3_FAST_BITS` bits a sample or more:
128 kbps at 44.1 or 48 kHz, 64 kbps at 24 kHz and below) it runs in its fast
mode instead (``-q 7``, ``lame -f``), at a bit over half that: the same
psychoacoustic model for block switching, but no noise shaping, which earns
its cost where bits are scarce.  (On speech at 128 kbps, the signal-to-noise
ratio of every band up to 8 kHz came out higher, that of 8-11 kHz about a
decibel lower.)  Below that budget LAME's default stands.

Every file is written beside its target and renamed into place
(:func:`replacing`), so the target only ever holds a whole file.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import av
import numpy as np
import numpy.typing as npt

from worker.audio.errors import EncodeError, OutputTooLarge
from worker.audio.formats import OutputFormat

FloatBlock = npt.NDArray[np.float32]

#: Largest WAV data chunk: the RIFF size (36 + data) must fit in 32 bits.
WAV_MAX_DATA_BYTES = 0xFFFFFFFF - 36 - 1  # minus 1 keeps it even
_WAV_HEADER_BYTES = 44

#: LAME's algorithm quality (0 slowest .. 9 fastest) for streams with a generous bit budget.
MP3_FAST_QUALITY = 7
#: Bits per sample (bitrate / sample rate) from which an MP3 stream is encoded at
#: :data:`MP3_FAST_QUALITY`; below it, LAME's default quality (noise shaping on).
MP3_FAST_BITS = 2.5

# (container format, codec, sample format we hand the encoder)
_AV_OUTPUTS: dict[OutputFormat, tuple[str, str, str]] = {
    OutputFormat.FLAC: ("flac", "flac", "s16"),
    OutputFormat.MP3: ("mp3", "libmp3lame", "flt"),
    OutputFormat.OPUS: ("ogg", "libopus", "flt"),
    # "ipod" is FFmpeg's MP4 muxer with the M4A brand (what .m4a/.m4b files use).
    OutputFormat.M4A: ("ipod", "aac", "flt"),
}


class Sink(Protocol):
    """Where assembled samples go."""

    def write(self, block: FloatBlock) -> None:
        """Append float32 mono samples in [-1, 1] at the output rate."""

    def close(self) -> None:
        """Finish the file (flush the encoder, write trailers, patch headers)."""

    def abort(self) -> None:
        """Release resources after a failure; the caller deletes the file."""


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A path beside ``path`` to write; renamed onto ``path`` if the block succeeds.

    On any error the partial file is removed and ``path`` is left as it was.
    """
    part = path.with_name(path.name + ".part")
    try:
        yield part
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def open_sink(fmt: OutputFormat, path: Path, sample_rate: int, bitrate_kbps: int | None) -> Sink:
    """A :class:`Sink` writing ``fmt`` to ``path`` (created or truncated)."""
    if fmt is OutputFormat.WAV:
        return WavSink(path, sample_rate)
    if fmt is OutputFormat.PCM:
        return RawSink(path)
    return AvSink(fmt, path, sample_rate, bitrate_kbps)


def to_s16(block: FloatBlock) -> npt.NDArray[np.int16]:
    """Float samples to s16, rounding and clipping (int16 / 32768 round-trips exactly)."""
    scaled = np.rint(block * 32768.0)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype("<i2")


class RawSink:
    """Headerless s16le mono."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")

    def write(self, block: FloatBlock) -> None:
        self._file.write(to_s16(block).tobytes())

    def close(self) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class WavSink:
    """RIFF/WAVE s16le mono with correct sizes, refusing to pass 4 GiB."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self._rate = sample_rate
        self._data_bytes = 0
        self._file: BinaryIO = path.open("wb")
        # Sizes are patched in close(); zeros until then mark it unfinished.
        self._file.write(wav_header(sample_rate, 0))

    def write(self, block: FloatBlock) -> None:
        data = to_s16(block).tobytes()
        if self._data_bytes + len(data) > WAV_MAX_DATA_BYTES:
            raise OutputTooLarge(wav_too_large_message(self._data_bytes + len(data)))
        self._file.write(data)
        self._data_bytes += len(data)

    def close(self) -> None:
        self._file.seek(0)
        self._file.write(wav_header(self._rate, self._data_bytes))
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """The canonical 44-byte header of a 16-bit mono PCM WAV file."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        _WAV_HEADER_BYTES - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # WAVE_FORMAT_PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        data_bytes,
    )


def wav_too_large_message(data_bytes: int) -> str:
    """Why a WAV of ``data_bytes`` cannot be written, and what to use instead."""
    return (
        f"format: a WAV file holds at most {WAV_MAX_DATA_BYTES} bytes of audio (4 GiB), "
        f"this output needs {data_bytes}; choose flac, m4a, mp3 or opus, or a lower sample rate"
    )


class AvStreamSink:
    """Writes blocks to one PyAV audio stream and muxes them.  Subclasses set
    ``_sample_format`` and call :meth:`_open` (which may raise ``av.FFmpegError``)."""

    _container: Any
    _stream: av.AudioStream
    _sample_format: str
    _rate: int
    _time_base: Fraction
    _pts: int

    def _open(
        self,
        path: Path,
        container_format: str,
        container_options: dict[str, str],
        codec: str,
        sample_rate: int,
        bitrate_kbps: int | None,
    ) -> None:
        """Open the container and its one mono audio stream, both bit-exact."""
        self._rate = sample_rate
        self._time_base = Fraction(1, sample_rate)
        self._pts = 0
        self._container = av.open(
            str(path),
            "w",
            format=container_format,
            options={"fflags": "+bitexact"},
            container_options=container_options,
        )
        options = codec_options(codec, sample_rate, bitrate_kbps)
        stream = self._container.add_stream(codec, rate=sample_rate, options=options)
        if not isinstance(stream, av.AudioStream):
            raise EncodeError(f"{codec} is not an audio encoder")
        self._stream = stream
        self._stream.layout = "mono"
        if bitrate_kbps is not None:
            # Without a quality flag libmp3lame runs CBR at this rate.
            self._stream.bit_rate = bitrate_kbps * 1000

    def write(self, block: FloatBlock) -> None:
        if not block.size:
            return
        array = to_s16(block) if self._sample_format == "s16" else block
        frame = av.AudioFrame.from_ndarray(
            array.reshape(1, -1), format=self._sample_format, layout="mono"
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += block.size
        self._encode(frame)

    def close(self) -> None:
        self._encode(None)  # drain the encoder
        try:
            self._container.close()
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot finish the output file: {exc}") from exc

    def abort(self) -> None:
        # Already failing: the original error is the one to report.
        with contextlib.suppress(av.FFmpegError):
            self._container.close()

    def _encode(self, frame: av.AudioFrame | None) -> None:
        try:
            self._container.mux(self._stream.encode(frame))
        except av.FFmpegError as exc:
            raise EncodeError(f"encoding failed: {exc}") from exc


def codec_options(codec: str, sample_rate: int, bitrate_kbps: int | None) -> dict[str, str]:
    """The encoder's options: bit-exact, and LAME's fast mode where bits are plentiful
    (see the module docstring)."""
    options = {"flags": "+bitexact"}
    plenty = bitrate_kbps is not None and bitrate_kbps * 1000 >= MP3_FAST_BITS * sample_rate
    if codec == "libmp3lame" and plenty:
        options["compression_level"] = str(MP3_FAST_QUALITY)
    return options


class AvSink(AvStreamSink):
    """One audio stream encoded and muxed by PyAV."""

    def __init__(
        self, fmt: OutputFormat, path: Path, sample_rate: int, bitrate_kbps: int | None
    ) -> None:
        container_format, codec, self._sample_format = _AV_OUTPUTS[fmt]
        container_options = {"movflags": "+faststart"} if fmt is OutputFormat.M4A else {}
        try:
            self._open(path, container_format, container_options, codec, sample_rate, bitrate_kbps)
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot start the {codec} encoder: {exc}") from exc
