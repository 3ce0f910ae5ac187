"""Remake the book corpus in ``tests/fixtures/books/`` (run by hand; CI never runs it).

    python tools/make_book_fixtures.py [NAME ...]

Books made by real toolchains need them installed (Debian packages
``pandoc``, ``calibre``, ``docbook-xsl``, ``xsltproc``); the books that
reproduce other toolchains' structures by hand (Standard Ebooks, Project
Gutenberg's ebookmaker, Sigil, InDesign) are written by
:mod:`book_fixture_standard`, :mod:`book_fixture_gutenberg` and
:mod:`book_fixture_epubs`, and need nothing but Python.  The expectations
(``*.expect.json``) are written by hand and never touched here: they say what
the importer must make of each book, whatever made it.
"""

from __future__ import annotations

import argparse
import html
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import book_fixture_epubs as handmade
import book_fixture_gutenberg as gutenberg
import book_fixture_standard as standard
import book_fixture_texts as t

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "books"
# Fixed dates and identifiers, so a remade book differs only where a tool changed.
EPOCH = "1262304000"  # 2010-01-01
# calibre renders PDF with Qt WebEngine: no display here, and Chromium's sandbox refuses root.
ENV = {
    **os.environ,
    "SOURCE_DATE_EPOCH": EPOCH,
    "TZ": "UTC",
    "QT_QPA_PLATFORM": "offscreen",
    "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox",
}


