"""Reading audio files back: the first audio stream, decoded to float32 mono blocks.

Finished files are read as samples again in three places: :func:`probe
<worker.audio.probe.probe>` checks that an output decodes,
:func:`~worker.audio.loudness.measure_loudness` measures a finished book, and
:func:`decode_to_pcm` turns a chapter's output file back into PCM for an
audiobook.  :func:`mono_blocks` drops decoded audio past the length the
container declares (AAC end padding), so what is read is what a player plays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from worker.audio.errors import CorruptAudio
from worker.audio.sinks import FloatBlock, to_s16

#: Decoded frames (about a thousand samples each) are handed on in blocks of at least this.
BLOCK_SAMPLES = 32768


def open_audio(
    path: Path | str, *, format: str | None = None, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    """Open ``path`` for reading; :class:`CorruptAudio` if FFmpeg cannot open it."""
    try:
        return av.open(str(path), "r", format=format, options=options)
    except (av.FFmpegError, OSError) as exc:
        raise CorruptAudio(f"{Path(path).name}: cannot open as audio: {exc}") from exc


def first_audio_stream(container: av.container.InputContainer, name: str) -> av.AudioStream:
    """The container's first audio stream; :class:`CorruptAudio` naming ``name`` if none."""
    if not container.streams.audio:
        raise CorruptAudio(f"{name}: no audio stream")
    return container.streams.audio[0]


def mono_blocks(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[FloatBlock]:
    """``stream`` decoded whole, mixed down to mono at its own rate, in blocks.

    Stops at the length the stream declares, if it declares one.  Raises
    ``av.FFmpegError`` as decoding meets damage; callers say what failed.
    """
    rate = stream.codec_context.sample_rate
    limit = None
    if stream.duration is not None and stream.time_base is not None and rate:
        limit = round(float(stream.duration * stream.time_base) * rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)

    def frames() -> Iterator[av.AudioFrame]:
        for frame in container.decode(stream):
            yield from resampler.resample(frame)
        yield from resampler.resample(None)

    pending: list[FloatBlock] = []
    held = taken = 0  # samples waiting in ``pending``; samples read in all
    for frame in frames():
        block = np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
        if limit is not None:
            block = block[: max(0, limit - taken)]
        taken += block.size
        pending.append(block)
        held += block.size
        if held >= BLOCK_SAMPLES:
            yield np.concatenate(pending)
            pending, held = [], 0
    if pending:
        yield np.concatenate(pending)


def decode_to_pcm(source: Path, dest: Path) -> tuple[int, int]:
    """Decode the first audio stream of ``source`` to raw s16le mono at ``dest``.

    Streams block by block (memory stays flat); keeps the file's own sample
    rate; mixes other layouts down to mono; drops decoded audio past the length
    the container declares (AAC end padding).  Returns (sample rate, samples).
    Raises :class:`CorruptAudio` if ``source`` does not open or decode.
    """
    written = 0
    try:
        with av.open(str(source), "r") as container, dest.open("wb") as out:
            stream = first_audio_stream(container, source.name)
            rate = stream.codec_context.sample_rate
            for block in mono_blocks(container, stream):
                out.write(to_s16(block).tobytes())
                written += block.size
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, av.FFmpegError | OSError):
            raise CorruptAudio(f"{source.name}: cannot decode: {exc}") from exc
        raise
    return rate, written
