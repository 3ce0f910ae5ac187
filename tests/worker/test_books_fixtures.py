"""Books built in memory for the book-ingestion tests: EPUBs with zipfile, Markdown, text.

No test lives here; the builders are shared by the ``test_books*`` modules.
Every EPUB is made the way the spec asks (``mimetype`` stored first, then
``META-INF/container.xml`` and the package), so a failure means the reader is
wrong, not the fixture.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

# A real 1×1 PNG: the cover must come back byte for byte.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
CONTAINER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>"""


def xhtml(body: str, *, body_type: str | None = None, title: str = "page") -> str:
    """A complete XHTML content document around ``body``."""
    typed = f' epub:type="{body_type}"' if body_type else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title></head><body{typed}>{body}</body></html>"
    )


@dataclass
class Doc:
    """One content document of a test EPUB."""

    id: str
    href: str  # relative to OEBPS/
    content: str
    linear: bool = True
    properties: str = ""
    in_spine: bool = True


@dataclass
class EpubSpec:
    """Everything a test EPUB holds; :func:`build_epub` zips it."""

    docs: list[Doc]
    nav: list[tuple[str, str]] | None = None  # (href, title); nested entries via "  " prefix
    title: str = "The Test Book"
    creator: str = "Ada Author"
    language: str = "en"
    cover: bytes | None = PNG_1X1
    ncx: bool = False
    extra: dict[str, bytes] = field(default_factory=dict)  # more members, zipped last
    landmarks: list[tuple[str, str]] = field(default_factory=list)  # (href, epub:type)
    guide: list[tuple[str, str]] = field(default_factory=list)  # (href, type): EPUB 2


def _nav_list(entries: list[tuple[str, str]]) -> str:
    """Nested <ol> from (href, title) pairs; two leading spaces per level of nesting."""
    out, depth = ["<ol>"], 0
    for n, (href, title) in enumerate(entries):
        level = (len(title) - len(title.lstrip(" "))) // 2
        if n:
            if level > depth:
                out.append("<ol>")
            else:
                out.append("</li>")
                out += ["</ol></li>"] * (depth - level)
        depth = level
        out.append(f'<li><a href="{href}">{title.strip()}</a>')
    out.append("</li>" + "</ol></li>" * depth + "</ol>")
    return "".join(out)


def nav_document(
    entries: list[tuple[str, str]], landmarks: list[tuple[str, str]] | None = None
) -> str:
    """An EPUB 3 navigation document with a toc nav (and a landmarks nav)."""
    marks = "".join(f'<li><a epub:type="{t}" href="{h}">{t}</a></li>' for h, t in landmarks or [])
    marks = f'<nav epub:type="landmarks" hidden=""><ol>{marks}</ol></nav>' if marks else ""
    toc = f'<nav epub:type="toc" id="toc"><h1>Contents</h1>{_nav_list(entries)}</nav>'
    return xhtml(toc + marks)


def _ncx(entries: list[tuple[str, str]]) -> str:
    """An NCX; two leading spaces per level of nesting, as for the nav."""
    points, depth = [], 0
    for n, (href, title) in enumerate(entries):
        level = (len(title) - len(title.lstrip(" "))) // 2
        points += ["</navPoint>"] * (depth - level + 1) if n else []
        depth = level
        points.append(
            f'<navPoint id="p{n}" playOrder="{n + 1}"><navLabel><text>{title.strip()}</text>'
            f'</navLabel><content src="{href}"/>'
        )
    points += ["</navPoint>"] * (depth + 1) if entries else []
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        f"<head/><docTitle><text>t</text></docTitle><navMap>{''.join(points)}</navMap></ncx>"
    )


def build_epub(spec: EpubSpec) -> bytes:
    """The EPUB's bytes: mimetype (stored, first), container, OPF, documents, nav, cover."""
    items, spine = [], []
    members: dict[str, str | bytes] = {}
    for doc in spec.docs:
        props = f' properties="{doc.properties}"' if doc.properties else ""
        items.append(
            f'<item id="{doc.id}" href="{doc.href}" media-type="application/xhtml+xml"{props}/>'
        )
        if doc.in_spine:
            linear = "" if doc.linear else ' linear="no"'
            spine.append(f'<itemref idref="{doc.id}"{linear}/>')
        members[f"OEBPS/{doc.href}"] = doc.content
    toc_attr = ""
    if spec.nav is not None and spec.ncx:
        items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
        members["OEBPS/toc.ncx"] = _ncx(spec.nav)
        toc_attr = ' toc="ncx"'
    elif spec.nav is not None and not any("nav" in d.properties for d in spec.docs):
        items.append(
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        )
        members["OEBPS/nav.xhtml"] = nav_document(spec.nav, spec.landmarks)
    meta_cover = ""
    if spec.cover is not None:
        props = "" if spec.ncx else ' properties="cover-image"'
        items.append(
            f'<item id="cover-img" href="images/cover.png" media-type="image/png"{props}/>'
        )
        members["OEBPS/images/cover.png"] = spec.cover
        meta_cover = '<meta name="cover" content="cover-img"/>' if spec.ncx else ""
    guide = "".join(f'<reference type="{t}" href="{h}" title="{t}"/>' for h, t in spec.guide)
    guide = f"<guide>{guide}</guide>" if guide else ""
    opf = f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:1</dc:identifier>
    <dc:title>{spec.title}</dc:title>
    <dc:creator>{spec.creator}</dc:creator>
    <dc:language>{spec.language}</dc:language>{meta_cover}
  </metadata>
  <manifest>{"".join(items)}</manifest>
  <spine{toc_attr}>{"".join(spine)}</spine>{guide}
