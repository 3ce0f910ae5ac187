"""Combine a book's chapters into one audiobook (M4B or MP3) with markers, tags and loudness.

Input: each chapter's audio as the raw s16le mono PCM pieces it was
synthesised in (:class:`ChapterAudio`), the same files its own job assembled
from.  That is the primary path: lossless, so the book is encoded once from
the provider's samples and has no generation loss.  A chapter known only by
its finished output file can be decoded back to PCM first
(:func:`chapter_from_file`), at the cost of one more lossy generation.

Timeline, in samples at the output rate (every duration is a whole number of
them, so markers and the manifest agree exactly)::

    | head | chapter 1 | gap | chapter 2 | gap | … | chapter n | tail |

* ``head``, ``gap`` and ``tail`` are ``head_silence_ms``,
  ``chapter_silence_ms`` and ``tail_silence_ms`` of digital silence.  With
  loudness normalisation, head and tail are at least the target's room tone,
  and room tone (noise at ``room_tone_db``, −70 dBFS) runs under the whole
  book, so the silences and the chapters' own pauses share one steady noise
  floor instead of the digital silence ACX rejects.
* Chapter *i*'s audio starts at ``head + Σ_{j<i} (d_j + gap)`` where ``d_j``
  is chapter *j*'s audio duration (its pieces joined as :func:`assemble`
  joins them, resampled to the output rate): ``audio_start_s``.
* Chapter *i*'s marker starts where its audio starts (``start_s``), so a
  player's "next chapter" lands on the first word; the gap before it belongs to
  the chapter before.  The first marker starts at 0 and covers the head:
  MP4 chapter tracks cannot leave a gap before the first chapter (FFmpeg and
  Apple read it from 0 whatever is written), so the same rule holds for MP3.
  Each marker ends where the next starts, the last at the end of the file.
* The total is ``head + Σ d_i + (n − 1)·gap + tail``.

The audio is streamed twice, block by block, with memory flat however long
the book: pass 1 renders every chapter to count its samples (the markers
must be known before the MP4 header is written) and, when normalising,
measures it (a chapter loud enough in its peaks to be limited is run through
the limiter once or twice more to fit its gain); pass 2 renders it again,
applies each chapter's gain and the limiter, and encodes.  With loudness,
the finished file is decoded once more and measured; the manifest reports
those figures.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The segment renderer is assemble's own, so a chapter in the book sounds exactly
# as in its own file: same fades at joins, same resampler carried across segments.
from worker.audio.assemble import SegmentAudio, _Pipeline, _plan
from worker.audio.book_manifest import AudiobookResult, ChapterLoudness, ManifestChapter
from worker.audio.book_output import (
    CONTENT_TYPES,
    BookEncoder,
    BookFormat,
    Cover,
    Marker,
    decode_to_pcm,
    inspect_cover,
)
from worker.audio.errors import CorruptAudio, InvalidBook, UnsupportedOutput
from worker.audio.formats import OutputFormat, format_info, validate_output
from worker.audio.id3 import Id3Chapter, write_book_tag
from worker.audio.loudness import (
    Limiter,
    LoudnessReport,
    LoudnessTarget,
    Meter,
    RoomTone,
    fit_gain,
    measure_loudness,
)
from worker.audio.sinks import FloatBlock

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20
# The encoder settings each book format shares with a job output format.
_CODEC_FORMATS = {BookFormat.M4B: OutputFormat.M4A, BookFormat.MP3: OutputFormat.MP3}


@dataclass(frozen=True, slots=True)
class ChapterAudio:
    """One chapter's audio: its PCM pieces (segments) in order, raw s16le mono.

    A piece given as a :class:`Path` is at ``sample_rate`` with nothing after
    it; a :class:`SegmentAudio` brings its own rate and pause (as the
    chapter's job assembled it, paragraph pauses included).
    """

    title: str
    pcm: tuple[Path | SegmentAudio, ...]
    sample_rate: int
    chars: int = 0
    file: str | None = None  # the chapter's own output key or name, echoed into the manifest


@dataclass(frozen=True, slots=True)
class BookMeta:
    """Tags of the book."""

    title: str
    author: str | None = None
    cover: bytes | None = None
    cover_type: str | None = None  # image/jpeg or image/png; sniffed from the bytes if None
    genre: str = "Audiobook"


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
    book_format = _parse_format(fmt)
    codec_format = _CODEC_FORMATS[book_format]
    validate_output(codec_format, sample_rate, bitrate_kbps)
    bitrate = bitrate_kbps or format_info(codec_format).default_bitrate_kbps
    assert bitrate is not None  # lossy formats have a default
    if not chapters:
        raise InvalidBook("a book needs at least one chapter")
    if not meta.title.strip():
        raise InvalidBook("a book needs a title")
    if block_samples < 1:
        raise ValueError(f"block_samples must be positive, not {block_samples}")
    for name, ms in (
        ("head_silence_ms", head_silence_ms),
        ("chapter_silence_ms", chapter_silence_ms),
        ("tail_silence_ms", tail_silence_ms),
    ):
        if ms < 0:
            raise ValueError(f"{name} must not be negative, not {ms}")
    if loudness is not None:
        head_silence_ms = max(head_silence_ms, loudness.room_tone_ms[0])
        tail_silence_ms = max(tail_silence_ms, loudness.room_tone_ms[1])
    cover = inspect_cover(meta.cover, meta.cover_type) if meta.cover is not None else None
    titles = [c.title.strip() or f"Chapter {i + 1}" for i, c in enumerate(chapters)]

    render = _Renderer(sample_rate, block_samples)
    levels = [render.measure(c, with_levels=loudness is not None) for c in chapters]
    for index, level in enumerate(levels):
        if not level.samples:
            raise InvalidBook(f"chapter {index + 1} ({titles[index]!r}) has no audio")
    layout = _Layout.of(
        [level.samples for level in levels],
        _ms(head_silence_ms, sample_rate),
        _ms(chapter_silence_ms, sample_rate),
        _ms(tail_silence_ms, sample_rate),
    )
    gains = [
        render.fit_gain(chapter, level.report, loudness) if loudness and level.report else 0.0
        for chapter, level in zip(chapters, levels, strict=True)
    ]
    markers = [
        Marker(title, layout.marker_start(i), layout.marker_end(i))
        for i, title in enumerate(titles)
    ]

    _write(
        out_path,
        book_format,
        bitrate,
        meta,
        cover,
        markers,
        render,
        chapters,
        layout,
        gains,
        loudness,
    )
    size, digest = _size_and_sha256(out_path)

    manifest_chapters = tuple(
        ManifestChapter(
            index=i,
            title=titles[i],
            start_s=layout.marker_start(i) / sample_rate,
            end_s=layout.marker_end(i) / sample_rate,
            audio_start_s=layout.starts[i] / sample_rate,
            duration_s=layout.counts[i] / sample_rate,
            chars=chapter.chars,
            file=chapter.file,
        )
        for i, chapter in enumerate(chapters)
    )
    measured: LoudnessReport | None = None
    chapter_loudness: tuple[ChapterLoudness, ...] = ()
    if loudness is not None:
        spans = [(c.audio_start_s, c.audio_start_s + c.duration_s) for c in manifest_chapters]
        measured = measure_loudness(out_path, spans=spans)
        chapter_loudness = tuple(
            ChapterLoudness(i, level.report.rms_db, level.report.peak_db, gains[i], section)
            for i, (level, section) in enumerate(zip(levels, measured.sections, strict=True))
            if level.report is not None
        )
        problems = measured.problems(loudness)
        if problems:
            # Reported in the manifest, not raised: the book is still a valid file.
            logger.warning("audiobook %s misses the loudness target: %s", out_path.name, problems)
    result = AudiobookResult(
        path=out_path,
        format=book_format,
        duration_s=layout.total / sample_rate,
        bytes=size,
        sha256=digest,
        content_type=CONTENT_TYPES[book_format],
        chapters=manifest_chapters,
        loudness=measured,
        title=meta.title,
        author=meta.author,
        sample_rate=sample_rate,
        bitrate_kbps=bitrate,
        silence_ms=(head_silence_ms, chapter_silence_ms, tail_silence_ms),
        loudness_target=loudness,
        chapter_loudness=chapter_loudness,
    )
    logger.info(
        "audiobook %s: %d chapters, %.1f s of audio, %s, %d bytes in %.2f s%s",
        out_path.name,
        len(chapters),
        result.duration_s,
        book_format.value,
        size,
        time.monotonic() - started,
        f", RMS {measured.rms_db:.1f} dB, peak {measured.peak_db:.1f} dB" if measured else "",
    )
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


@dataclass(frozen=True, slots=True)
class _Levels:
    samples: int
    report: LoudnessReport | None


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where everything sits, in output samples."""

    counts: tuple[int, ...]  # each chapter's audio
    starts: tuple[int, ...]  # where each chapter's audio starts
    head: int
    gap: int
    tail: int
    total: int

    @classmethod
    def of(cls, counts: Sequence[int], head: int, gap: int, tail: int) -> _Layout:
        starts = []
        position = head
        for index, count in enumerate(counts):
            if index:
                position += gap
            starts.append(position)
            position += count
        return cls(tuple(counts), tuple(starts), head, gap, tail, position + tail)

    def marker_start(self, index: int) -> int:
        return 0 if index == 0 else self.starts[index]

    def marker_end(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.total


class _Renderer:
    """A chapter's PCM pieces to float blocks at the output rate, as :func:`assemble` does."""

    def __init__(self, sample_rate: int, block_samples: int) -> None:
        self.sample_rate = sample_rate
        self.block_samples = block_samples

    def run(self, chapter: ChapterAudio, emit: Callable[[FloatBlock], None]) -> int:
        """Stream the chapter into ``emit``; return the number of samples."""
        segments = [
            piece if isinstance(piece, SegmentAudio) else SegmentAudio(piece, chapter.sample_rate)
            for piece in chapter.pcm
        ]
        return _Pipeline(_Tap(emit), self.sample_rate, self.block_samples).run(
            _plan(segments), 0, 0
        )

    def measure(self, chapter: ChapterAudio, *, with_levels: bool) -> _Levels:
        """Pass 1: count the chapter's output samples and, if asked, measure them."""
        if not with_levels:
            return _Levels(self.run(chapter, lambda block: None), None)
        meter = Meter(self.sample_rate)
        samples = self.run(chapter, meter.add)
        return _Levels(samples, meter.report())

    def fit_gain(
        self, chapter: ChapterAudio, report: LoudnessReport, target: LoudnessTarget
    ) -> float:
        """The chapter's gain to the target RMS, allowing for what the limiter will take."""

        def limited_rms(gain_db: float) -> float:
            meter = Meter(self.sample_rate)
            limiter = Limiter(self.sample_rate, target.ceiling, meter.add)
            factor = np.float32(10 ** (gain_db / 20))
            self.run(chapter, lambda block: limiter.push(block * factor))
            limiter.flush()
            return meter.report().rms_db

        return fit_gain(report.rms_db, report.peak_db, target, limited_rms)


class _Tap:
    """A :class:`~worker.audio.sinks.Sink` that hands blocks to a function."""

    def __init__(self, emit: Callable[[FloatBlock], None]) -> None:
        self._emit = emit

    def write(self, block: FloatBlock) -> None:
        self._emit(block)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _write(
    out_path: Path,
    book_format: BookFormat,
    bitrate: int,
    meta: BookMeta,
    cover: Cover | None,
    markers: list[Marker],
    render: _Renderer,
    chapters: Sequence[ChapterAudio],
    layout: _Layout,
    gains: Sequence[float],
    loudness: LoudnessTarget | None,
) -> None:
    """Pass 2 into a file beside ``out_path``, tag it, and rename it into place."""
    rate = render.sample_rate
    part = out_path.with_name(out_path.name + ".part")
    try:
        encoder = BookEncoder(
            book_format,
            part,
            rate,
            bitrate,
            title=meta.title,
            author=meta.author,
            genre=meta.genre,
            markers=markers,
            cover=cover,
        )
        try:
            _encode(render, chapters, layout, gains, loudness, encoder)
        except BaseException:
            encoder.abort()
            raise
        encoder.close()
        if book_format is BookFormat.MP3:
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
        part.replace(out_path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _encode(
    render: _Renderer,
    chapters: Sequence[ChapterAudio],
    layout: _Layout,
    gains: Sequence[float],
    loudness: LoudnessTarget | None,
    encoder: BookEncoder,
) -> None:
    """Pass 2: head, chapters (with gain) and gaps, tail → limiter → encoder."""
    rate = render.sample_rate
    limiter = Limiter(rate, loudness.ceiling, encoder.write) if loudness else None
    push = limiter.push if limiter else encoder.write
    tone = RoomTone(loudness.room_tone_db) if loudness else None
    block = render.block_samples

    def silence(samples: int) -> None:
        while samples > 0:
            count = min(samples, block)
            push(tone.take(count) if tone else np.zeros(count, dtype=np.float32))
            samples -= count

    silence(layout.head)
    for index, chapter in enumerate(chapters):
        if index:
            silence(layout.gap)
        if tone is not None:
            # Gain, then room tone under the speech too: one steady noise floor, no digital
            # silence in the chapter's own pauses.
            count = render.run(chapter, _gain_and_tone(gains[index], tone, push))
        else:
            count = render.run(chapter, push)
        if count != layout.counts[index]:
            raise CorruptAudio(
                f"chapter {index + 1}: its audio changed while the book was built "
                f"({layout.counts[index]} samples, then {count})"
            )
    silence(layout.tail)
    if limiter:
        limiter.flush()


def _gain_and_tone(
    gain_db: float, tone: RoomTone, push: Callable[[FloatBlock], None]
) -> Callable[[FloatBlock], None]:
    factor = np.float32(10 ** (gain_db / 20))

    def emit(block: FloatBlock) -> None:
        push(block * factor + tone.take(block.size))

    return emit


def _parse_format(fmt: BookFormat | str) -> BookFormat:
    try:
        return BookFormat(fmt)
    except ValueError:
        allowed = ", ".join(f.value for f in BookFormat)
        raise UnsupportedOutput(
            f"format: {fmt!r} is not an audiobook format; allowed: {allowed}", field="format"
        ) from None


def _ms(ms: int, rate: int) -> int:
    return round(ms * rate / 1000)


def _to_ms(samples: int, rate: int) -> int:
    return round(samples * 1000 / rate)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


__all__ = [
    "AudiobookResult",
    "BookFormat",
    "BookMeta",
    "ChapterAudio",
    "ChapterLoudness",
    "Cover",
    "ManifestChapter",
    "build_audiobook",
    "chapter_from_file",
]
