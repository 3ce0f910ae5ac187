"""Books laid out as Project Gutenberg's ebookmaker lays them out, EPUB 3 and EPUB 2.

The EPUB 3 follows ebookmaker 0.12 and later: the boilerplate in
``<section id="pg-header">`` and ``<section id="pg-footer">`` (class
``pg-boilerplate``), a cover wrapper ``wrap0000.xhtml``, files named after
the source HTML and split into chunks with several chapters each, a
``toc.xhtml`` nav and a ``toc.ncx``.  The EPUB 2 follows the older ebookmaker:
the boilerplate as plain ``<pre>`` text with only its START and END lines to
tell it apart, ``@public@vhost@…`` file names, an NCX.  Both carry the
Distributed Proofreaders conventions: ``<span class="pagenum">`` page
anchors and ``<span class="linenum">`` verse line numbers.

The boilerplate is abridged to a few sentences of what Project Gutenberg
ships with every ebook; it is here to be recognised and skipped.
"""

from __future__ import annotations

from pathlib import Path

import book_fixture_texts as t
from book_fixture_epubs import Stanzas, container, esc, png, write_epub

PG_LICENCE = [
    "To protect the Project Gutenberg\u2122 mission of promoting the free distribution of "
    "electronic works, by using or distributing this work (or any other work associated in "
    "any way with the phrase \u201cProject Gutenberg\u201d), you agree to comply with all "
    "the terms of the Full Project Gutenberg\u2122 License available with this file or "
    "online at www.gutenberg.org/license.",
    "Section 1. General Terms of Use and Redistributing Project Gutenberg\u2122 electronic works",
    "1.A. By reading or using any part of this Project Gutenberg\u2122 electronic work, you "
    "indicate that you have read, understand, agree to and accept all the terms of this "
    "license and intellectual property (trademark/copyright) agreement.",
    "Most people start at our website which has the main PG search facility: www.gutenberg.org.",
]
PG_NOTICE = (
    "This ebook is for the use of anyone anywhere in the United States and most other parts "
    "of the world at no cost and with almost no restrictions whatsoever. You may copy it, give "
    "it away or re-use it under the terms of the Project Gutenberg License included with this "
    "ebook or online at www.gutenberg.org."
)
PREFIX = "8426386213891236016_1342"  # ebookmaker: a number, then the source file's name


def pagenum(page: int) -> str:
    return f'<span class="pagenum"><a id="Page_{page}">[Pg {page}]</a></span>'


def xhtml3(title: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        'lang="en" xml:lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        f"<title>{esc(title)}</title>\n"
        '<link href="0.css" rel="stylesheet" type="text/css"/>\n'
        '<link href="pgepub.css" rel="stylesheet" type="text/css"/>\n'
        f'</head>\n<body class="x-ebookmaker">\n<div class="pgebub-root-div" id="pgepub-root-div">'
        f"\n{body}\n</div>\n</body>\n</html>\n"
    )


def pg_header() -> str:
    return f"""<section class="pg-boilerplate pgheader" id="pg-header" lang="en">
<h2 id="pg-header-heading" title="">The Project Gutenberg eBook of <span lang="en" id="pg-title-no-subtitle">Pride and Prejudice</span></h2>
<div>{esc(PG_NOTICE)}</div>
<div class="container" id="pg-machine-header"><p><strong>Title</strong>: Pride and Prejudice</p>
<div id="pg-header-authlist"><p><strong>Author</strong>: Jane Austen</p></div>
<p><strong>Release date</strong>: June 1, 1998 [eBook #1342]</p>
<p><strong>Language</strong>: English</p>
<p><strong>Credits</strong>: Chuck Greif and the Online Distributed Proofreading Team</p>
</div>
<div id="pg-start-separator"><span>*** START OF THE PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***</span></div>
</section>"""  # noqa: E501 (ebookmaker's markup, line for line)


