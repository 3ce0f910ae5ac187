"""Decode a whole audio file and say what it is, or why it is broken.

:func:`probe` is how tests (and the worker, before it uploads) check that an
output "decodes cleanly": every packet is decoded and counted, decoder and
demuxer errors are captured from FFmpeg's log, and a file that decodes to
less audio than its header declares is reported as truncated.  Two checks
FFmpeg does not make: a WAV's RIFF and data sizes must match the file (not
placeholders), and an Ogg stream must end with its end-of-stream page.

Durations are counted from decoded samples, so encoder priming is already
gone where the container says how much to skip (the LAME tag in MP3, Opus
pre-skip, the MP4 edit list's start).  AAC's end padding is not trimmed by
the decoder; the MP4 edit list declares the true length, and we use it.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import av.logging

from worker.audio.decode import first_audio_stream, open_audio
from worker.audio.errors import CorruptAudio

# Make decoders fail loudly where they would otherwise conceal damage.
_DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer+explode"}
# Decoded audio may exceed the declared length by this many samples (AAC end
# padding: under two 1024-sample frames) and be trimmed to it.
_MAX_END_PADDING = 4096
# Opus pre-skip makes the Ogg length read a few ms long; more than this short is a truncation.
_TRUNCATION_SLACK_S = 0.05
_TRUNCATION_SLACK_RATIO = 0.005
_MAX_WAV_HEADER = 64 * 1024
_OGG_MAX_PAGE = 27 + 255 + 255 * 255  # header, lacing values, body


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """What a full decode of an audio file found."""

    format_name: str  # FFmpeg's demuxer name: "wav", "mp3", "ogg", "flac", "mov,mp4,m4a,..."
    codec: str  # canonical codec name: "pcm_s16le", "mp3", "opus", "flac", "aac"
    sample_rate: int  # the decoded rate (Opus always decodes at 48000)
    channels: int
    duration_s: float
    samples: int  # decoded samples per channel, after end trimming


def probe(path: Path | str, *, raw_pcm_rate: int | None = None) -> ProbeInfo:
    """Decode all of ``path`` and describe it; raise :class:`CorruptAudio` on any error.

    Headerless s16le mono (``pcm`` outputs) has nothing to detect, so pass its
    rate as ``raw_pcm_rate``.
    """
    name = Path(path).name
    found = _decode(path, raw_pcm_rate)
    rate, decoded, declared = found.sample_rate, found.samples, found.declared_s
    if not rate:
        raise CorruptAudio(f"{name}: no sample rate")
    if found.format_name == "wav":
        _check_wav_sizes(Path(path))
    if found.format_name == "ogg" and not _ogg_ends_with_eos(Path(path)):
        raise CorruptAudio(f"{name}: the Ogg stream has no end-of-stream page (truncated)")
    samples = decoded
    if declared is not None:
        declared_samples = round(declared * rate)
        slack = _TRUNCATION_SLACK_S + _TRUNCATION_SLACK_RATIO * declared
        if decoded / rate < declared - slack:
            raise CorruptAudio(
                f"{name}: header declares {declared:.3f} s but only {decoded / rate:.3f} s "
                "decode (truncated, or placeholder sizes)"
            )
        if 0 < decoded - declared_samples <= _MAX_END_PADDING:
            samples = declared_samples
    return ProbeInfo(found.format_name, found.codec, rate, found.channels, samples / rate, samples)


@dataclass(frozen=True, slots=True)
class _Decoded:
    """What decoding every packet found, before the checks on it."""

    format_name: str
    codec: str
    sample_rate: int  # of the last frame, else the stream's
    channels: int
    samples: int  # decoded samples per channel
    declared_s: float | None  # the length the container claims


def _decode(path: Path | str, raw_pcm_rate: int | None) -> _Decoded:
    """Decode every packet of the first audio stream; any decoder complaint is an error."""
    name = Path(path).name
    with _captured_errors() as errors:
        if raw_pcm_rate is None:
            container = open_audio(path)
        else:
            options = {"sample_rate": str(raw_pcm_rate), "ch_layout": "mono"}
            container = open_audio(path, format="s16le", options=options)
        with container:
            stream = first_audio_stream(container, name)
            stream.codec_context.options = dict(_DECODER_OPTIONS)
            decoded = 0
            rate = stream.codec_context.sample_rate
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        decoded += frame.samples
                        rate = frame.sample_rate
            except av.FFmpegError as exc:
                raise CorruptAudio(
                    f"{name}: decoding failed after {decoded} samples: {exc}"
                ) from exc
            found = _Decoded(
                container.format.name,
                stream.codec_context.codec.canonical_name,
                rate,
                stream.codec_context.channels,
                decoded,
                _declared_seconds(container, stream),
            )
    if errors:
        shown = "; ".join(errors[:3]) + ("; …" if len(errors) > 3 else "")
        raise CorruptAudio(f"{name}: decoding reported {len(errors)} error(s): {shown}")
    return found


def _declared_seconds(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    """The length the container claims, if it claims one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_wav_sizes(path: Path) -> None:
    """Raise :class:`CorruptAudio` unless the RIFF and data sizes match the file.

    FFmpeg reads a streamed WAV with placeholder sizes without complaint,
    but other tools do not, and a finished file must say how long it is.
    """
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        head = f.read(_MAX_WAV_HEADER)
    if head[:4] != b"RIFF":
        return  # RF64 and friends keep their sizes elsewhere
    (riff_size,) = struct.unpack_from("<I", head, 4)
    if riff_size + 8 != size:
        raise CorruptAudio(
            f"{path.name}: RIFF size says {riff_size + 8} bytes, the file has {size} "
            "(placeholder sizes, or truncated)"
        )
    pos = 12
    while pos + 8 <= len(head):
        chunk_id, chunk_size = struct.unpack_from("<4sI", head, pos)
        if chunk_id == b"data":
            if pos + 8 + chunk_size > size:
                raise CorruptAudio(
                    f"{path.name}: data chunk says {chunk_size} bytes, the file holds "
                    f"{size - pos - 8} (placeholder sizes, or truncated)"
                )
            return
        pos += 8 + chunk_size + (chunk_size & 1)
    raise CorruptAudio(f"{path.name}: no data chunk in the WAV header")


