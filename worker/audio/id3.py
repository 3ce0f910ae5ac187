"""An audiobook's ID3v2.4 tag: title, author, cover and chapters, written by mutagen.

The chapters follow the ID3v2 Chapter Frame Addendum: one ``CHAP`` frame per
chapter (element id ``chN``, start and end in milliseconds, byte offsets
unused, a ``TIT2`` sub-frame with its title) and one top-level, ordered
``CTOC`` frame listing them in playing order.  Podcast and audiobook players
(and FFmpeg, which reads them as chapters) understand these.

The ``CHAP`` frames are also written in playing order: mutagen orders frames
by size, and readers that ignore ``CTOC`` (FFmpeg among them) list chapters
in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutagen import MutagenError
from mutagen.id3 import (
    APIC,
    CHAP,
    CTOC,
    ID3,
    TALB,
    TCON,
    TIT2,
    TPE1,
    TPE2,
    CTOCFlags,
    Encoding,
    Frame,
    PictureType,
)

from worker.audio.errors import EncodeError

#: CHAP byte offsets of 0xFFFFFFFF say "not given": times are what count.
_NO_OFFSET = 0xFFFFFFFF
_TOC_ID = "toc"


class _ChaptersInOrder(ID3):
    """An ID3 tag that writes its CHAP frames last and in the order they were added."""

    # mutagen's hook for a tag's frame bytes (ID3.save calls it); each CHAP frame
    # goes through a one-frame tag so mutagen still does all the encoding.
    def _write(self, config: Any) -> bytearray:
        chapters = self.getall("CHAP")
        rest = ID3()
        for frame in self.values():
            if frame.FrameID != "CHAP":
                rest.add(frame)
        data = bytearray(rest._write(config))
        for frame in chapters:
            one = ID3()
            one.add(frame)
            data += one._write(config)
        return data


@dataclass(frozen=True, slots=True)
class Id3Chapter:
    """One chapter's span in the file, in milliseconds from the start of the audio."""

    title: str
    start_ms: int
    end_ms: int


def write_book_tag(
    path: Path,
    *,
    title: str,
    author: str | None,
    genre: str,
    chapters: Sequence[Id3Chapter],
    cover: bytes | None = None,
    cover_type: str | None = None,
) -> None:
    """Put an ID3v2.4 tag at the start of the MP3 file at ``path``, replacing any.

    ``cover`` is attached as the front cover (``APIC`` type 3) with MIME type
    ``cover_type``.  Raises :class:`EncodeError` if the file cannot be written.
    """
    tag = _ChaptersInOrder()
    for frame in (
        *_book_frames(title, author, genre, cover, cover_type),
        *_chapter_frames(title, chapters),
    ):
        tag.add(frame)
    try:
        # mutagen shifts the audio in place by chunks, so memory stays small.
        tag.save(str(path), v1=0, v2_version=4)
    except (MutagenError, OSError) as exc:
        raise EncodeError(f"cannot write the ID3 tag: {exc}") from exc


def _book_frames(
    title: str, author: str | None, genre: str, cover: bytes | None, cover_type: str | None
) -> list[Frame]:
    """Title (as title and album), author (as artist and album artist), genre, cover."""
    frames: list[Frame] = [
        TIT2(encoding=Encoding.UTF8, text=[title]),
        TALB(encoding=Encoding.UTF8, text=[title]),
    ]
    if author:
        frames.append(TPE1(encoding=Encoding.UTF8, text=[author]))
        frames.append(TPE2(encoding=Encoding.UTF8, text=[author]))
    frames.append(TCON(encoding=Encoding.UTF8, text=[genre]))
    if cover is not None:
        frames.append(
            APIC(
                encoding=Encoding.UTF8,
                mime=cover_type or "image/jpeg",
                type=PictureType.COVER_FRONT,
                desc="Cover",
                data=cover,
            )
        )
    return frames


def _chapter_frames(title: str, chapters: Sequence[Id3Chapter]) -> list[Frame]:
    """The table of contents, then one ``CHAP`` frame per chapter in playing order."""
    ids = [f"ch{index}" for index in range(len(chapters))]
    toc = CTOC(
        element_id=_TOC_ID,
        flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
        child_element_ids=ids,
        sub_frames=[TIT2(encoding=Encoding.UTF8, text=[title])],
    )
    return [
        toc,
        *(
            CHAP(
                element_id=element_id,
                start_time=chapter.start_ms,
                end_time=chapter.end_ms,
                start_offset=_NO_OFFSET,
                end_offset=_NO_OFFSET,
                sub_frames=[TIT2(encoding=Encoding.UTF8, text=[chapter.title])],
            )
            for element_id, chapter in zip(ids, chapters, strict=True)
        ),
    ]