def pg_footer() -> str:
    licence = "\n".join(f"<div>{esc(p)}</div>" for p in PG_LICENCE)
    return f"""<section class="pg-boilerplate pgheader" id="pg-footer" lang="en">
<div id="pg-end-separator"><span>*** END OF THE PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***</span></div>
<div>Updated editions will replace the previous one\u2014the old editions will be renamed.</div>
<div style="margin-top:1em; font-size:1.1em; text-align:center"><a id="THE_FULL_PROJECT_GUTENBERG_LICENSE"></a>START: FULL LICENSE</div>
<div style="text-align:center;font-size:0.9em">THE FULL PROJECT GUTENBERG LICENSE</div>
<div style="text-align:center;font-size:0.9em">PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK</div>
{licence}
</section>"""  # noqa: E501 (ebookmaker's markup, line for line)


def pride_chapter(roman: str, paragraphs: list[str], page: int) -> str:
    """A chapter as Distributed Proofreaders mark it up, a page break inside a paragraph."""
    body = [esc(p) for p in paragraphs]
    # The page turns mid-sentence, as on paper: the words either side must stay apart.
    words = body[-1].split(" ")
    half = len(words) // 2
    body[-1] = " ".join(words[:half]) + pagenum(page) + " " + " ".join(words[half:])
    paragraphs_html = "\n".join(f"<p>{p}</p>" for p in body)
    return (
        f'<div class="chapter">\n<h2 class="nobreak" id="CHAPTER_{roman}">CHAPTER {roman}.</h2>'
        f"\n{paragraphs_html}\n</div>"
    )


def pride_first_page() -> str:
    """Chapter I with its page break right inside "considered as the rightful property"."""
    body = [esc(p) for p in t.PRIDE_1]
    body[1] = body[1].replace("as the rightful", "as the" + pagenum(2) + " rightful")
    paragraphs_html = "\n".join(f"<p>{p}</p>" for p in body)
    return f'<div class="chapter">\n<h2 class="nobreak" id="CHAPTER_I">CHAPTER I.</h2>\n{paragraphs_html}\n</div>'  # noqa: E501


PRIDE_NAV = [
    ("PRIDE AND PREJUDICE", "0", "pg-title"),
    ("CHAPTER I.", "0", "CHAPTER_I"),
    ("CHAPTER II.", "0", "CHAPTER_II"),
    ("CHAPTER III.", "1", "CHAPTER_III"),
    ("THE FULL PROJECT GUTENBERG LICENSE", "1", "THE_FULL_PROJECT_GUTENBERG_LICENSE"),
]


def pride_nav() -> tuple[str, str]:
    """toc.xhtml (nav) and toc.ncx, both flat, as ebookmaker makes them from the headings."""
    lis = "\n".join(
        f'<li><a href="{PREFIX}-h-{chunk}.htm.xhtml#{anchor}" id="np-{n}">{esc(label)}</a></li>'
        for n, (label, chunk, anchor) in enumerate(PRIDE_NAV, 1)
    )
    nav = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        'xml:lang="en">\n<head>\n<title>Pride and Prejudice</title>\n</head>\n'
        '<body epub:type="frontmatter">\n<nav epub:type="toc" role="doc-toc" '
        f'aria-label="Table of Contents">\n<ol>\n{lis}\n</ol>\n</nav>\n</body>\n</html>\n'
    )
    points = "\n".join(
        f'<navPoint id="np-{n}" playOrder="{n}"><navLabel><text>{esc(label)}</text></navLabel>'
        f'<content src="{PREFIX}-h-{chunk}.htm.xhtml#{anchor}"/></navPoint>'
        for n, (label, chunk, anchor) in enumerate(PRIDE_NAV, 1)
    )
    ncx = (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1" xml:lang="en">\n'
        '<head><meta name="dtb:uid" content="http://www.gutenberg.org/1342"/>'
        '<meta name="dtb:depth" content="1"/></head>\n'
        "<docTitle><text>Pride and Prejudice</text></docTitle>\n"
        f"<navMap>\n{points}\n</navMap>\n</ncx>\n"
    )
    return nav, ncx


