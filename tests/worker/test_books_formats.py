"""HTML, DOCX and PDF books, and SVG covers: read into chapters, or refused saying why.

Every book here is made in the test (python-docx writes the Word documents, a
few lines below write PDFs by hand, pypdf adds outlines and passwords), or
comes from the corpus in ``tests/fixtures/books/`` that real toolchains made
(pandoc's HTML and DOCX).  Pure: no servers.
"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import av
import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_BREAK
from pypdf import PdfReader, PdfWriter

from tests.worker.test_books_fixtures import Doc, EpubSpec, build_epub, xhtml
from worker.books import (
    Book,
    BookKind,
    NotABook,
    NotesMode,
    NoTextLayer,
    ProtectedBook,
    ReadMode,
    ReadOptions,
    SkipCategory,
    UnsafeArchive,
    parse_book,
)
from worker.books.cover import COVER_SIDE, CoverError, rasterise_svg, usable_cover
from worker.books.pdf import strip_running

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "books"
HOUND_1 = "Mr. Sherlock Holmes, who was usually very late in the mornings"
HOUND_2 = "\u201cI have in my pocket a manuscript,\u201d said Dr. James Mortimer."


def titles(book: Book) -> list[str]:
    return [chapter.title for chapter in book.chapters]


def reasons(book: Book) -> dict[SkipCategory, list[str]]:
    out: dict[SkipCategory, list[str]] = {}
    for skip in book.skips:
        out.setdefault(skip.category, []).append(skip.reason)
    return out


# -- HTML ------------------------------------------------------------------------------

WEB_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sea Stories - Example Site</title>
<meta name="author" content="Ann Writer"><style>p { color: red }</style></head>
<body>
<nav role="doc-toc"><ol><li><a href="#one">The Harbour</a></li>
<li><a href="#two">The Storm</a></li></ol></nav>
<h1>Sea Stories</h1>
<p>An introduction to the stories, with&nbsp;a non-breaking space.
<h2 id="one">The Harbour</h2>
<p>The boats came home at dusk.<a href="#fn1" role="doc-noteref"><sup>1</sup></a>
<p>The keeper lit the lamp.<span class="pagenum">[Pg 7]</span> Then he slept.
<h2 id="two">The Storm</h2>
<p>Rain fell all night. <code>href.split('#')[0]</code> was on the sign.
<table><tr><td>Tide</td><td>High</td></tr></table>
<pre><code>x = 1</code></pre>
<section role="doc-endnotes"><ol><li id="fn1">A note on boats.</li></ol></section>
<script>alert("never read")</script>
</body></html>
"""


def test_a_web_page_has_chapters_from_its_headings() -> None:
    book = parse_book(WEB_PAGE, filename="sea.html")
    assert book.kind is BookKind.HTML
    # A single h1 first is the book's title: the <title> is a site's too.
    assert book.title == "Sea Stories" and book.author == "Ann Writer" and book.language == "en"
    assert titles(book) == ["Sea Stories", "The Harbour", "The Storm"]
    intro, harbour, storm = (c.text for c in book.chapters)
    assert intro == "An introduction to the stories, with a non-breaking space."
    assert harbour == "The boats came home at dusk.\n\nThe keeper lit the lamp. Then he slept."
    # Literal text is never changed; markers, notes, scripts, tables and code are not read.
    assert storm == "Rain fell all night. href.split('#')[0] was on the sign."
    assert book.chapters[1].source == "sea.html#one"
    found = reasons(book)
    assert found[SkipCategory.FRONT_MATTER] == ["table of contents"]
    assert found[SkipCategory.NOTES] == ["1 note"]
    assert found[SkipCategory.TABLE] == ["1 table"] and found[SkipCategory.CODE] == ["1 code block"]
    assert all(skip.reason and skip.source for skip in book.skips)


def test_html_options_read_notes_tables_and_code() -> None:
    options = ReadOptions(notes=NotesMode.END_OF_CHAPTER, tables=ReadMode.READ, code=ReadMode.READ)
    book = parse_book(WEB_PAGE, filename="sea.html", options=options)
    harbour, storm = book.chapters[1].text, book.chapters[2].text
    assert harbour.endswith("A note on boats.")
    assert "Tide\nHigh" in storm and "x = 1" in storm
    assert not {SkipCategory.NOTES, SkipCategory.TABLE, SkipCategory.CODE} & reasons(book).keys()


