"""A read-along book: an EPUB 3 whose text is highlighted as its narration plays (pure).

EPUB 3 Media Overlays pair each piece of text with a clip of audio: the
chapter's XHTML gives every sentence an ``id``; a SMIL document per chapter
holds one ``<par>`` per sentence, pointing at the sentence
(``<text src="c001.xhtml#s1"/>``) and at its clip of the chapter's audio file
(``<audio src="audio/c001.mp3" clipBegin="0:00:01.200" clipEnd="…"/>``).  The
package document names each chapter's overlay (``media-overlay``) and states
every overlay's duration and the book's total (``media:duration``), and the
class a reading system puts on the sentence being read
(``media:active-class``), which the book's style sheet highlights.

:func:`write_read_along` takes the chapters as sentences with their times
(from the job's timings) and the chapters' audio files as shoal made them
(mp3 or m4a, both core media types of EPUB 3), and writes the EPUB; it reads
nothing but those audio files and writes nothing but ``out``.  What it writes
passes ``epubcheck`` without errors (the tests run it).

Errors::

    ReadAlongError   a chapter the overlay cannot describe (no audio, times outside it)
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "ACTIVE_CLASS",
    "OverlayChapter",
    "ReadAlongBook",
    "ReadAlongError",
    "Sentence",
    "clock",
    "write_read_along",
]

#: The class a reading system sets on the sentence being read; the style sheet colours it.
ACTIVE_CLASS = "-epub-media-overlay-active"
_MEDIA_TYPES = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".m4b": "audio/mp4", ".mp4": "audio/mp4"}
_CSS = f"""body {{ font-family: serif; line-height: 1.5; margin: 1em; }}
h1 {{ font-size: 1.4em; }}
.{ACTIVE_CLASS} {{ background-color: #ffe98a; color: #000; }}
"""


class ReadAlongError(ValueError):
    """A chapter that a media overlay cannot describe."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence and where it is spoken in its chapter's audio, in seconds."""

    text: str
    begin_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class OverlayChapter:
    """A chapter: its title (and where that is spoken, if it is), its paragraphs of
    sentences, and its audio file with that file's duration."""

    title: str
    paragraphs: tuple[tuple[Sentence, ...], ...]
    audio: Path
    duration_s: float
    title_clip: tuple[float, float] | None = None  # (begin_s, end_s) of the spoken title


@dataclass(frozen=True, slots=True)
class ReadAlongBook:
    """What the package document says of the book."""

    title: str
    chapters: tuple[OverlayChapter, ...]
    author: str | None = None
    language: str = "en"
    identifier: str = ""  # a stable id (the batch's); a new urn:uuid when empty


def clock(seconds: float) -> str:
    """A SMIL full clock value, ``H:MM:SS.mmm``."""
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def write_read_along(book: ReadAlongBook, out: Path, *, modified: datetime | None = None) -> None:
    """Write ``book`` as an EPUB 3 with Media Overlays to ``out``.

    Raises :class:`ReadAlongError` for a chapter with no audio file, an audio
    type EPUB cannot carry, or a sentence timed outside its audio.
    """
    if not book.chapters:
        raise ReadAlongError("a read-along book needs at least one chapter")
    for n, chapter in enumerate(book.chapters, 1):
        _check(n, chapter)
    stamp = (modified or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out, "w") as epub:
        # The mimetype comes first and uncompressed: readers sniff it at a fixed offset.
        epub.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        epub.writestr("META-INF/container.xml", _CONTAINER, compress_type=zipfile.ZIP_DEFLATED)
        files = {
            "OEBPS/content.opf": _package(book, stamp),
            "OEBPS/nav.xhtml": _nav(book),
            "OEBPS/style.css": _CSS,
        }
        for n, chapter in enumerate(book.chapters, 1):
            files[f"OEBPS/{_name(n)}.xhtml"] = _chapter_xhtml(book, n, chapter)
            files[f"OEBPS/{_name(n)}.smil"] = _smil(n, chapter)
        for name, text in files.items():
            epub.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)
        for n, chapter in enumerate(book.chapters, 1):
            # Compressed audio does not shrink: stored, so a reader can seek in it.
            epub.write(chapter.audio, f"OEBPS/{_audio_href(n, chapter)}", zipfile.ZIP_STORED)


_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""


def _check(n: int, chapter: OverlayChapter) -> None:
    if chapter.audio.suffix.lower() not in _MEDIA_TYPES:
        raise ReadAlongError(
            f"chapter {n}: {chapter.audio.name} is not mp3 or m4a, the audio EPUB 3 carries"
        )
    if not chapter.audio.is_file():
        raise ReadAlongError(f"chapter {n}: its audio {chapter.audio.name} is missing")
    clips = [(s.begin_s, s.end_s) for p in chapter.paragraphs for s in p]
    if chapter.title_clip is not None:
        clips.append(chapter.title_clip)
    for begin, end in clips:
        if not 0 <= begin <= end <= chapter.duration_s + 0.001:
            raise ReadAlongError(
                f"chapter {n}: a clip {begin:.3f}-{end:.3f}s lies outside its "
                f"{chapter.duration_s:.3f}s of audio"
            )


def _name(n: int) -> str:
    return f"c{n:03d}"


def _audio_href(n: int, chapter: OverlayChapter) -> str:
    return f"audio/{_name(n)}{chapter.audio.suffix.lower()}"


def _package(book: ReadAlongBook, stamp: str) -> str:
    identifier = book.identifier or f"urn:uuid:{uuid.uuid4()}"
    total = sum(c.duration_s for c in book.chapters)
    meta = [
        f'<dc:identifier id="uid">{escape(identifier)}</dc:identifier>',
        f"<dc:title>{escape(book.title)}</dc:title>",
        f"<dc:language>{escape(book.language)}</dc:language>",
        f'<meta property="dcterms:modified">{stamp}</meta>',
        f'<meta property="media:active-class">{ACTIVE_CLASS}</meta>',
        f'<meta property="media:duration">{clock(total)}</meta>',
    ]
    if book.author:
        meta.insert(2, f"<dc:creator>{escape(book.author)}</dc:creator>")
    items = [
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>',
        '<item id="css" href="style.css" media-type="text/css"/>',
    ]
    spine = []
    for n, chapter in enumerate(book.chapters, 1):
        name = _name(n)
        meta.append(
            f'<meta property="media:duration" refines="#mo-{name}">'
            f"{clock(chapter.duration_s)}</meta>"
        )
        items += [
            f'<item id="{name}" href="{name}.xhtml" media-type="application/xhtml+xml" '
            f'media-overlay="mo-{name}"/>',
            f'<item id="mo-{name}" href="{name}.smil" media-type="application/smil+xml"/>',
            f'<item id="au-{name}" href="{_audio_href(n, chapter)}" '
            f'media-type="{_MEDIA_TYPES[chapter.audio.suffix.lower()]}"/>',
        ]
        spine.append(f'<itemref idref="{name}"/>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" '
        f"xml:lang={quoteattr(book.language)}>\n"
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n  '
        + "\n  ".join(meta)
        + "\n</metadata>\n<manifest>\n  "
        + "\n  ".join(items)
        + "\n</manifest>\n<spine>\n  "
        + "\n  ".join(spine)
        + "\n</spine>\n</package>\n"
    )


def _xhtml(book: ReadAlongBook, title: str, body: str) -> str:
    lang = quoteattr(book.language)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f"lang={lang} xml:lang={lang}>\n"
        f'<head><meta charset="UTF-8"/><title>{escape(title)}</title>'
        '<link rel="stylesheet" type="text/css" href="style.css"/></head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _nav(book: ReadAlongBook) -> str:
    entries = "\n".join(
        f'<li><a href="{_name(n)}.xhtml">{escape(c.title)}</a></li>'
        for n, c in enumerate(book.chapters, 1)
    )
    body = (
        f'<nav epub:type="toc" id="toc"><h1>{escape(book.title)}</h1><ol>\n{entries}\n</ol></nav>'
    )
    return _xhtml(book, book.title, body)


def _chapter_xhtml(book: ReadAlongBook, n: int, chapter: OverlayChapter) -> str:
    parts = [f'<section id="ch{n}" epub:type="chapter"><h1 id="t{n}">{escape(chapter.title)}</h1>']
    count = 0
    for paragraph in chapter.paragraphs:
        spans = []
        for sentence in paragraph:
            count += 1
            spans.append(f'<span id="s{count}">{escape(sentence.text)}</span>')
        parts.append(f"<p>{' '.join(spans)}</p>")
    parts.append("</section>")
    return _xhtml(book, chapter.title, "\n".join(parts))


def _smil(n: int, chapter: OverlayChapter) -> str:
    name = _name(n)
    audio = _audio_href(n, chapter)
    pars: list[str] = []
    if chapter.title_clip is not None:
        pars.append(_par(f"{name}.xhtml#t{n}", audio, *chapter.title_clip, f"pt{n}"))
    sentences: Sequence[Sentence] = [s for p in chapter.paragraphs for s in p]
    for i, sentence in enumerate(sentences, 1):
        pars.append(_par(f"{name}.xhtml#s{i}", audio, sentence.begin_s, sentence.end_s, f"p{i}"))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" '
        'version="3.0">\n<body>\n'
        f'<seq id="seq-{name}" epub:textref="{name}.xhtml#ch{n}" epub:type="chapter">\n'
        + "\n".join(pars)
        + "\n</seq>\n</body>\n</smil>\n"
    )


def _par(text_src: str, audio_src: str, begin: float, end: float, ident: str) -> str:
    return (
        f'<par id="{ident}"><text src="{text_src}"/>'
        f'<audio src="{audio_src}" clipBegin="{clock(begin)}" clipEnd="{clock(end)}"/></par>'
    )
