"""The files an audiobook is written as, their cover art, and reading chapter files back.

* :class:`BookEncoder` – float32 mono blocks in, one M4B or MP3 out, with
  the book's metadata, chapter markers and cover.
* :func:`inspect_cover` – check cover bytes are a JPEG or PNG image and
  read its size (an MP4 cover needs it).
* :func:`decode_to_pcm` – a chapter's finished output file (m4a, mp3, …)
  back to raw s16le mono, the secondary input path of
  :func:`~worker.audio.book.build_audiobook`.

M4B is AAC in FFmpeg's ``mp4`` muxer with the ``M4B `` brand: the chapters
go in both a QuickTime chapter track (Apple, FFmpeg) and a Nero ``chpl`` atom
(most other players), the metadata in iTunes ``ilst`` atoms (``stik`` 2 marks
an audiobook), and the cover in a ``covr`` atom, written by FFmpeg from an
attached-picture stream.  (The ``ipod`` muxer the other m4a outputs use
refuses picture streams.)  The moov atom goes first (+faststart).

MP3 is libmp3lame CBR with a LAME tag (gapless), muxed without a tag;
:func:`~worker.audio.id3.write_book_tag` adds the ID3v2.4 tag afterwards,
when the chapter times are final.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from worker.audio.errors import CorruptAudio, EncodeError, InvalidBook
from worker.audio.sinks import AvStreamSink, to_s16


class BookFormat(StrEnum):
    """Formats of a combined audiobook."""

    M4B = "m4b"  # AAC-LC in MP4 (brand M4B), chapter track + chpl, iTunes tags, covr
    MP3 = "mp3"  # MPEG Layer III CBR, LAME tag, ID3v2.4 with CHAP/CTOC and APIC


#: Content type of each book format (M4B is MP4 audio; the extension says "book").
CONTENT_TYPES = {BookFormat.M4B: "audio/mp4", BookFormat.MP3: "audio/mpeg"}
EXTENSIONS = {BookFormat.M4B: ".m4b", BookFormat.MP3: ".mp3"}
_COVER_CODECS = {"image/jpeg": "mjpeg", "image/png": "png"}


@dataclass(frozen=True, slots=True)
class Cover:
    """Cover art that decodes, with what an MP4 needs to know about it."""

    data: bytes
    mime: str  # image/jpeg or image/png
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Marker:
    """One chapter marker, in output samples."""

    title: str
    start: int
    end: int


def inspect_cover(data: bytes, declared_type: str | None) -> Cover:
    """Check ``data`` is a JPEG or PNG image (of ``declared_type`` if given); read its size.

    Raises :class:`InvalidBook` for anything else, or an image that does not decode.
    """
    if data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    else:
        raise InvalidBook("cover: not a JPEG or PNG image")
    if declared_type is not None:
        declared = declared_type.strip().lower().replace("image/jpg", "image/jpeg")
        if declared != mime:
            raise InvalidBook(f"cover: declared {declared_type} but the bytes are {mime}")
    try:
        with av.open(io.BytesIO(data), "r") as container:
            frame = next(container.decode(video=0))
            width, height = frame.width, frame.height
    except (av.FFmpegError, StopIteration, ValueError, IndexError) as exc:
        raise InvalidBook(f"cover: the {mime} image does not decode: {exc}") from exc
    return Cover(data, mime, width, height)


class BookEncoder(AvStreamSink):
    """One AAC or MP3 stream with the book's metadata, chapters and cover."""

    def __init__(
        self,
        fmt: BookFormat,
        path: Path,
        sample_rate: int,
        bitrate_kbps: int,
        *,
        title: str,
        author: str | None,
        genre: str,
        markers: list[Marker],
        cover: Cover | None,
    ) -> None:
        self._rate = sample_rate
        self._time_base = Fraction(1, sample_rate)
        self._pts = 0
        self._sample_format = "flt"
        try:
            if fmt is BookFormat.M4B:
                self._container = av.open(
                    str(path),
                    "w",
                    format="mp4",
                    options={"fflags": "+bitexact"},
                    container_options={"movflags": "+faststart", "brand": "M4B "},
                )
                codec = "aac"
                self._container.metadata.update(_mp4_metadata(title, author, genre))
                self._container.set_chapters(
                    [
                        {
                            "id": index + 1,
                            "start": marker.start,
                            "end": marker.end,
                            "time_base": self._time_base,
                            "metadata": {"title": marker.title},
                        }
                        for index, marker in enumerate(markers)
                    ]
                )
            else:
                # No tag from FFmpeg: the ID3 tag is written afterwards, chapters and all.
                self._container = av.open(
                    str(path),
                    "w",
                    format="mp3",
                    options={"fflags": "+bitexact"},
                    container_options={"id3v2_version": "0", "write_id3v1": "0"},
                )
                codec = "libmp3lame"
            stream = self._container.add_stream(
                codec, rate=sample_rate, options={"flags": "+bitexact"}
            )
            if not isinstance(stream, av.AudioStream):
                raise EncodeError(f"{codec} is not an audio encoder")
            self._stream = stream
            self._stream.layout = "mono"
            self._stream.bit_rate = bitrate_kbps * 1000
            if cover is not None and fmt is BookFormat.M4B:
                self._add_cover(cover)
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot start the {fmt} encoder: {exc}") from exc

    def _add_cover(self, cover: Cover) -> None:
        picture = self._container.add_mux_stream(
            _COVER_CODECS[cover.mime], width=cover.width, height=cover.height
        )
        picture.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.data)
        packet.stream = picture
        packet.pts = packet.dts = 0
        self._container.mux(packet)


def _mp4_metadata(title: str, author: str | None, genre: str) -> dict[str, str]:
    metadata = {"title": title, "album": title, "genre": genre, "media_type": "2"}
    if author:
        metadata.update(artist=author, album_artist=author)
    return metadata


def decode_to_pcm(source: Path, dest: Path) -> tuple[int, int]:
    """Decode the first audio stream of ``source`` to raw s16le mono at ``dest``.

    Streams frame by frame (memory stays flat); keeps the file's own sample
    rate; mixes other layouts down to mono; drops decoded audio past the length
    the container declares (AAC end padding).  Returns (sample rate, samples).
    Raises :class:`CorruptAudio` if ``source`` does not open or decode.
    """
    written = 0
    try:
        with av.open(str(source), "r") as container, dest.open("wb") as out:
            if not container.streams.audio:
                raise CorruptAudio(f"{source.name}: no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            limit = None
            if stream.duration is not None and stream.time_base is not None:
                limit = round(float(stream.duration * stream.time_base) * rate)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)

            def write(frames: list[av.AudioFrame]) -> None:
                nonlocal written
                for frame in frames:
                    block = np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
                    if limit is not None:
                        block = block[: max(0, limit - written)]
                    out.write(to_s16(block).tobytes())
                    written += block.size

            for frame in container.decode(stream):
                write(resampler.resample(frame))
            write(resampler.resample(None))
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, av.FFmpegError | OSError):
            raise CorruptAudio(f"{source.name}: cannot decode: {exc}") from exc
        raise
    return rate, written