def run(*cmd: str, cwd: Path | None = None) -> None:
    """Run a tool; its output is shown only when it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")


def md_paragraphs(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs) + "\n\n"


def md_verse(stanzas: handmade.Stanzas) -> str:
    """Stanzas as pandoc line blocks (``| line``): each line ends in a <br />."""
    return "\n\n".join("\n".join(f"| {line}" for line in stanza) for stanza in stanzas) + "\n\n"


def html_paragraphs(paragraphs: list[str]) -> str:
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs) + "\n"


# -- pandoc ------------------------------------------------------------------


def holmes_markdown() -> str:
    """Stories as level-1 headings, their numbered parts as level-2 headings."""
    return (
        "---\ntitle: The Adventures of Sherlock Holmes\nauthor: Arthur Conan Doyle\n"
        "lang: en-GB\nidentifier: urn:uuid:5b0f6d3e-5e53-4c1f-9d1e-000000000001\n"
        "rights: Public domain\n---\n\n"
        "# A Scandal in Bohemia\n\n## I.\n\n"
        + md_paragraphs([t.SCANDAL_I[0].replace("Irene Adler.", "Irene Adler.[^adler]")])
        + md_paragraphs(t.SCANDAL_I[1:])
        + "## II.\n\n"
        + md_paragraphs(t.SCANDAL_II)
        + "# The Red-Headed League\n\n"
        + md_paragraphs(t.RED_HEADED)
        + f"[^adler]: {t.HOLMES_NOTE}\n"
    )


def poe_markdown() -> str:
    """Two tales and a poem in pandoc line blocks."""
    return (
        "---\ntitle: Tales and Poems\nauthor: Edgar Allan Poe\nlang: en-US\n"
        "identifier: urn:uuid:5b0f6d3e-5e53-4c1f-9d1e-000000000002\n---\n\n"
        "# The Tell-Tale Heart\n\n"
        + md_paragraphs(t.TELL_TALE)
        + "# The Raven\n\n"
        + md_verse(t.RAVEN)
        + "# The Cask of Amontillado\n\n"
        + md_paragraphs(t.CASK)
    )


def hound_markdown() -> str:
    return (
        "---\ntitle: The Hound of the Baskervilles\nauthor: Arthur Conan Doyle\n"
        "lang: en-GB\n---\n\n"
        "# Chapter 1. Mr. Sherlock Holmes\n\n"
        + md_paragraphs(t.HOUND_1)
        + "# Chapter 2. The Curse of the Baskervilles\n\n"
        + md_paragraphs(t.HOUND_2)
    )


def make_pandoc(work: Path) -> None:
    """EPUB 3 and EPUB 2 (chapters at level 1, nested TOC), standalone HTML and DOCX."""
    sources = {"holmes": holmes_markdown(), "poe": poe_markdown(), "hound": hound_markdown()}
    for name, text in sources.items():
        (work / f"{name}.md").write_text(text, encoding="utf-8")
    (work / "cover.png").write_bytes(handmade.png(300, 450, (40, 60, 90)))
    run(
        "pandoc", "holmes.md", "-t", "epub3", "--toc-depth=2", "--epub-cover-image=cover.png",
        "-o", str(OUT / "pandoc-epub3.epub"), cwd=work,
    )  # fmt: skip
    run("pandoc", "poe.md", "-t", "epub2", "-o", str(OUT / "pandoc-epub2.epub"), cwd=work)
    run("pandoc", "hound.md", "-s", "-t", "html5", "-o", str(OUT / "pandoc-hound.html"), cwd=work)
    run("pandoc", "hound.md", "-t", "docx", "-o", str(OUT / "pandoc-hound.docx"), cwd=work)


# -- calibre ------------------------------------------------------------------


def two_cities_html() -> str:
    """Plain HTML as a user would feed calibre: a title block, then h2 chapters."""
    chapters = [
        ("CHAPTER I. The Period", t.TWO_CITIES_1),
        ("CHAPTER II. The Mail", t.TWO_CITIES_2),
        ("CHAPTER III. The Night Shadows", t.TWO_CITIES_3),
    ]
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{html_paragraphs(ps)}" for h, ps in chapters)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>A Tale of Two Cities</title></head><body>\n"
        "<h1>A Tale of Two Cities</h1>\n<p>by Charles Dickens</p>\n"
        f"{body}</body></html>\n"
    )


def soft_hyphens(text: str) -> str:
    """Soft hyphens in two words that the PDF's layout breaks at a line end.

    Chromium (calibre's PDF engine) has no hyphenation dictionary here, so the
    breaks are placed by hand; a soft hyphen that does not fall at a line end
    would leave a gap inside the word in the text layer, so only these two.
    """
    return text.replace("insufferable gloom", "insuffer\u00adable gloom").replace(
        "his dominions", "his domin\u00adions"
    )


def usher_html() -> str:
    """Large type on A5 pages, so the tales run over several pages with heads and numbers."""
    style = (
        "body { font-size: 20pt; line-height: 1.5; text-align: justify; }"
        " h1 { page-break-before: always; }"
    )
    body = "".join(
        f"<h1>{h}</h1>\n{html_paragraphs(ps)}"
        for h, ps in (
            ("The Fall of the House of Usher", t.USHER),
            ("The Masque of the Red Death", t.MASQUE),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Two Tales</title>'
        f"<style>{style}</style></head><body>\n{soft_hyphens(body)}</body></html>\n"
    )


def make_calibre(work: Path) -> None:
    """ebook-convert: HTML to EPUB (cover, title page, split files, NCX) and to PDF."""
    (work / "two.html").write_text(two_cities_html(), encoding="utf-8")
    (work / "cover.png").write_bytes(handmade.png(300, 450, (120, 20, 20)))
    run(
        "ebook-convert", "two.html", str(OUT / "calibre-two-cities.epub"),
        "--cover", "cover.png", "--title", "A Tale of Two Cities",
        "--authors", "Charles Dickens", "--language", "en", cwd=work,
    )  # fmt: skip
    (work / "usher.html").write_text(usher_html(), encoding="utf-8")
    run(
        "ebook-convert", "usher.html", str(OUT / "calibre-two-tales.pdf"),
        "--title", "Two Tales", "--authors", "Edgar Allan Poe", "--paper-size", "a5",
        "--pdf-page-numbers", "--level1-toc", "//h:h1",
        "--pdf-header-template", '<p style="text-align:center; font-size: 9pt">_TITLE_</p>',
        cwd=work,
    )  # fmt: skip


# -- DocBook XSL ----------------------------------------------------------------


def docbook_paras(paragraphs: list[str]) -> str:
    return "\n".join(f"<para>{html.escape(p, quote=False)}</para>" for p in paragraphs)


def docbook_source() -> str:
    """A DocBook 4.5 book: preface, chapters with sect1s, a footnote, code, an appendix."""
    spine = (
        html.escape(t.TECH_SPINE[0], quote=False)
        .replace("fragment", f"fragment<footnote><para>{t.TECH_NOTE}</para></footnote>", 1)
        .replace("href.split('#')[0]", "<literal>href.split('#')[0]</literal>")
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE book PUBLIC "-//OASIS//DTD DocBook XML V4.5//EN" "http://www.oasis-open.org/docbook/xml/4.5/docbookx.dtd">
<book id="finding-chapters" lang="en">
<bookinfo>
<title>Finding Chapters</title>
<subtitle>A Short Guide to Electronic Books</subtitle>
<author><firstname>Ada</firstname><surname>Reader</surname></author>
<copyright><year>2012</year><holder>Ada Reader</holder></copyright>
<legalnotice><para>This guide is dedicated to the public domain under CC0 1.0.</para></legalnotice>
</bookinfo>
<preface id="preface"><title>Preface</title>
{docbook_paras(t.TECH_PREFACE)}
</preface>
<chapter id="package"><title>The Package</title>
{docbook_paras(t.TECH_PACKAGE_INTRO)}
<sect1 id="manifest"><title>The Manifest</title>
{docbook_paras(t.TECH_MANIFEST)}
</sect1>
<sect1 id="spine"><title>The Spine</title>
<para>{spine}</para>
<programlisting language="python">{html.escape(t.TECH_CODE, quote=False)}</programlisting>
</sect1>
</chapter>
<chapter id="navigation"><title>Navigation</title>
{docbook_paras(t.TECH_NAV_INTRO)}
<sect1 id="nested"><title>Nested Entries</title>
{docbook_paras(t.TECH_NESTED)}
</sect1>
<sect1 id="landmarks"><title>Landmarks</title>
{docbook_paras(t.TECH_LANDMARKS)}
</sect1>
</chapter>
<appendix id="reading"><title>Further Reading</title>
{docbook_paras(t.TECH_READING)}
</appendix>
</book>
"""


def zip_tree(root: Path, path: Path) -> None:
    """Zip a toolchain's output folder as an EPUB: ``mimetype`` first and stored."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "mimetype")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype", handmade.FIXED_TIME), "application/epub+zip")
        for file in files:
            info = zipfile.ZipInfo(file.relative_to(root).as_posix(), handmade.FIXED_TIME)
            zf.writestr(info, file.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)


def make_docbook(work: Path) -> None:
    """DocBook XSL's EPUB 3 stylesheet, default chunking: sect1s after the first get a file."""
    (work / "book.xml").write_text(docbook_source(), encoding="utf-8")
    out = work / "out"
    out.mkdir()
    # The docbook-xsl package's XML catalog resolves this URI to its installed copy.
    stylesheet = "http://docbook.sourceforge.net/release/xsl/current/epub3/chunk.xsl"
    run("xsltproc", "--nonet", "--novalid", stylesheet, "../book.xml", cwd=out)
    zip_tree(out, OUT / "docbook-xsl.epub")


# -- by hand ----------------------------------------------------------------------


def make_handmade(work: Path) -> None:
    """The books that reproduce other toolchains' structures (no tools needed)."""
    standard.make_standard_ebooks(OUT / "standard-ebooks.epub")
    handmade.make_sigil(OUT / "sigil.epub")
    handmade.make_indesign(OUT / "indesign.epub")
    gutenberg.make_gutenberg_epub3(OUT / "gutenberg-epub3.epub")
    gutenberg.make_gutenberg_epub2(OUT / "gutenberg-epub2.epub")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "pandoc": make_pandoc,
    "calibre": make_calibre,
    "docbook": make_docbook,
    "handmade": make_handmade,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BUILDERS)} (default: all)")
    names = parser.parse_args().names or list(BUILDERS)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            BUILDERS[name](Path(tmp))
        print(f"made {name}")


if __name__ == "__main__":
    main()
