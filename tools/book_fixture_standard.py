"""A book laid out as Standard Ebooks' toolset lays it out (EPUB 3).

``epub/text/*.xhtml`` with ``epub:type`` on every section, an SVG-only cover,
titlepage, imprint, a half-title the nav leaves out, a heading-only file per
part whose chapters the nav nests under it, endnotes with noterefs and
backlinks, a colophon and the Uncopyright.
"""

from __future__ import annotations

from pathlib import Path

import book_fixture_texts as t
from book_fixture_epubs import NOTE_MARK, container, esc, paras, svg_cover, write_epub

# -- Standard Ebooks -----------------------------------------------------------

SE_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
    'epub:prefix="z3998: http://www.daisy.org/z3998/2012/vocab/structure/, '
    'se: https://standardebooks.org/vocab/1.0" xml:lang="en-GB">\n'
    "\t<head>\n\t\t<title>{title}</title>\n"
    '\t\t<link href="../css/core.css" rel="stylesheet" type="text/css"/>\n'
    '\t\t<link href="../css/local.css" rel="stylesheet" type="text/css"/>\n'
    "\t</head>\n"
)
SE_PART_TITLE = (
    "Being a Reprint From the Reminiscences of John H. Watson, M.D., Late of the Army "
    "Medical Department"
)


def se_doc(title: str, body_type: str, body: str) -> str:
    return SE_HEAD.format(title=esc(title)) + (
        f'\t<body epub:type="{body_type}">\n{body}\n\t</body>\n</html>\n'
    )


def se_chapter(part: int, number: int, roman: str, name: str, paragraphs: list[str]) -> str:
    """A chapter inside its part's <section>, as Standard Ebooks nests them."""
    body = (
        f'\t\t<section id="part-{part}" epub:type="part">\n'
        f'\t\t\t<section id="chapter-{part}-{number}" epub:type="chapter">\n'
        "\t\t\t\t<hgroup>\n"
        f'\t\t\t\t\t<h3>\n\t\t\t\t\t\t<span epub:type="label">Chapter</span>\n'
        f'\t\t\t\t\t\t<span epub:type="ordinal z3998:roman">{roman}</span>\n\t\t\t\t\t</h3>\n'
        f'\t\t\t\t\t<p epub:type="title">{esc(name)}</p>\n'
        "\t\t\t\t</hgroup>\n"
        f"{paras(paragraphs, indent=chr(9) * 4)}\n"
        "\t\t\t</section>\n\t\t</section>"
    )
    return se_doc(roman, "bodymatter z3998:fiction", body)


def se_part(part: int, roman: str, name: str) -> str:
    """A part's own file: only its heading (Standard Ebooks' half-title of a part)."""
    body = (
        f'\t\t<section id="part-{part}" epub:type="part">\n\t\t\t<hgroup>\n'
        f'\t\t\t\t<h2>\n\t\t\t\t\t<span epub:type="label">Part</span>\n'
        f'\t\t\t\t\t<span epub:type="ordinal z3998:roman">{roman}</span>\n\t\t\t\t</h2>\n'
        f'\t\t\t\t<p epub:type="title">{esc(name)}</p>\n\t\t\t</hgroup>\n\t\t</section>'
    )
    return se_doc(f"Part {roman}", "bodymatter z3998:fiction", body)


SE_IMPRINT = [
    "This ebook is the product of many hours of hard work by volunteers for Standard Ebooks, "
    "and builds on the hard work of other literature lovers made possible by the public "
    "domain.",
    "This particular ebook is based on a transcription produced for Project Gutenberg and on "
    "digital scans from the Internet Archive.",
    "The source text and artwork in this ebook are believed to be in the United States public "
    "domain; that is, they are believed to be free of copyright restrictions in the United "
    "States. They may still be copyrighted in other countries, so users located outside of "
    "the United States must check their local laws before using this ebook.",
]
SE_UNCOPYRIGHT = [
    "Copyright pages exist to tell you that you can\u2019t do something. Unlike them, this "
    "Uncopyright page exists to tell you that the writing and artwork in this ebook are "
    "believed to be in the United States public domain.",
    "Standard Ebooks dedicates its contributions to the worldwide public domain via the terms "
    "in the CC0 1.0 Universal Public Domain Dedication.",
]