def test_xhtml_with_epub_types_and_a_declared_charset() -> None:
    page = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        "<head><title>Caf\u00e9 Tales</title></head><body>"
        '<section epub:type="chapter"><h2>Chapter I</h2><p>Un caf\u00e9.</p></section>'
        '<section epub:type="chapter"><h2>Chapter II</h2><p>Deux caf\u00e9s.<span '
        'epub:type="pagebreak" title="2"/></p></section></body></html>'
    ).encode()
    book = parse_book(page, filename="tales.xhtml")
    assert book.title == "Caf\u00e9 Tales" and titles(book) == ["Chapter I", "Chapter II"]
    assert [c.text for c in book.chapters] == ["Un caf\u00e9.", "Deux caf\u00e9s."]
    latin = b'<html><head><meta charset="windows-1252"></head><body><h1>A</h1><p>caf\xe9</p>'
    latin += b"<h1>B</h1><p>na\xefve</p></body></html>"
    assert [c.text for c in parse_book(latin, filename="x.htm").chapters] == [
        "caf\u00e9",
        "na\u00efve",
    ]


def test_html_without_headings_uses_chapter_lines_and_is_found_by_content() -> None:
    page = b"<!doctype html><p>CHAPTER I.<p>It began.<p>CHAPTER II.<p>It ended."
    book = parse_book(page, filename="book.txt")  # the bytes decide, not the name
    assert book.kind is BookKind.HTML
    assert titles(book) == ["CHAPTER I.", "CHAPTER II."]
    assert [c.text for c in book.chapters] == ["It began.", "It ended."]


@pytest.mark.parametrize("name", ["pandoc-hound.html", "pandoc-hound.docx"])
def test_pandoc_books_have_the_chapters_their_headings_say(name: str) -> None:
    book = parse_book((CORPUS / name).read_bytes(), filename=name)
    assert book.title == "The Hound of the Baskervilles"
    assert book.author == "Arthur Conan Doyle" and book.language == "en-GB"
    assert titles(book) == [
        "Chapter 1. Mr. Sherlock Holmes",
        "Chapter 2. The Curse of the Baskervilles",
    ]
    first, second = (c.text for c in book.chapters)
    assert first.startswith(HOUND_1) and "\u201cPenang lawyer.\u201d" in first
    assert second.startswith(HOUND_2) and "Chapter" not in second
    assert book.skips == ()


# -- DOCX ------------------------------------------------------------------------------


