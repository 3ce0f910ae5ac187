"""Combine a book's chapters into one audiobook (M4B or MP3) with markers, tags and loudness.

Input: each chapter's audio as the raw s16le mono PCM pieces it was
synthesised in (:class:`ChapterAudio`), the same files its own job assembled
from.  That is the primary path: lossless, so the book is encoded once from
the provider's samples and has no generation loss.  A chapter known only by
its finished output file can be decoded back to PCM first
(:func:`chapter_from_file`), at the cost of one more lossy generation.

:func:`build_audiobook` reads top-down, one module a step:

1. check what was asked: format, rate, bitrate, silences, cover;
2. pass 1 (:mod:`~worker.audio.book_render`): render every chapter to count
   its samples and, when normalising, measure it and fit its gain;
3. lay the book out (:mod:`~worker.audio.book_layout`): where each chapter,
   silence and chapter marker sits;
4. pass 2: render every chapter again through its gain, room tone and the
   limiter (:mod:`~worker.audio.normalize`) into the encoder
   (:mod:`~worker.audio.book_output`); tag an MP3 (:mod:`~worker.audio.id3`);
   rename the file into place;
5. with loudness, decode the finished file once more and measure it
   (:mod:`~worker.audio.loudness`); the manifest
   (:mod:`~worker.audio.book_manifest`) reports those figures.

The audio is streamed block by block in both passes, with memory flat
however long the book.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from worker.audio.assemble import check_lengths, ms_to_samples
from worker.audio.book_layout import Layout
from worker.audio.book_manifest import AudiobookResult, ChapterLoudness, ManifestChapter
from worker.audio.book_output import (
    CONTENT_TYPES,
    BookEncoder,
    BookFormat,
    BookTags,
    Cover,
    Marker,
    inspect_cover,
)
from worker.audio.book_render import ChapterAudio, Levels, Renderer, play_book
from worker.audio.decode import decode_to_pcm
from worker.audio.errors import InvalidBook
from worker.audio.formats import OutputFormat, format_info, parse_format, validate_output
from worker.audio.id3 import Id3Chapter, write_book_tag
from worker.audio.loudness import LoudnessReport, LoudnessTarget, measure_loudness
from worker.audio.sinks import Sink, replacing
from worker.digest import file_digest

logger = logging.getLogger(__name__)

# The encoder settings each book format shares with a job output format.
_CODEC_FORMATS = {BookFormat.M4B: OutputFormat.M4A, BookFormat.MP3: OutputFormat.MP3}


@dataclass(frozen=True, slots=True)
class BookMeta:
    """Tags of the book."""

    title: str
    author: str | None = None
    cover: bytes | None = None
    cover_type: str | None = None  # image/jpeg or image/png; sniffed from the bytes if None
    genre: str = "Audiobook"


class Placed(Protocol):
    """What the manifest says of a chapter besides its place: its size in text, its file."""

    @property
    def chars(self) -> int: ...

    @property
    def file(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class BookRequest:
    """What a book build was asked, checked, with the defaults filled in (:func:`check_book`)."""

    format: BookFormat
    sample_rate: int
    bitrate_kbps: int
    silence_ms: tuple[int, int, int]  # head, between chapters, tail; room tone's least applied
    loudness: LoudnessTarget | None
    cover: Cover | None
    titles: tuple[str, ...]


def build_audiobook(
    chapters: Sequence[ChapterAudio],
    out_path: Path,
    fmt: BookFormat | str,
    meta: BookMeta,
    *,
    sample_rate: int = 44100,
    bitrate_kbps: int | None = None,
    chapter_silence_ms: int = 1000,
    head_silence_ms: int = 500,
    tail_silence_ms: int = 1000,
    loudness: LoudnessTarget | None = None,
    block_samples: int = 32768,
) -> AudiobookResult:
    """Join ``chapters`` in order into one ``fmt`` audiobook at ``out_path``.

    ``sample_rate`` and ``bitrate_kbps`` follow the m4a (for m4b) or mp3
    output rules (bitrate defaults to that format's default).  With
    ``loudness``, each chapter is brought to the target RMS, peaks are limited,
    inserted silence becomes room tone, and the result is measured.

    Raises :class:`InvalidBook` for no chapters, a chapter without audio, or a
    cover that is not a JPEG or PNG image; :class:`UnsupportedOutput` for a
    bad format, rate or bitrate; :class:`CorruptAudio` for a PCM file that is
    missing, not whole samples, or changes while the book is built; and
    :class:`EncodeError` if encoding fails.  The file is written beside
    ``out_path`` and renamed into place; on error nothing is left.
    """
    started = time.monotonic()
    silences = (head_silence_ms, chapter_silence_ms, tail_silence_ms)
    asked = check_book(
        [c.title for c in chapters],
        fmt,
        meta,
        sample_rate,
        bitrate_kbps,
        silences,
        loudness,
        block_samples,
    )
    render = Renderer(sample_rate, block_samples)
    levels, layout, gains = _pass_one(render, chapters, asked)
    play = functools.partial(play_book, render, chapters, layout, gains, loudness)
    _write(out_path, asked, meta, layout.markers(asked.titles), play)
    reports = [(lv.report.rms_db, lv.report.peak_db) if lv.report else None for lv in levels]
    return finish_book(out_path, asked, meta, layout, chapters, reports, gains, started)


def finish_book(
    out_path: Path,
    asked: BookRequest,
    meta: BookMeta,
    layout: Layout,
    chapters: Sequence[Placed],
    levels: Sequence[tuple[float, float] | None],
    gains: Sequence[float],
    started: float,
) -> AudiobookResult:
    """The written book at ``out_path`` measured (with a loudness target) and described.

    ``levels`` are each chapter's RMS and peak before its gain, when
    normalising; ``started`` is when the build began (``time.monotonic``), for the log.
    """
    rate = asked.sample_rate
    digest = file_digest(out_path)
    placed = _manifest_chapters(layout, chapters, asked.titles, rate)
    measured, chapter_loudness = _measure(out_path, placed, levels, gains, asked.loudness)
    result = AudiobookResult(
        path=out_path,
        format=asked.format,
        duration_s=layout.total / rate,
        bytes=digest.size,
        sha256=digest.hexdigest(),
        content_type=CONTENT_TYPES[asked.format],
        chapters=placed,
        loudness=measured,
        title=meta.title,
        author=meta.author,
        sample_rate=rate,
        bitrate_kbps=asked.bitrate_kbps,
        silence_ms=asked.silence_ms,
        loudness_target=asked.loudness,
        chapter_loudness=chapter_loudness,
    )
    _log_built(result, time.monotonic() - started)
    return result


def chapter_from_file(
    title: str, source: Path, pcm_path: Path, *, chars: int = 0, file: str | None = None
) -> ChapterAudio:
    """A :class:`ChapterAudio` from a chapter's finished output file (m4a, mp3, flac, …).

    The secondary input path: decodes ``source`` to raw PCM at ``pcm_path``
    (streaming) at the file's own rate.  A lossy source is then encoded a
    second time, so prefer the chapter's segment PCM where it is still kept.
    Raises :class:`CorruptAudio` if ``source`` does not decode.
    """
    rate, _ = decode_to_pcm(source, pcm_path)
    return ChapterAudio(title=title, pcm=(pcm_path,), sample_rate=rate, chars=chars, file=file)


def check_book(
    titles: Sequence[str],
    fmt: BookFormat | str,
    meta: BookMeta,
    sample_rate: int,
    bitrate_kbps: int | None,
    silence_ms: tuple[int, int, int],
    loudness: LoudnessTarget | None,
    block_samples: int,
) -> BookRequest:
    """Check a book request in the order :func:`build_audiobook` documents its errors;
    fill in the defaults (the bitrate, room tone's least head and tail, chapter titles)."""
    book_format = parse_format(BookFormat, fmt, "is not an audiobook format")
    codec_format = _CODEC_FORMATS[book_format]
    validate_output(codec_format, sample_rate, bitrate_kbps)
    bitrate = bitrate_kbps or format_info(codec_format).default_bitrate_kbps
    assert bitrate is not None  # lossy formats have a default
    if not titles:
        raise InvalidBook("a book needs at least one chapter")
    if not meta.title.strip():
        raise InvalidBook("a book needs a title")
    head, gap, tail = silence_ms
    check_lengths(block_samples, head_silence_ms=head, chapter_silence_ms=gap, tail_silence_ms=tail)
    if loudness is not None:
        head = max(head, loudness.room_tone_ms[0])
        tail = max(tail, loudness.room_tone_ms[1])
    cover = inspect_cover(meta.cover, meta.cover_type) if meta.cover is not None else None
    named = tuple(t.strip() or f"Chapter {i + 1}" for i, t in enumerate(titles))
    return BookRequest(book_format, sample_rate, bitrate, (head, gap, tail), loudness, cover, named)


def _pass_one(
    render: Renderer, chapters: Sequence[ChapterAudio], asked: BookRequest
) -> tuple[list[Levels], Layout, list[float]]:
    """Every chapter's length and levels, where it sits, and its gain; none may be empty."""
    loudness = asked.loudness
    levels = [render.measure(c, with_levels=loudness is not None) for c in chapters]
    for index, level in enumerate(levels):
        if not level.samples:
            raise InvalidBook(f"chapter {index + 1} ({asked.titles[index]!r}) has no audio")
    head, gap, tail = (ms_to_samples(ms, render.sample_rate) for ms in asked.silence_ms)
    layout = Layout.of([level.samples for level in levels], head, gap, tail)
    gains = [
        render.fit_gain(chapter, level.report, loudness) if loudness and level.report else 0.0
        for chapter, level in zip(chapters, levels, strict=True)
    ]
    return levels, layout, gains


def _write(
    out_path: Path,
    asked: BookRequest,
    meta: BookMeta,
    markers: list[Marker],
    play: Callable[[Sink], None],
) -> None:
    """Pass 2 into a file beside ``out_path``, tag it, and rename it into place."""
    with replacing(out_path) as part:
        encoder = BookEncoder(
            asked.format,
            part,
            asked.sample_rate,
            asked.bitrate_kbps,
            BookTags(meta.title, meta.author, meta.genre, markers, asked.cover),
        )
        try:
            play(encoder)
        except BaseException:
            encoder.abort()
            raise
        encoder.close()
        if asked.format is BookFormat.MP3:
            rate, cover = asked.sample_rate, asked.cover
            write_book_tag(
                part,
                title=meta.title,
                author=meta.author,
                genre=meta.genre,
                chapters=[
                    Id3Chapter(m.title, _to_ms(m.start, rate), _to_ms(m.end, rate)) for m in markers
                ],
                cover=cover.data if cover else None,
                cover_type=cover.mime if cover else None,
            )


def _manifest_chapters(
    layout: Layout, chapters: Sequence[Placed], titles: Sequence[str], rate: int
) -> tuple[ManifestChapter, ...]:
    """Each chapter's place in the book, in seconds, for the manifest."""
    return tuple(
        ManifestChapter(
            index=i,
            title=titles[i],
            start_s=layout.marker_start(i) / rate,
            end_s=layout.marker_end(i) / rate,
            audio_start_s=layout.starts[i] / rate,
            duration_s=layout.counts[i] / rate,
            chars=chapter.chars,
            file=chapter.file,
        )
        for i, chapter in enumerate(chapters)
    )


def _measure(
    out_path: Path,
    chapters: Sequence[ManifestChapter],
    levels: Sequence[tuple[float, float] | None],
    gains: Sequence[float],
    loudness: LoudnessTarget | None,
) -> tuple[LoudnessReport | None, tuple[ChapterLoudness, ...]]:
    """The finished file's loudness, whole and per chapter; nothing without a target."""
    if loudness is None:
        return None, ()
    spans = [(c.audio_start_s, c.audio_start_s + c.duration_s) for c in chapters]
    measured = measure_loudness(out_path, spans=spans)
    chapter_loudness = tuple(
        ChapterLoudness(i, level[0], level[1], gains[i], section)
        for i, (level, section) in enumerate(zip(levels, measured.sections, strict=True))
        if level is not None
    )
    problems = measured.problems(loudness)
    if problems:
        # Reported in the manifest, not raised: the book is still a valid file.
        logger.warning("audiobook %s misses the loudness target: %s", out_path.name, problems)
    return measured, chapter_loudness


def _log_built(result: AudiobookResult, seconds: float) -> None:
    measured = result.loudness
    logger.info(
        "audiobook %s: %d chapters, %.1f s of audio, %s, %d bytes in %.2f s%s",
        result.path.name,
        len(result.chapters),
        result.duration_s,
        result.format.value,
        result.bytes,
        seconds,
        f", RMS {measured.rms_db:.1f} dB, peak {measured.peak_db:.1f} dB" if measured else "",
    )


def _to_ms(samples: int, rate: int) -> int:
    return round(samples * 1000 / rate)


__all__ = [
    "AudiobookResult",
    "BookFormat",
    "BookMeta",
    "BookRequest",
    "ChapterAudio",
    "ChapterLoudness",
    "Cover",
    "ManifestChapter",
    "build_audiobook",
    "chapter_from_file",
    "check_book",
    "finish_book",
]
