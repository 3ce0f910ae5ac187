"""Read-along EPUBs: the package, the SMIL and the XHTML agree, and epubcheck accepts them.

The EPUB is checked by Debian's ``epubcheck`` (installed by ``make test``,
from tools/debian-packages.txt), a real validator run as a program: these tests
are ``integration``.  The audio files are real mp3 and m4a files made with PyAV.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from tests.epubcheck import epubcheck
from worker.books.media_overlays import (
    ACTIVE_CLASS,
    OverlayChapter,
    ReadAlongBook,
    ReadAlongError,
    Sentence,
    clock,
    write_read_along,
)

pytestmark = pytest.mark.integration


def tone(path: Path, seconds: float, codec: str) -> Path:
    """A real audio file of ``seconds`` of a quiet tone."""
    rate = 44_100
    samples = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        frame_size = 1152
        for start in range(0, len(samples), frame_size):
            block = samples[start : start + frame_size].reshape(1, -1)
            fmt = "fltp"
            frame = av.AudioFrame.from_ndarray(block, format=fmt, layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return path


def book(tmp_path: Path) -> ReadAlongBook:
    one = OverlayChapter(
        title="Chapter One",
        paragraphs=(
            (Sentence("It was a bright cold day.", 1.0, 2.4), Sentence("Clocks struck.", 2.4, 3.3)),
            (Sentence("Nobody <answered> & left.", 3.9, 5.0),),
        ),
        audio=tone(tmp_path / "one.mp3", 5.5, "mp3"),
        duration_s=5.5,
        title_clip=(0.0, 0.8),
    )
    two = OverlayChapter(
        title="Chapter Two",
        paragraphs=((Sentence("The end.", 0.5, 1.5),),),
        audio=tone(tmp_path / "two.m4a", 2.0, "aac"),
        duration_s=2.0,
    )
    return ReadAlongBook("A Test Book", (one, two), author="Ann Author", identifier="urn:x:1")


def test_a_two_chapter_read_along_book_passes_epubcheck(tmp_path: Path) -> None:
    out = tmp_path / "book.epub"
    write_read_along(book(tmp_path), out)
    valid, report = epubcheck(out)
    assert valid, report


def test_the_overlays_point_at_every_sentence_with_its_clip(tmp_path: Path) -> None:
    out = tmp_path / "book.epub"
    write_read_along(book(tmp_path), out)
    with zipfile.ZipFile(out) as epub:
        assert epub.namelist()[0] == "mimetype"
        assert epub.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        opf = epub.read("OEBPS/content.opf").decode()
        smil = epub.read("OEBPS/c001.smil").decode()
        xhtml = epub.read("OEBPS/c001.xhtml").decode()
        assert epub.read("OEBPS/audio/c002.m4a") == (tmp_path / "two.m4a").read_bytes()
    assert f'<meta property="media:active-class">{ACTIVE_CLASS}</meta>' in opf
    assert '<meta property="media:duration">0:00:07.500</meta>' in opf
    assert '<meta property="media:duration" refines="#mo-c001">0:00:05.500</meta>' in opf
    assert 'media-overlay="mo-c001"' in opf and 'media-type="audio/mp4"' in opf
    assert '<span id="s3">Nobody &lt;answered&gt; &amp; left.</span>' in xhtml
    pars = re.findall(
        r'<text src="c001\.xhtml#(\w+)"/><audio src="audio/c001\.mp3" '
        r'clipBegin="([\d:.]+)" clipEnd="([\d:.]+)"/>',
        smil,
    )
    assert pars == [
        ("t1", "0:00:00.000", "0:00:00.800"),
        ("s1", "0:00:01.000", "0:00:02.400"),
        ("s2", "0:00:02.400", "0:00:03.300"),
        ("s3", "0:00:03.900", "0:00:05.000"),
    ]


def test_clock_values_and_bad_chapters(tmp_path: Path) -> None:
    assert clock(0) == "0:00:00.000" and clock(3723.4567) == "1:02:03.457"
    good = book(tmp_path)
    late = OverlayChapter(
        "Late", ((Sentence("Too late.", 1.0, 9.0),),), good.chapters[1].audio, 2.0
    )
    with pytest.raises(ReadAlongError, match=r"outside its 2\.000s of audio"):
        write_read_along(ReadAlongBook("B", (late,)), tmp_path / "x.epub")
    wav = OverlayChapter("Wav", (), tmp_path / "a.wav", 1.0)
    with pytest.raises(ReadAlongError, match="not mp3 or m4a"):
        write_read_along(ReadAlongBook("B", (wav,)), tmp_path / "x.epub")