def pride_opf() -> str:
    chunks = "\n".join(
        f'    <item href="{PREFIX}-h-{n}.htm.xhtml" id="item{n + 4}" '
        'media-type="application/xhtml+xml"/>'
        for n in range(2)
    )
    return f"""<?xml version='1.0' encoding='UTF-8'?>

<package xmlns="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/" version="3.0" unique-identifier="id" xml:lang="en">
  <metadata>
    <dc:publisher>Project Gutenberg</dc:publisher>
    <dc:rights>Public domain in the USA.</dc:rights>
    <dc:identifier id="id">http://www.gutenberg.org/1342</dc:identifier>
    <dc:creator id="author_0">Jane Austen</dc:creator>
    <meta property="file-as" refines="#author_0">Austen, Jane</meta>
    <meta property="role" refines="#author_0" scheme="marc:relators">aut</meta>
    <dc:title>Pride and Prejudice</dc:title>
    <dc:language>en</dc:language>
    <dc:date>1998-06-01</dc:date>
    <meta property="dcterms:modified">2010-01-01T00:00:00Z</meta>
    <dc:source>https://www.gutenberg.org/files/1342/1342-h/1342-h.htm</dc:source>
    <meta name="cover" content="item1"/>
  </metadata>
  <manifest>
    <item href="{PREFIX}-cover.png" id="item1" media-type="image/png" properties="cover-image"/>
    <item href="pgepub.css" id="item2" media-type="text/css"/>
    <item href="0.css" id="item3" media-type="text/css"/>
{chunks}
    <item href="toc.xhtml" id="ncx" media-type="application/xhtml+xml" properties="nav"/>
    <item href="toc.ncx" id="ncx2" media-type="application/x-dtbncx+xml"/>
    <item href="wrap0000.xhtml" id="coverpage-wrapper" media-type="application/xhtml+xml" properties="svg"/>
  </manifest>
  <spine toc="ncx2">
    <itemref idref="coverpage-wrapper" linear="yes"/>
    <itemref idref="item4"/>
    <itemref idref="item5"/>
  </spine>
  <guide>
    <reference type="cover" title="Cover" href="wrap0000.xhtml"/>
  </guide>
</package>
"""  # noqa: E501 (the package document as the toolchain writes it)


def cover_wrapper(image: str, *, epub3: bool) -> str:
    """ebookmaker's generated cover page: an SVG that scales the cover image."""
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        if epub3
        else '<?xml version="1.0" encoding="utf-8"?>\n'
    )
    return (
        head + '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">\n  <head>\n'
        '    <title>"Cover"</title>\n  </head>\n<body class="x-ebookmaker-coverpage">\n'
        '  <div class="x-ebookmaker-cover">\n'
        '    <svg xmlns="http://www.w3.org/2000/svg" height="100%" '
        'preserveAspectRatio="xMidYMid meet" version="1.1" viewBox="0 0 300 450" width="100%" '
        'xmlns:xlink="http://www.w3.org/1999/xlink">\n'
        f'      <image width="300" height="450" xlink:href="{image}"/>\n'
        "    </svg>\n  </div>\n</body>\n</html>\n"
    )


def make_gutenberg_epub3(path: Path) -> None:
    """Austen, "Pride and Prejudice" chapters I\u2013III, as ebookmaker 0.12+ makes EPUB 3."""
    title = (
        '<div class="titlepage">\n<h1 id="pg-title">PRIDE AND PREJUDICE</h1>\n'
        '<p class="center">By Jane Austen</p>\n</div>'
    )
    chunk0 = "\n".join(
        [
            pg_header(),
            title,
            pride_first_page(),
            pride_chapter("II", t.PRIDE_2, 5),
        ]
    )
    chunk1 = "\n".join([pride_chapter("III", t.PRIDE_3, 9), pg_footer()])
    nav, ncx = pride_nav()
    members: dict[str, str | bytes] = {
        "META-INF/container.xml": container("OEBPS/content.opf"),
        "OEBPS/content.opf": pride_opf(),
        "OEBPS/toc.xhtml": nav,
        "OEBPS/toc.ncx": ncx,
        "OEBPS/wrap0000.xhtml": cover_wrapper(f"{PREFIX}-cover.png", epub3=True),
        f"OEBPS/{PREFIX}-h-0.htm.xhtml": xhtml3("Pride and Prejudice", chunk0),
        f"OEBPS/{PREFIX}-h-1.htm.xhtml": xhtml3("Pride and Prejudice", chunk1),
        "OEBPS/pgepub.css": ".pagenum { display: none }\n",
        "OEBPS/0.css": "h2 { text-align: center }\n",
        f"OEBPS/{PREFIX}-cover.png": png(300, 450, (110, 90, 60)),
    }
    write_epub(path, members)


