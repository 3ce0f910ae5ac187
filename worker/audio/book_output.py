"""The files an audiobook is written as, and their cover art.

* :class:`BookEncoder` – float32 mono blocks in, one M4B or MP3 out, with
  the book's metadata, chapter markers and cover.
* :class:`BookRemuxer` – an M4B from AAC packets already encoded (the
  chapters' sections, :mod:`~worker.audio.book_sections`), tagged the same way.
* :func:`inspect_cover` – check cover bytes are a JPEG or PNG image and
  read its size (an MP4 cover needs it).

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

import contextlib
import io
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from worker.audio.errors import EncodeError, InvalidBook
from worker.audio.sinks import AvStreamSink


class BookFormat(StrEnum):
    """Formats of a combined audiobook."""

    M4B = "m4b"  # AAC-LC in MP4 (brand M4B), chapter track + chpl, iTunes tags, covr
    MP3 = "mp3"  # MPEG Layer III CBR, LAME tag, ID3v2.4 with CHAP/CTOC and APIC


#: Content type of each book format (M4B is MP4 audio; the extension says "book").
CONTENT_TYPES = {BookFormat.M4B: "audio/mp4", BookFormat.MP3: "audio/mpeg"}
EXTENSIONS = {BookFormat.M4B: ".m4b", BookFormat.MP3: ".mp3"}
_COVER_CODECS = {"image/jpeg": "mjpeg", "image/png": "png"}
# (container format, its options, codec) of each book format.  M4B is FFmpeg's
# "mp4" muxer: the "ipod" one the m4a outputs use refuses picture streams.  An MP3
# gets no tag from FFmpeg: the ID3 tag is written afterwards, chapters and all.
_CONTAINERS = {
    BookFormat.M4B: ("mp4", {"movflags": "+faststart", "brand": "M4B "}, "aac"),
    BookFormat.MP3: ("mp3", {"id3v2_version": "0", "write_id3v1": "0"}, "libmp3lame"),
}


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


@dataclass(frozen=True, slots=True)
class BookTags:
    """What a book file says of itself: its tags, chapter markers and cover."""

    title: str
    author: str | None
    genre: str
    markers: list[Marker]
    cover: Cover | None


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
        tags: BookTags,
    ) -> None:
        self._sample_format = "flt"
        container_format, container_options, codec = _CONTAINERS[fmt]
        try:
            self._open(path, container_format, container_options, codec, sample_rate, bitrate_kbps)
            if fmt is BookFormat.M4B:
                _dress_m4b(self._container, self._time_base, tags)
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot start the {fmt} encoder: {exc}") from exc


class BookRemuxer:
    """An M4B from AAC packets encoded elsewhere: no encoder, the same tags, chapters and cover.

    ``template`` is the audio stream the packets come from (its codec
    parameters are copied).  :meth:`mux` takes packets in order, each
    :data:`~worker.audio.book_sections.FRAME` samples long.
    """

    def __init__(
        self,
        path: Path,
        template: av.AudioStream,
        sample_rate: int,
        tags: BookTags,
    ) -> None:
        container_format, container_options, _ = _CONTAINERS[BookFormat.M4B]
        self._time_base = Fraction(1, sample_rate)
        self._pts = 0
        try:
            self._container: Any = av.open(
                str(path),
                "w",
                format=container_format,
                options={"fflags": "+bitexact"},
                container_options=container_options,
            )
            self._stream = self._container.add_stream_from_template(template)
            _dress_m4b(self._container, self._time_base, tags)
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot start the m4b muxer: {exc}") from exc

    def mux(self, packet: av.Packet, samples: int) -> None:
        """Append ``packet`` (``samples`` long) after everything muxed so far."""
        packet.stream = self._stream
        packet.time_base = self._time_base
        packet.pts = packet.dts = self._pts
        packet.duration = samples
        self._pts += samples
        try:
            self._container.mux(packet)
        except av.FFmpegError as exc:
            raise EncodeError(f"muxing the book failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._container.close()
        except av.FFmpegError as exc:
            raise EncodeError(f"cannot finish the book file: {exc}") from exc

    def abort(self) -> None:
        with contextlib.suppress(av.FFmpegError):
            self._container.close()


def _dress_m4b(container: Any, time_base: Fraction, tags: BookTags) -> None:
    """An M4B's tags, chapter markers and cover, on its open ``container``."""
    container.metadata.update(_mp4_metadata(tags.title, tags.author, tags.genre))
    container.set_chapters(
        [
            {
                "id": index + 1,
                "start": marker.start,
                "end": marker.end,
                "time_base": time_base,
                "metadata": {"title": marker.title},
            }
            for index, marker in enumerate(tags.markers)
        ]
    )
    cover = tags.cover
    if cover is not None:
        picture = container.add_mux_stream(
            _COVER_CODECS[cover.mime], width=cover.width, height=cover.height
        )
        picture.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.data)
        packet.stream = picture
        packet.pts = packet.dts = 0
        container.mux(packet)


def _mp4_metadata(title: str, author: str | None, genre: str) -> dict[str, str]:
    metadata = {"title": title, "album": title, "genre": genre, "media_type": "2"}
    if author:
        metadata.update(artist=author, album_artist=author)
    return metadata
