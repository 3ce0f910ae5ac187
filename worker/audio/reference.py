"""Checks on voice-cloning reference audio before it is sent to the provider.

An unreadable clip is a permanent error of the job (``reference_audio_unreadable``): better said
clearly here than as a vague ``finish``/``error`` from the provider.
"""

from __future__ import annotations

import io

import av

from worker.audio.errors import CorruptAudio

#: Longest reference clip accepted, in seconds (voice cloning needs ~10-30 s).
MAX_REFERENCE_SECONDS = 300.0


def check_reference_audio(data: bytes) -> float:
    """Decode ``data`` fully; return its duration in seconds or raise :class:`CorruptAudio`."""
    if not data:
        raise CorruptAudio("reference audio is empty")
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise CorruptAudio("reference file has no audio stream")
            stream = container.streams.audio[0]
            samples = 0
            rate = 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate
                if rate and samples / rate > MAX_REFERENCE_SECONDS:
                    raise CorruptAudio(
                        f"reference audio is longer than {MAX_REFERENCE_SECONDS:g} seconds"
                    )
    except CorruptAudio:
        raise
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise CorruptAudio(f"not a readable audio file ({exc})") from exc
    if not samples or not rate:
        raise CorruptAudio("reference audio decodes to no samples")
    return samples / rate