# -- the older EPUB 2 ------------------------------------------------------------

OLD = "@public@vhost@g@gutenberg@html@files@1065@1065-h@1065-h-{}.htm.html"
OLD_HEADER = """The Project Gutenberg EBook of The Raven, by Edgar Allan Poe

This eBook is for the use of anyone anywhere at no cost and with
almost no restrictions whatsoever.  You may copy it, give it away or
re-use it under the terms of the Project Gutenberg License included
with this eBook or online at www.gutenberg.net


Title: The Raven

Author: Edgar Allan Poe

Release Date: October, 1997 [EBook #1065]

Language: English


*** START OF THIS PROJECT GUTENBERG EBOOK THE RAVEN ***"""
OLD_FOOTER = """End of the Project Gutenberg EBook of The Raven, by Edgar Allan Poe

*** END OF THIS PROJECT GUTENBERG EBOOK THE RAVEN ***

***** This file should be named 1065-h.htm or 1065-h.zip *****

Updated editions will replace the previous one--the old editions
will be renamed."""


def old_poem(stanzas: Stanzas, *, numbers: dict[int, str], pages: dict[int, int]) -> str:
    """A poem as Distributed Proofreaders mark it up: a <span> per line, indent classes.

    ``numbers`` puts a ``linenum`` span at the end of those lines (counted from
    1); ``pages`` puts a ``pagenum`` span before those lines.
    """
    out, count = ['<div class="poem">'], 0
    for stanza in stanzas:
        out.append('<div class="stanza">')
        for line in stanza:
            count += 1
            page = pages.get(count)
            before = (
                f'<span class="pagenum"><a id="Page_{page}">[{page}]</a></span>' if page else ""
            )
            after = f'<span class="linenum">{numbers[count]}</span>' if count in numbers else ""
            indent = "i10" if len(line) < 30 else "i0"
            out.append(f'{before}<span class="{indent}">{esc(line)}{after}<br/></span>')
        out.append("</div>")
    out.append("</div>")
    return "\n".join(out)


def xhtml_old(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
        '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">\n<head>\n'
        '<meta content="application/xhtml+xml; charset=utf-8" http-equiv="Content-Type"/>\n'
        "<title>The Raven, by Edgar Allan Poe</title>\n"
        '<link href="0.css" rel="stylesheet" type="text/css"/>\n'
        '<link href="pgepub.css" rel="stylesheet" type="text/css"/>\n'
        f'</head>\n<body>\n<div class="pgebub-root-div">\n{body}\n</div>\n</body>\n</html>\n'
    )


RAVEN_NAV = [
    ("THE RAVEN", 0, "THE_RAVEN"),
    ("ANNABEL LEE", 1, "ANNABEL_LEE"),
    ("THE FULL PROJECT GUTENBERG LICENSE", 1, "THE_FULL_PROJECT_GUTENBERG_LICENSE"),
]