def se_matter() -> dict[str, str]:
    """Title page, imprint, half-title, endnotes, colophon and Uncopyright."""
    header = '\t\t\t<h2 epub:type="title">{}</h2>\n'
    logo = '\t\t\t<img alt="The Standard Ebooks logo." src="../images/logo.svg"/>\n'
    return {
        "titlepage": se_doc(
            "Titlepage",
            "frontmatter",
            '\t\t<section id="titlepage" epub:type="titlepage">\n'
            '\t\t\t<h1 epub:type="title">A Study in Scarlet</h1>\n'
            '\t\t\t<p>By <b epub:type="z3998:author z3998:personal-name">Arthur Conan Doyle'
            "</b>.</p>\n"
            '\t\t\t<img alt="" src="../images/titlepage.svg" epub:type="se:image.color-depth.'
            'black-on-transparent"/>\n\t\t</section>',
        ),
        "imprint": se_doc(
            "Imprint",
            "frontmatter",
            '\t\t<section id="imprint" epub:type="imprint">\n\t\t\t<header>\n'
            + header.format("Imprint")
            + logo
            + "\t\t\t</header>\n"
            + paras(SE_IMPRINT, indent="\t\t\t")
            + "\n\t\t</section>",
        ),
        "halftitlepage": se_doc(
            "Half Title",
            "frontmatter",
            '\t\t<section id="halftitlepage" epub:type="halftitlepage">\n'
            '\t\t\t<hgroup>\n\t\t\t\t<h2 epub:type="fulltitle">A Study in Scarlet</h2>\n'
            "\t\t\t</hgroup>\n\t\t</section>",
        ),
        "endnotes": se_doc(
            "Endnotes",
            "backmatter",
            '\t\t<section id="endnotes" epub:type="endnotes">\n'
            + header.format("Endnotes")
            + '\t\t\t<ol>\n\t\t\t\t<li id="note-1" epub:type="endnote">\n'
            f"\t\t\t\t\t<p>{esc(t.SCARLET_NOTE)} "
            '<a href="chapter-1-1.xhtml#noteref-1" epub:type="backlink">\u21a9</a></p>\n'
            "\t\t\t\t</li>\n\t\t\t</ol>\n\t\t</section>",
        ),
        "colophon": se_doc(
            "Colophon",
            "backmatter",
            '\t\t<section id="colophon" epub:type="colophon">\n\t\t\t<header>\n'
            + header.format("Colophon")
            + logo
            + "\t\t\t</header>\n"
            '\t\t\t<p><i epub:type="se:name.publication.book">A Study in Scarlet</i><br/>\n'
            "\t\t\twas published in 1887 by<br/>\n"
            '\t\t\t<a href="https://en.wikipedia.org/wiki/Arthur_Conan_Doyle">Arthur Conan '
            "Doyle</a>.</p>\n"
            "\t\t\t<p>This ebook was produced for<br/>\n\t\t\tStandard Ebooks<br/>\n"
            "\t\t\tby volunteers.</p>\n\t\t</section>",
        ),
        "uncopyright": se_doc(
            "Uncopyright",
            "backmatter",
            '\t\t<section id="uncopyright" epub:type="copyright-page">\n'
            + header.format("Uncopyright")
            + "\t\t\t<p>May you do good and not evil.<br/>\n"
            "\t\t\tMay you find forgiveness for yourself and forgive others.<br/>\n"
            "\t\t\tMay you share freely, never taking more than you give.</p>\n"
            + paras(SE_UNCOPYRIGHT, indent="\t\t\t")
            + "\n\t\t</section>",
        ),
    }


def se_nav() -> str:
    """toc.xhtml: parts at the top, their chapters nested; landmarks; no half-title."""

    def chapter(href: str, roman: str, name: str) -> str:
        return (
            f'<li>\n\t\t\t\t\t\t\t<a href="text/{href}"><span epub:type="z3998:roman">{roman}'
            f"</span>: {esc(name)}</a>\n\t\t\t\t\t\t</li>"
        )

    toc = f"""\t\t<nav id="toc" epub:type="toc">
\t\t\t<h2 epub:type="title">Table of Contents</h2>
\t\t\t<ol>
\t\t\t\t<li><a href="text/titlepage.xhtml">Titlepage</a></li>
\t\t\t\t<li><a href="text/imprint.xhtml">Imprint</a></li>
\t\t\t\t<li>
\t\t\t\t\t<a href="text/part-1.xhtml">Part <span epub:type="z3998:roman">I</span>: {SE_PART_TITLE}</a>
\t\t\t\t\t<ol>
\t\t\t\t\t\t{chapter("chapter-1-1.xhtml", "I", "Mr. Sherlock Holmes")}
\t\t\t\t\t\t{chapter("chapter-1-2.xhtml", "II", "The Science of Deduction")}
\t\t\t\t\t</ol>
\t\t\t\t</li>
\t\t\t\t<li>
\t\t\t\t\t<a href="text/part-2.xhtml">Part <span epub:type="z3998:roman">II</span>: The Country of the Saints</a>
\t\t\t\t\t<ol>
\t\t\t\t\t\t{chapter("chapter-2-1.xhtml", "I", "On the Great Alkali Plain")}
\t\t\t\t\t</ol>
\t\t\t\t</li>
\t\t\t\t<li><a href="text/endnotes.xhtml">Endnotes</a></li>
\t\t\t\t<li><a href="text/colophon.xhtml">Colophon</a></li>
\t\t\t\t<li><a href="text/uncopyright.xhtml">Uncopyright</a></li>
\t\t\t</ol>
\t\t</nav>
\t\t<nav id="landmarks" epub:type="landmarks">
\t\t\t<h2 epub:type="title">Landmarks</h2>
\t\t\t<ol>
\t\t\t\t<li><a href="text/part-1.xhtml" epub:type="bodymatter z3998:fiction">A Study in Scarlet</a></li>
\t\t\t\t<li><a href="text/endnotes.xhtml" epub:type="backmatter endnotes">Endnotes</a></li>
\t\t\t</ol>
\t\t</nav>"""  # noqa: E501 (Standard Ebooks writes a nav entry on one line)
    return se_doc("Table of Contents", "frontmatter", toc).replace("../css/", "css/")