def _ogg_ends_with_eos(path: Path) -> bool:
    """Whether the last Ogg page is complete and flagged end-of-stream.

    An Ogg file cut short still decodes cleanly up to the cut and its
    granule positions then declare the shorter length, so the missing EOS
    flag is the only sign.
    """
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - _OGG_MAX_PAGE))
        tail = f.read()
    start = tail.rfind(b"OggS")
    if start < 0 or len(tail) < start + 27:
        return False
    flags, segments = tail[start + 5], tail[start + 26]
    if len(tail) < start + 27 + segments:
        return False
    body = sum(tail[start + 27 : start + 27 + segments])
    return bool(flags & 0x04) and len(tail) == start + 27 + segments + body


_log_lock = threading.Lock()
_log_users = 0
_log_saved: tuple[int | None, bool] = (None, True)


@contextmanager
def _captured_errors() -> Iterator[list[str]]:
    """Collect FFmpeg error messages logged by this thread.

    PyAV drops FFmpeg's log by default, and many decoders only *log*
    damage they conceal.  Turn the log on at ERROR while any probe runs
    (counted, so concurrent probes do not switch it off under each other)
    and capture this thread's messages instead of sending them to logging.
    """
    global _log_users, _log_saved
    with _log_lock:
        if _log_users == 0:
            _log_saved = (av.logging.get_level(), av.logging.get_skip_repeated())
            level = _log_saved[0]
            if level is None or level < av.logging.ERROR:
                av.logging.set_level(av.logging.ERROR)
            # Repeats of the same message must still count, and no stale
            # "repeated N times" line should land in our capture.
            av.logging.set_skip_repeated(False)
        _log_users += 1
    errors: list[str] = []
    try:
        with av.logging.Capture() as logs:
            yield errors
            errors.extend(
                f"[{source}] {message.strip()}"
                for level, source, message in logs
                if level <= av.logging.ERROR
            )
    finally:
        with _log_lock:
            _log_users -= 1
            if _log_users == 0:
                av.logging.set_level(_log_saved[0])
                av.logging.set_skip_repeated(_log_saved[1])