</package>"""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # stored, first
        zf.writestr("META-INF/container.xml", CONTAINER_XML)
        zf.writestr("OEBPS/content.opf", opf)
        for name, content in members.items():
            zf.writestr(name, content)
        for name, data in spec.extra.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def sample_epub_spec() -> EpubSpec:
    """A small novel: title page, TOC, three chapters (two in one file), notes, copyright."""
    title_page = xhtml(
        '<section epub:type="titlepage"><h1>The Test Book</h1><p>Ada Author</p></section>',
        body_type="frontmatter",
    )
    toc = nav_document(
        [
            ("title.xhtml", "Title Page"),
            ("ch1.xhtml", "Chapter One: The Beginning"),
            ("ch2.xhtml", "Chapter 2: Rain"),
            ("ch2.xhtml#sun", "Chapter 3: Sun"),
            ("copyright.xhtml", "Copyright"),
        ]
    )
    chapter1 = xhtml(
        "<h1>Chapter 1</h1><h2>The Beginning</h2>"
        "<p>It was a dark and stormy night"
        '<a epub:type="noteref" href="notes.xhtml#n1" id="r1">1</a>; the rain fell in '
        'torrents<a href="#n2"><sup>2</sup></a>.</p>'
        '<p>The wind <span epub:type="pagebreak" id="p7" title="7">7</span>swept up '
        'the streets.<img src="images/storm.png" alt="A storm over London"/></p>'
        '<div role="doc-pagebreak" aria-label="8">8</div>'
        '<p>Nobody was out<a href="notes.xhtml#n3">[3]</a> that night.</p>'
        '<aside epub:type="footnote" id="n2"><p>2. Torrents, as in Bulwer-Lytton.</p></aside>',
        body_type="bodymatter",
    )
    chapter2 = xhtml(
        "<section><h1>Chapter 2: Rain</h1><p>Rain again.</p><p>More rain.</p></section>"
        '<section id="sun"><h1>Chapter 3: Sun</h1><p>Then the sun came out.</p>'
        "<script>alert('never read')</script><style>p { color: red }</style></section>",
        body_type="bodymatter",
    )
    notes = xhtml('<aside epub:type="endnote" id="n1"><p>1. A famous opening.</p></aside>')
    copyright_page = xhtml(
        "<p>Copyright © 2024 Ada Author. All rights reserved.</p><p>ISBN 978-0-00-000000-0</p>"
    )
    return EpubSpec(
        docs=[
            Doc("title", "title.xhtml", title_page),
            Doc("nav", "nav.xhtml", toc, properties="nav"),
            Doc("ch1", "ch1.xhtml", chapter1),
            Doc("ch2", "ch2.xhtml", chapter2),
            Doc("notes", "notes.xhtml", notes, linear=False),
            Doc("copyright", "copyright.xhtml", copyright_page),
        ],
        nav=[],  # the nav document is one of the docs
    )


SAMPLE_MARKDOWN = """\
---
title: "Sea Stories"
author: Mary Writer
lang: en-GB
---

# Sea Stories

A collection of *tales* from the coast.[^intro]

## Contents

- [The Harbour](#the-harbour)
- [The Storm](#the-storm)
- [The Return](#the-return)

## The Harbour

The boats came in at **dawn**, and the gulls
followed them [all the way](https://example.com/gulls) home.

![A harbour at dawn](harbour.png)

```python
print("code is never read")
```

### A quiet moment

Fish were sold on the quay.

## The Storm

Waves rose ~~high~~ higher than the mast.

* * *

By morning the sea was calm.

## The Return

> Home at last, she said.

<!-- an editor's note -->
The end.

[^intro]: This note is never read aloud.
    It continues here.
"""

SAMPLE_TEXT = """\
THE LIGHTHOUSE KEEPER

by Tom Teller


CHAPTER 1

The keeper climbed the stairs every eve-
ning at six, and every morning he came
down again.

12

It was a well-
known routine, and nobody questioned it.


CHAPTER II. THE STORM

The storm broke over the head-
land at midnight.[1]

* * *

Chapter Three

The end came quietly.
"""