SE_SPINE = [
    "titlepage",
    "imprint",
    "halftitlepage",
    "part-1",
    "chapter-1-1",
    "chapter-1-2",
    "part-2",
    "chapter-2-1",
    "endnotes",
    "colophon",
    "uncopyright",
]


def se_opf() -> str:
    items = "\n".join(
        f'\t\t<item href="text/{name}.xhtml" id="{name}.xhtml" media-type="application/xhtml+xml"/>'
        for name in SE_SPINE
    )
    spine = "\n".join(f'\t\t<itemref idref="{name}.xhtml"/>' for name in SE_SPINE)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" dir="ltr" prefix="se: https://standardebooks.org/vocab/1.0" unique-identifier="uid" version="3.0" xml:lang="en-US">
\t<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
\t\t<dc:identifier id="uid">url:https://standardebooks.org/ebooks/arthur-conan-doyle/a-study-in-scarlet</dc:identifier>
\t\t<dc:date>2010-01-01T00:00:00Z</dc:date>
\t\t<meta property="dcterms:modified">2010-01-01T00:00:00Z</meta>
\t\t<dc:title id="title">A Study in Scarlet</dc:title>
\t\t<dc:language>en-GB</dc:language>
\t\t<dc:publisher id="publisher">Standard Ebooks</dc:publisher>
\t\t<dc:rights>The source text and artwork in this ebook are believed to be in the United States public domain.</dc:rights>
\t\t<dc:creator id="author">Arthur Conan Doyle</dc:creator>
\t\t<meta property="file-as" refines="#author">Doyle, Arthur Conan</meta>
\t\t<meta property="role" refines="#author" scheme="marc:relators">aut</meta>
\t\t<meta property="se:word-count">2000</meta>
\t</metadata>
\t<manifest>
\t\t<item href="css/core.css" id="core.css" media-type="text/css"/>
\t\t<item href="css/local.css" id="local.css" media-type="text/css"/>
\t\t<item href="images/cover.svg" id="cover.svg" media-type="image/svg+xml" properties="cover-image"/>
\t\t<item href="images/logo.svg" id="logo.svg" media-type="image/svg+xml"/>
\t\t<item href="images/titlepage.svg" id="titlepage.svg" media-type="image/svg+xml"/>
\t\t<item href="toc.xhtml" id="toc.xhtml" media-type="application/xhtml+xml" properties="nav"/>
{items}
\t</manifest>
\t<spine>
{spine}
\t</spine>
</package>
"""  # noqa: E501 (the package document as the toolchain writes it)


def make_standard_ebooks(path: Path) -> None:
    """Doyle, "A Study in Scarlet" as Standard Ebooks lays it out (an SVG-only cover)."""
    matter = se_matter()
    first = list(t.SCARLET_1_1)
    first[1] += NOTE_MARK
    chapter_1_1 = se_chapter(1, 1, "I", "Mr. Sherlock Holmes", first).replace(
        NOTE_MARK, '<a href="endnotes.xhtml#note-1" id="noteref-1" epub:type="noteref">1</a>'
    )
    texts = {
        **matter,
        "part-1": se_part(1, "I", SE_PART_TITLE),
        "chapter-1-1": chapter_1_1,
        "chapter-1-2": se_chapter(1, 2, "II", "The Science of Deduction", t.SCARLET_1_2),
        "part-2": se_part(2, "II", "The Country of the Saints"),
        "chapter-2-1": se_chapter(2, 1, "I", "On the Great Alkali Plain", t.SCARLET_2_1),
    }
    members: dict[str, str | bytes] = {
        "META-INF/container.xml": container("epub/content.opf"),
        "epub/content.opf": se_opf(),
        "epub/toc.xhtml": se_nav(),
        "epub/css/core.css": "p{\n\tmargin: 0;\n\ttext-indent: 1em;\n}\n",
        "epub/css/local.css": '@namespace epub "http://www.idpf.org/2007/ops";\n',
        "epub/images/cover.svg": svg_cover("A Study in Scarlet", "Arthur Conan Doyle"),
        "epub/images/titlepage.svg": svg_cover("A Study in Scarlet", "Arthur Conan Doyle"),
        "epub/images/logo.svg": svg_cover("Standard Ebooks", ""),
    }
    members.update({f"epub/text/{name}.xhtml": texts[name] for name in SE_SPINE})
    write_epub(path, members)