def word_book(*, toc: bool = False, table: bool = True) -> bytes:
    """A Word document as python-docx writes it: Title, Heading 1/2, a table, a page break."""
    document = docx.Document()
    document.core_properties.author = "Ann Writer"
    document.core_properties.language = "en-GB"
    document.add_paragraph("The Lighthouse", style="Title")
    if toc:  # Word's own style names, which python-docx's template lacks
        document.styles.add_style("toc 1", WD_STYLE_TYPE.PARAGRAPH)
        document.add_paragraph("Contents", style="TOC Heading")
        document.add_paragraph("Chapter I\t3", style="toc 1")
        document.add_paragraph("Chapter II\t5", style="toc 1")
    document.add_heading("Chapter I", level=1)
    document.add_paragraph("The keeper climbed the stairs at dusk.")
    if table:
        grid = document.add_table(rows=1, cols=2)
        grid.cell(0, 0).text, grid.cell(0, 1).text = "Tide", "High"
    document.add_paragraph("He lit the lamp.").add_run().add_break(WD_BREAK.PAGE)
    document.add_heading("Chapter II", level=1)
    document.add_heading("Morning", level=2)
    document.add_paragraph("Morning came grey and quiet over the harbour.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_a_word_document_has_chapters_from_its_heading_styles() -> None:
    book = parse_book(word_book(toc=True), filename="lighthouse.docx")
    assert book.kind is BookKind.DOCX
    assert book.title == "The Lighthouse" and book.author == "Ann Writer"
    assert book.language == "en-GB"
    assert titles(book) == ["Chapter I", "Chapter II"]
    assert book.chapters[0].text == "The keeper climbed the stairs at dusk.\n\nHe lit the lamp."
    # A Heading 2 inside a chapter stays in its text.
    assert book.chapters[1].text == "Morning\n\nMorning came grey and quiet over the harbour."
    found = reasons(book)
    assert found[SkipCategory.FRONT_MATTER] == ["table of contents"]
    assert found[SkipCategory.TABLE] == ["1 table"]
    read = parse_book(word_book(), filename="l.docx", options=ReadOptions(tables=ReadMode.READ))
    assert "Tide" in read.chapters[0].text and "High" in read.chapters[0].text


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _replace_member(data: bytes, name: str, content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[name] = content
    return _zip(members)


def test_word_documents_that_are_not_or_cannot_be_read_are_refused() -> None:
    with pytest.raises(
        NotABook, match=r"'a\.docx' is not a Word document \(DOCX\): it is not a zip"
    ):
        parse_book(b"Chapter 1\n\nJust text.", filename="a.docx")
    with pytest.raises(NotABook, match=r"has no word/document\.xml"):
        parse_book(_zip({"xl/workbook.xml": b"<workbook/>"}), filename="sheet.docx")
    locked = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64 + "EncryptedPackage".encode("utf-16-le")
    )
    with pytest.raises(ProtectedBook, match="password"):
        parse_book(locked, filename="locked.docx")
    with pytest.raises(NotABook, match=r"is not a Word document \(DOCX\): it is a legacy Office"):
        parse_book(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, filename="old.docx")
    entity = b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaa">]><w:document/>'
    with pytest.raises(UnsafeArchive, match="entities"):
        parse_book(_replace_member(word_book(), "word/document.xml", entity), filename="e.docx")
    with pytest.raises(NotABook, match="not a readable Word document"):
        parse_book(_replace_member(word_book(), "word/document.xml", b"<w:doc"), filename="b.docx")


def test_a_word_zip_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = _replace_member(word_book(), "word/document.xml", b"<" + b" " * (8 << 20) + b"/>")
    with pytest.raises(UnsafeArchive, match=r"word/document\.xml.*a zip bomb"):
        parse_book(bomb, filename="bomb.docx")
    with pytest.raises(UnsafeArchive, match="would unpack to"):
        parse_book(word_book(), filename="small.docx", max_unpacked_bytes=10_000)


# -- PDF -------------------------------------------------------------------------------

Line = tuple[str, float] | str  # text, or (text, type size); "" is a blank line


def make_pdf(pages: list[list[Line]], *, outline: list[tuple[str, int]] | None = None) -> bytes:
    """A small PDF with a text layer in Helvetica, one line per entry, top to bottom."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects: list[bytes] = [b"", b""]  # catalog and page tree come first, filled in below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for lines in pages:
        ops, y = [], 760.0
        for line in lines:
            text, size = (line, 11.0) if isinstance(line, str) else line
            y -= size * 1.3
            if text:
                x = 92 if text.startswith("\t") else 72
                ops.append(f"BT /F1 {size:g} Tf {x} {y:.1f} Td ({escape(text.strip())}) Tj ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (len(objects))
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    if outline is None:
        return out.getvalue()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out.getvalue())))
    for title, page in outline:
        writer.add_outline_item(title=title, page_number=page)
    done = io.BytesIO()
    writer.write(done)
    return done.getvalue()


def novel_pages() -> list[list[Line]]:
    """Three pages of a short novel: running heads, page numbers, a hyphenated word."""
    return [
        ["THE SEA BOOK", "", "Chapter One", "It was a dark night and the waves were", "high.",
         "\tThe keeper climbed the spiral stair-", "case with his lamp and", "", "1"],
        ["THE SEA BOOK", "watched the boats come home. The", "staircase creaked.", "", "2"],
        ["THE SEA BOOK", "", "Chapter Two", "Morning came grey and quiet over the har-",
         "bour.", "", "3"],
    ]  # fmt: skip


def test_a_pdf_with_an_outline_has_its_chapters() -> None:
    pdf = make_pdf(novel_pages(), outline=[("Chapter One", 0), ("Chapter Two", 2)])
    book = parse_book(pdf, filename="sea.pdf")
    assert book.kind is BookKind.PDF and book.title == "sea"
    assert titles(book) == ["Chapter One", "Chapter Two"]
    one, two = (c.text for c in book.chapters)
    # Running heads and page numbers gone; a paragraph goes on over a page break;
    # a hyphen at a line end joins a word the book also writes unbroken.
    assert one == (
        "It was a dark night and the waves were high.\n\n"
        "The keeper climbed the spiral staircase with his lamp and "
        "watched the boats come home. The staircase creaked."
    )
    assert two == "Morning came grey and quiet over the harbour."
    assert [c.source for c in book.chapters] == ["sea.pdf, page 1", "sea.pdf, page 3"]


def test_a_pdf_without_an_outline_has_chapters_from_larger_type() -> None:
    pages: list[list[Line]] = [
        [("The Lighthouse", 24.0), "by Ann Writer"],
        [("The First Night", 16.0), "", "The keeper climbed the stairs.", "", "7"],
        [("The Second Night", 16.0), "", "The lamp went out.", "", "8"],
    ]
    book = parse_book(make_pdf(pages), filename="light.pdf")
    assert book.title == "The Lighthouse"
    assert titles(book)[-2:] == ["The First Night", "The Second Night"]
    assert [c.text for c in book.chapters][-2:] == [
        "The keeper climbed the stairs.",
        "The lamp went out.",
    ]


def test_running_heads_go_but_a_repeated_chapter_heading_stays() -> None:
    from worker.books.pdf import Line as PdfLine

    def page(*texts: str) -> list[PdfLine]:
        return [PdfLine(t, 72, 700 - 14 * n, 11) for n, t in enumerate(texts)]

    words = ["one", "two", "three"]
    body = [[f"The {w} line of prose.", f"The {w} second.", f"The {w} end."] for w in words]
    pages = [
        page(f"{n + 1} THE SEA BOOK", f"Chapter {n + 1}", *body[n], f"- {n + 1} -")
        for n in range(3)
    ]
    kept = [[line.text for line in lines] for lines in strip_running(pages)]
    assert kept == [[f"Chapter {n + 1}", *body[n]] for n in range(3)]


def test_pdfs_that_cannot_be_read_are_refused_saying_why() -> None:
    scanned = make_pdf([[], []])  # pages with no text at all: a scan
    with pytest.raises(NoTextLayer, match=r"has no text layer.*run OCR first"):
        parse_book(scanned, filename="scan.pdf")
    only_numbers = make_pdf([["1"], ["2"], ["3"]])
    with pytest.raises(NoTextLayer):
        parse_book(only_numbers, filename="numbers.pdf")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(novel_pages()))))
    writer.encrypt(user_password="secret", algorithm="AES-128")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(ProtectedBook, match="password"):
        parse_book(locked.getvalue(), filename="locked.pdf")
    with pytest.raises(NotABook, match="not a readable PDF"):
        parse_book(b"%PDF-1.7\n garbage", filename="broken.pdf")
    with pytest.raises(NotABook, match=r"'fake\.pdf' is not a PDF: it has no PDF header"):
        parse_book(b"Chapter 1\n\nJust text.", filename="fake.pdf")
    with pytest.raises(NotABook, match=r"'pic\.html' is not an HTML document: it is a PNG image"):
        parse_book(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, filename="pic.html")
    with pytest.raises(NotABook, match="has no HTML markup"):
        parse_book(b"Just words, no tags.", filename="page.html")
    with pytest.raises(UnsafeArchive, match="expands past"):
        parse_book(make_pdf(novel_pages()), filename="big.pdf", max_unpacked_bytes=100)


def test_a_pdf_renamed_html_is_read_as_a_pdf() -> None:
    book = parse_book(make_pdf(novel_pages()), filename="sea.html")
    assert book.kind is BookKind.PDF and titles(book) == ["Chapter One", "Chapter Two"]


# -- covers ----------------------------------------------------------------------------

SVG_COVER = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'viewBox="0 0 1400 2100"><rect width="1400" height="2100" fill="#246"/>'
    '<image width="10" height="10" xlink:href="/etc/hostname"/>'
    '<image width="10" height="10" xlink:href="data:image/png;base64,{png}"/></svg>'
)


def _size(png: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(png)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_an_svg_cover_is_rasterised_for_the_audiobook() -> None:
    from tests.worker.test_books_fixtures import PNG_1X1

    svg = SVG_COVER.format(png=base64.b64encode(PNG_1X1).decode()).encode()
    png, mime = usable_cover(svg, "image/svg+xml")
    assert mime == "image/png" and _size(png) == (933, COVER_SIDE)  # the aspect ratio kept
    chapter = xhtml("<h1>One</h1><p>Text of the book.</p>")
    spec = EpubSpec(docs=[Doc("c1", "c1.xhtml", chapter)], cover=svg)
    book = parse_book(build_epub(spec), filename="se.epub")
    assert book.cover_type == "image/png" and book.cover is not None
    assert _size(book.cover) == (933, COVER_SIDE)


@pytest.mark.parametrize(
    ("svg", "says"),
    [
        (b"<svg", "not well-formed"),
        (b'<!DOCTYPE s [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg"/>', "entities"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="900"/>', "too narrow"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="0" height="0"/>', "does not render"),
        (b'<html xmlns="http://www.w3.org/2000/svg"/>', "not an SVG"),
    ],
)
def test_a_bad_svg_is_refused_saying_why(svg: bytes, says: str) -> None:
    with pytest.raises(CoverError, match=says):
        rasterise_svg(svg)


def test_a_book_whose_svg_cover_does_not_render_has_none_and_says_why() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="900"/>'
    chapter = xhtml("<h1>One</h1><p>Text of the book.</p>")
    spec = EpubSpec(docs=[Doc("c1", "c1.xhtml", chapter)], cover=svg)
    book = parse_book(build_epub(spec), filename="se.epub")
    assert book.cover is None and book.chapters
    [skip] = [s for s in book.skips if s.source == "the cover"]
    assert skip.category is SkipCategory.NOT_TEXT and "too narrow" in skip.reason


def test_the_standard_ebooks_svg_cover_is_rasterised() -> None:
    data = (CORPUS / "standard-ebooks.epub").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        images = [n for n in zf.namelist() if n.startswith("epub/images/")]
    assert images and all(n.endswith(".svg") for n in images)  # SVG only, as they ship
    book = parse_book(data, filename="se.epub")
    assert book.cover is not None and book.cover_type == "image/png"
    assert max(_size(book.cover)) == COVER_SIDE
