"""Hand-made EPUBs that reproduce the structure of real toolchains' books.

Each function writes one book the way its toolchain lays it out: file names,
package and navigation documents, ``epub:type`` and class conventions, and
the front and back matter it adds.  Standard Ebooks is in
:mod:`book_fixture_standard`, Project Gutenberg's ebookmaker in
:mod:`book_fixture_gutenberg`.  The texts are in :mod:`book_fixture_texts`.
"""

from __future__ import annotations

import html
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import book_fixture_texts as t

FIXED_TIME = (2010, 1, 1, 0, 0, 0)
NOTE_MARK = "@@note@@"  # where a note reference goes once the text is escaped
Stanzas = Sequence[tuple[str, ...]]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def paras(paragraphs: list[str], cls: str | None = None, indent: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return "\n".join(f"{indent}<p{attr}>{esc(p)}</p>" for p in paragraphs)


def container(opf: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">\n'
        f'  <rootfiles>\n    <rootfile full-path="{opf}" '
        'media-type="application/oebps-package+xml"/>\n  </rootfiles>\n</container>\n'
    )


def write_epub(path: Path, members: dict[str, str | bytes]) -> None:
    """Zip an EPUB: ``mimetype`` first and stored, the rest deflated, fixed times."""
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("mimetype", FIXED_TIME)
        zf.writestr(info, "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in members.items():
            info = zipfile.ZipInfo(name, FIXED_TIME)
            raw = data.encode("utf-8") if isinstance(data, str) else data
            if name.endswith((".xhtml", ".html", ".opf", ".ncx", ".xml", ".svg")):
                ElementTree.fromstring(raw)  # a fixture must be well-formed XML
            zf.writestr(info, raw, compress_type=zipfile.ZIP_DEFLATED)


def svg_cover(title: str, author: str) -> str:
    """An SVG cover with its text as paths would be too big; text elements do."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 1400 2100">\n'
        '\t<rect x="0" y="0" width="1400" height="2100" fill="#5a1a1a"/>\n'
        '\t<rect x="0" y="1500" width="1400" height="600" fill="#000000" opacity="0.75"/>\n'
        f'\t<text x="700" y="1750" fill="#ffffff" font-size="120" text-anchor="middle">'
        f"{esc(title.upper())}</text>\n"
        f'\t<text x="700" y="1950" fill="#ffffff" font-size="80" text-anchor="middle">'
        f"{esc(author.upper())}</text>\n"
        "</svg>\n"
    )


def verse(stanzas: Stanzas, indent: str = "  ") -> str:
    """Stanzas as paragraphs, <br/> between lines: verse as Sigil and most editors write it."""
    return "\n".join(
        f"{indent}<p>" + f"<br/>\n{indent}".join(esc(line) for line in stanza) + "</p>"
        for stanza in stanzas
    )


# -- Sigil ---------------------------------------------------------------------


def sigil_doc(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">\n'
        "<head>\n  <title></title>\n"
        '  <link href="../Styles/Style0001.css" type="text/css" rel="stylesheet"/>\n'
        f"</head>\n\n<body>\n{body}\n</body>\n</html>\n"
    )


SIGIL_SECTIONS = {
    "Section0001.xhtml": (
        '  <h1 class="title">Leaves of Grass</h1>\n\n  <p class="author">Walt Whitman</p>\n\n'
        '  <p class="imprint">Philadelphia: David McKay, Publisher</p>'
    ),
    "Section0002.xhtml": (
        "  <h1>Inscriptions</h1>\n\n"
        '  <h2 id="sigil_toc_id_1">One\u2019s-Self I Sing</h2>\n\n'
        + verse(t.ONES_SELF)
        + '\n\n  <h2 id="sigil_toc_id_2">I Hear America Singing</h2>\n\n'
        + verse(t.AMERICA_SINGING)
    ),
    "Section0003.xhtml": (
        "  <h1>Memories of President Lincoln</h1>\n\n"
        '  <h2 id="sigil_toc_id_3">O Captain! My Captain!</h2>\n\n' + verse(t.O_CAPTAIN)
    ),
    # What Sigil's "split at cursor" leaves: a file with no heading, not in the TOC.
    "Section0004.xhtml": verse(t.O_CAPTAIN_2),
}
SIGIL_NAV = """  <nav epub:type="toc" id="toc" role="doc-toc">
    <h1>Table of Contents</h1>
    <ol>
      <li>
        <a href="Section0001.xhtml">Leaves of Grass</a>
      </li>
      <li>
        <a href="Section0002.xhtml">Inscriptions</a>
        <ol>
          <li>
            <a href="Section0002.xhtml#sigil_toc_id_1">One\u2019s-Self I Sing</a>
          </li>
          <li>
            <a href="Section0002.xhtml#sigil_toc_id_2">I Hear America Singing</a>
          </li>
        </ol>
      </li>
      <li>
        <a href="Section0003.xhtml">Memories of President Lincoln</a>
        <ol>
          <li>
            <a href="Section0003.xhtml#sigil_toc_id_3">O Captain! My Captain!</a>
          </li>
        </ol>
      </li>
    </ol>
  </nav>
  <nav epub:type="landmarks" id="landmarks" hidden="">
    <h1>Landmarks</h1>
    <ol>
      <li>
        <a epub:type="cover" href="cover.xhtml">Cover</a>
      </li>
      <li>
        <a epub:type="toc" href="nav.xhtml">Table of Contents</a>
      </li>
      <li>
        <a epub:type="bodymatter" href="Section0002.xhtml">Begin Reading</a>
      </li>
    </ol>
  </nav>"""
SIGIL_COVER = """  <div style="text-align: center; padding: 0pt; margin: 0pt;">
    <svg xmlns="http://www.w3.org/2000/svg" height="100%" preserveAspectRatio="xMidYMid meet" version="1.1" viewBox="0 0 300 450" width="100%" xmlns:xlink="http://www.w3.org/1999/xlink">
      <image width="300" height="450" xlink:href="../Images/cover.png"/>
    </svg>
  </div>"""  # noqa: E501 (Sigil's cover page, verbatim in shape)


def sigil_ncx() -> str:
    points = [
        ("Leaves of Grass", "Section0001.xhtml", []),
        (
            "Inscriptions",
            "Section0002.xhtml",
            [
                ("One\u2019s-Self I Sing", "Section0002.xhtml#sigil_toc_id_1"),
                ("I Hear America Singing", "Section0002.xhtml#sigil_toc_id_2"),
            ],
        ),
        (
            "Memories of President Lincoln",
            "Section0003.xhtml",
            [("O Captain! My Captain!", "Section0003.xhtml#sigil_toc_id_3")],
        ),
    ]
    order = 0

    def point(label: str, src: str, inner: str = "") -> str:
        nonlocal order
        order += 1
        return (
            f'<navPoint id="navPoint-{order}" playOrder="{order}"><navLabel><text>{esc(label)}'
            f'</text></navLabel><content src="Text/{src}"/>{inner}</navPoint>'
        )

    body = "".join(
        point(label, src, "".join(point(sub, subsrc) for sub, subsrc in children))
        for label, src, children in points
    )
    return (
        '<?xml version="1.0" encoding="utf-8" ?>\n'
        '<ncx version="2005-1" xmlns="http://www.daisy.org/z3986/2005/ncx/"><head>'
        '<meta name="dtb:uid" content="urn:uuid:7a6b1d2e-0c5f-4f5e-8e7e-000000000003"/>'
        '<meta name="dtb:depth" content="2"/></head>'
        f"<docTitle><text>Leaves of Grass</text></docTitle><navMap>{body}</navMap></ncx>\n"
    )


def sigil_opf() -> str:
    sections = sorted(SIGIL_SECTIONS)
    items = "\n".join(
        f'    <item id="{name}" href="Text/{name}" media-type="application/xhtml+xml"/>'
        for name in sections
    )
    spine = "\n".join(f'    <itemref idref="{name}"/>' for name in sections)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<package version="3.0" unique-identifier="BookId" xmlns="http://www.idpf.org/2007/opf">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
    <dc:identifier id="BookId">urn:uuid:7a6b1d2e-0c5f-4f5e-8e7e-000000000003</dc:identifier>
    <dc:language>en</dc:language>
    <dc:title>Leaves of Grass</dc:title>
    <dc:creator id="cre">Walt Whitman</dc:creator>
    <meta refines="#cre" scheme="marc:relators" property="role">aut</meta>
    <meta property="dcterms:modified">2010-01-01T00:00:00Z</meta>
    <meta name="cover" content="cover.png"/>
    <meta name="Sigil version" content="1.9.30"/>
  </metadata>
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="cover.xhtml" href="Text/cover.xhtml" media-type="application/xhtml+xml" properties="svg"/>
{items}
    <item id="Style0001.css" href="Styles/Style0001.css" media-type="text/css"/>
    <item id="cover.png" href="Images/cover.png" media-type="image/png" properties="cover-image"/>
    <item id="nav.xhtml" href="Text/nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
  </manifest>
  <spine toc="ncx">
    <itemref idref="cover.xhtml"/>
{spine}
    <itemref idref="nav.xhtml" linear="no"/>
  </spine>
</package>
"""  # noqa: E501 (the package document as the toolchain writes it)


def make_sigil(path: Path) -> None:
    """Whitman, three poems of "Leaves of Grass", laid out by Sigil 1.9 (EPUB 3)."""
    members: dict[str, str | bytes] = {
        "META-INF/container.xml": container("OEBPS/content.opf"),
        "OEBPS/content.opf": sigil_opf(),
        "OEBPS/toc.ncx": sigil_ncx(),
        "OEBPS/Text/cover.xhtml": sigil_doc(SIGIL_COVER),
        **{f"OEBPS/Text/{name}": sigil_doc(body) for name, body in SIGIL_SECTIONS.items()},
        "OEBPS/Text/nav.xhtml": sigil_doc(SIGIL_NAV).replace(
            "<title></title>", "<title>ePub NAV</title>"
        ),
        "OEBPS/Styles/Style0001.css": "h1 { text-align: center; }\n",
        "OEBPS/Images/cover.png": png(300, 450, (30, 70, 40)),
    }
    write_epub(path, members)


# -- Adobe InDesign --------------------------------------------------------------

ID_NAME = "A_Christmas_Carol"


def indesign_doc(number: int, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        'lang="en-GB" xml:lang="en-GB">\n\t<head>\n\t\t<meta charset="utf-8" />\n'
        "\t\t<title>A Christmas Carol</title>\n"
        '\t\t<link href="css/idGeneratedStyles.css" rel="stylesheet" type="text/css" />\n'
        f'\t</head>\n\t<body id="{ID_NAME}-{number}" lang="en-GB" xml:lang="en-GB">\n'
        f'\t\t<div id="_idContainer{number:03d}" class="_idGenObjectStyleOverride-1">\n'
        f"{body}\n\t\t</div>\n\t</body>\n</html>\n"
    )


def indesign_stave(dest: int, stave: str, name: str, paragraphs: list[str]) -> str:
    """A stave: number and title as two headings, a drop cap split off the first word."""
    first, rest = paragraphs[0], paragraphs[1:]
    body = (
        f'\t\t\t<h1 class="Chapter-Number ParaOverride-1" id="_idParaDest-{dest}">'
        f'<a id="_idTextAnchor{dest:03d}"></a><span class="CharOverride-1">{stave}</span></h1>\n'
        f'\t\t\t<h2 class="Chapter-Title">{esc(name)}</h2>\n'
        f'\t\t\t<p class="Body-Text-First ParaOverride-2"><span class="CharOverride-2">'
        f"{esc(first[0])}</span>{esc(first[1:])}</p>\n" + paras(rest, "Body-Text", "\t\t\t")
    )
    return body


def indesign_pages() -> list[str]:
    """The content documents in spine order (the cover page comes before them)."""
    return [
        '\t\t\t<p class="Title ParaOverride-3">A Christmas Carol</p>\n'
        '\t\t\t<p class="Subtitle">In Prose. Being a Ghost Story of Christmas.</p>\n'
        '\t\t\t<p class="Author ParaOverride-3"><span class="CharOverride-3">Charles Dickens'
        "</span></p>\n"
        '\t\t\t<p class="Publisher">Lantern Street Press</p>',
        '\t\t\t<p class="Copyright ParaOverride-4">The text of this edition is in the public '
        "domain.</p>\n"
        '\t\t\t<p class="Copyright">Design and typesetting \u00a9 2024 Lantern Street Press. '
        "All rights reserved.</p>\n"
        '\t\t\t<p class="Copyright">ISBN 978-0-00-000000-0</p>',
        '\t\t\t<h1 class="Front-Head" id="_idParaDest-1"><a id="_idTextAnchor001"></a>Preface'
        "</h1>\n" + paras(t.CAROL_PREFACE, "Body-Text ParaOverride-2", "\t\t\t"),
        indesign_stave(2, "Stave I", "Marley\u2019s Ghost", t.CAROL_1),
        indesign_stave(3, "Stave II", "The First of the Three Spirits", t.CAROL_2),
        # A chapter opener alone on its page, then its text in a file the TOC does not list.
        '\t\t\t<h1 class="Chapter-Number ParaOverride-1" id="_idParaDest-4">'
        '<a id="_idTextAnchor004"></a><span class="CharOverride-1">Stave III</span></h1>\n'
        '\t\t\t<h2 class="Chapter-Title">The Second of the Three Spirits</h2>',
        paras(t.CAROL_3, "Body-Text-First ParaOverride-2", "\t\t\t"),
        '\t\t\t<h2 class="Back-Head">Transcriber\u2019s Note</h2>\n'
        + paras(t.TRANSCRIBER_NOTE, "Body-Text", "\t\t\t"),
        f'\t\t\t<p class="Ad-Head"><span class="CharOverride-4">{esc(t.ADVERTISEMENT[0])}'
        "</span></p>\n" + paras(t.ADVERTISEMENT[1:], "Ad-Text ParaOverride-5", "\t\t\t"),
    ]


ID_TOC = [
    ("Preface", 3, 1),
    ("Stave I: Marley\u2019s Ghost", 4, 2),
    ("Stave II: The First of the Three Spirits", 5, 3),
    ("Stave III: The Second of the Three Spirits", 6, 4),
]


def indesign_nav() -> str:
    entries = "\n".join(
        f'\t\t\t\t<li>\n\t\t\t\t\t<a href="{ID_NAME}-{page}.xhtml#_idParaDest-{dest}">'
        f"{esc(label)}</a>\n\t\t\t\t</li>"
        for label, page, dest in ID_TOC
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        'lang="en-GB" xml:lang="en-GB">\n\t<head>\n\t\t<meta charset="utf-8" />\n'
        "\t\t<title>A Christmas Carol</title>\n\t</head>\n\t<body>\n"
        '\t\t<nav epub:type="toc" id="toc">\n\t\t\t<ol>\n'
        f"{entries}\n\t\t\t</ol>\n\t\t</nav>\n"
        '\t\t<nav epub:type="landmarks" class="hidden" hidden="hidden">\n\t\t\t<ol>\n'
        '\t\t\t\t<li>\n\t\t\t\t\t<a epub:type="toc" href="toc.xhtml">Table of Contents</a>\n'
        "\t\t\t\t</li>\n"
        f'\t\t\t\t<li>\n\t\t\t\t\t<a epub:type="bodymatter" href="{ID_NAME}-3.xhtml">Start'
        "</a>\n\t\t\t\t</li>\n\t\t\t</ol>\n\t\t</nav>\n\t</body>\n</html>\n"
    )


def indesign_ncx() -> str:
    points = "".join(
        f'<navPoint id="navpoint{n}" playOrder="{n}"><navLabel><text>{esc(label)}</text>'
        f'</navLabel><content src="{ID_NAME}-{page}.xhtml#_idParaDest-{dest}" /></navPoint>'
        for n, (label, page, dest) in enumerate(ID_TOC, 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head>'
        '<meta name="dtb:uid" content="urn:uuid:0c1d2e3f-4a5b-4c6d-8e9f-000000000004" />'
        '<meta name="dtb:depth" content="1" /></head>'
        f"<docTitle><text>A Christmas Carol</text></docTitle><navMap>{points}</navMap></ncx>\n"
    )


def indesign_opf(pages: int) -> str:
    names = [f"{ID_NAME}-{n}" for n in range(1, pages + 1)]
    items = "\n".join(
        f'\t\t<item id="{name}" href="{name}.xhtml" media-type="application/xhtml+xml" />'
        for name in names
    )
    spine = "\n".join(f'\t\t<itemref idref="{name}" />' for name in names)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" xml:lang="en-GB" unique-identifier="bookid" prefix="rendition: http://www.idpf.org/vocab/rendition/# ibooks: http://vocabulary.itunes.apple.com/rdf/ibooks/vocabulary-extensions-1.0/">
\t<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
\t\t<meta name="generator" content="Adobe InDesign 18.5" />
\t\t<meta name="cover" content="cover-image" />
\t\t<dc:title>A Christmas Carol</dc:title>
\t\t<dc:creator>Charles Dickens</dc:creator>
\t\t<dc:publisher>Lantern Street Press</dc:publisher>
\t\t<dc:language>en-GB</dc:language>
\t\t<dc:identifier id="bookid">urn:uuid:0c1d2e3f-4a5b-4c6d-8e9f-000000000004</dc:identifier>
\t\t<meta property="dcterms:modified">2010-01-01T00:00:00Z</meta>
\t\t<meta property="ibooks:specified-fonts">true</meta>
\t</metadata>
\t<manifest>
\t\t<item id="toc" properties="nav" href="toc.xhtml" media-type="application/xhtml+xml" />
\t\t<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml" />
\t\t<item id="idGeneratedStyles.css" href="css/idGeneratedStyles.css" media-type="text/css" />
\t\t<item id="cover-image" properties="cover-image" href="image/cover.png" media-type="image/png" />
\t\t<item id="cover" href="cover.xhtml" media-type="application/xhtml+xml" />
{items}
\t</manifest>
\t<spine toc="ncx">
\t\t<itemref idref="cover" />
{spine}
\t</spine>
</package>
"""  # noqa: E501 (the package document as the toolchain writes it)


def make_indesign(path: Path) -> None:
    """Dickens, "A Christmas Carol" exported by InDesign: a file per page or chapter."""
    pages = indesign_pages()
    cover = '\t\t\t<img class="_idGenObjectAttribute-1" src="image/cover.png" alt="Cover" />'
    members: dict[str, str | bytes] = {
        "META-INF/container.xml": container("OEBPS/content.opf"),
        "OEBPS/content.opf": indesign_opf(len(pages)),
        "OEBPS/toc.xhtml": indesign_nav(),
        "OEBPS/toc.ncx": indesign_ncx(),
        "OEBPS/cover.xhtml": indesign_doc(0, cover),
        **{f"OEBPS/{ID_NAME}-{n}.xhtml": indesign_doc(n, body) for n, body in enumerate(pages, 1)},
        "OEBPS/css/idGeneratedStyles.css": (
            "p.ParaOverride-1 { text-align:center; }\n"
            "span.CharOverride-2 { font-size:3em; float:left; }\n"
        ),
        "OEBPS/image/cover.png": png(300, 450, (20, 40, 90)),
    }
    write_epub(path, members)