def raven_ncx() -> str:
    points = "\n".join(
        f'<navPoint id="np-{n}" playOrder="{n}"><navLabel><text>{esc(label)}</text></navLabel>'
        f'<content src="{OLD.format(chunk)}#{anchor}"/></navPoint>'
        for n, (label, chunk, anchor) in enumerate(RAVEN_NAV, 1)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1" xml:lang="en">\n'
        '<head><meta name="dtb:uid" content="http://www.gutenberg.org/ebooks/1065"/>'
        '<meta name="dtb:depth" content="1"/>'
        '<meta name="dtb:generator" content="Ebookmaker 0.4.0a5 by Marcello Perathoner"/></head>\n'
        "<docTitle><text>The Raven</text></docTitle>\n"
        f"<navMap>\n{points}\n</navMap>\n</ncx>\n"
    )


def raven_opf() -> str:
    return f"""<?xml version='1.0' encoding='UTF-8'?>

<package xmlns:opf="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="id">
  <metadata>
    <dc:rights>Public domain in the USA.</dc:rights>
    <dc:identifier id="id" opf:scheme="URI">http://www.gutenberg.org/ebooks/1065</dc:identifier>
    <dc:creator opf:file-as="Poe, Edgar Allan">Edgar Allan Poe</dc:creator>
    <dc:title>The Raven</dc:title>
    <dc:language xsi:type="dcterms:RFC4646" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">en</dc:language>
    <dc:date opf:event="publication">1997-10-01</dc:date>
    <meta content="item1" name="cover"/>
  </metadata>
  <manifest>
    <item href="cover.png" id="item1" media-type="image/png"/>
    <item href="pgepub.css" id="item2" media-type="text/css"/>
    <item href="0.css" id="item3" media-type="text/css"/>
    <item href="{OLD.format(0)}" id="item4" media-type="application/xhtml+xml"/>
    <item href="{OLD.format(1)}" id="item5" media-type="application/xhtml+xml"/>
    <item href="toc.ncx" id="ncx" media-type="application/x-dtbncx+xml"/>
    <item href="wrap0000.html" id="coverpage-wrapper" media-type="application/xhtml+xml"/>
  </manifest>
  <spine toc="ncx">
    <itemref idref="coverpage-wrapper" linear="no"/>
    <itemref idref="item4" linear="yes"/>
    <itemref idref="item5" linear="yes"/>
  </spine>
  <guide>
    <reference href="wrap0000.html" type="cover" title="Cover"/>
  </guide>
</package>
"""  # noqa: E501 (the package document as the toolchain writes it)


def make_gutenberg_epub2(path: Path) -> None:
    """Poe, "The Raven" and "Annabel Lee", as the older ebookmaker made EPUB 2."""
    licence = "\n\n".join(PG_LICENCE)
    chunk0 = (
        f'<pre xml:space="preserve">\n{esc(OLD_HEADER)}\n</pre>\n'
        '<h2 id="THE_RAVEN">THE RAVEN</h2>\n'
        + old_poem(t.RAVEN, numbers={5: "5", 10: "10", 15: "15"}, pages={13: 10})
    )
    chunk1 = (
        '<h2 id="ANNABEL_LEE">ANNABEL LEE</h2>\n'
        + old_poem(t.ANNABEL_LEE, numbers={5: "5"}, pages={})
        + f'\n<pre xml:space="preserve">\n{esc(OLD_FOOTER)}\n\n'
        '<a id="THE_FULL_PROJECT_GUTENBERG_LICENSE"></a>*** START: FULL LICENSE ***\n\n'
        "THE FULL PROJECT GUTENBERG LICENSE\n"
        f"PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n\n{esc(licence)}\n</pre>"
    )
    members: dict[str, str | bytes] = {
        "META-INF/container.xml": container("content.opf"),
        "content.opf": raven_opf(),
        "toc.ncx": raven_ncx(),
        "wrap0000.html": cover_wrapper("cover.png", epub3=False),
        OLD.format(0): xhtml_old(chunk0),
        OLD.format(1): xhtml_old(chunk1),
        "pgepub.css": ".pagenum { display: none }\n",
        "0.css": ".linenum { position: absolute; right: 5%; }\n",
        "cover.png": png(300, 450, (10, 10, 10)),
    }
    write_epub(path, members)
