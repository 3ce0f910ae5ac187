"""What an element of a content document *means* to the narration, from its markup alone.

Noise is recognised by what the markup says an element is, never by what its
text looks like, so literal text is never changed: ``href.split('#')[0]`` in a
paragraph stays as it is, and only an element marked as a note reference is
left out.  The vocabularies are EPUB 3 structural semantics (``epub:type``),
DPUB-ARIA roles (``role="doc-…"``), and the classes and ids the common
toolchains write (Project Gutenberg's ebookmaker, Standard Ebooks, pandoc,
DocBook XSL, O'Reilly's HTMLBook).

* :func:`is_noise` – left out with its content, in place (its tail text stays):
  scripts and styles, hidden elements, note references, page-break markers,
  verse line numbers, note backlinks;
* :func:`note_role` – a footnote or endnote body, or a container of them;
* :func:`is_code` and :func:`is_verse` – blocks read line by line, or skipped;
* :func:`matter_kinds` – boilerplate that is never part of a chapter (Project
  Gutenberg's header and licence, transcriber's notes, advertisements), and
  the classes toolchains give title pages and legal notices.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = [
    "ADVERTISEMENT",
    "EPUB_TYPE",
    "PG_HEADER",
    "PG_LICENCE",
    "TOC_ENTRY",
    "TRANSCRIBER_NOTE",
    "classes",
    "is_code",
    "is_noise",
    "is_verse",
    "matter_kinds",
    "note_role",
    "noteref_target",
    "semantic_types",
]

OPS_NS = "http://www.idpf.org/2007/ops"
EPUB_TYPE = f"{{{OPS_NS}}}type"

# Kinds this module adds to the semantic types of what an element holds.
PG_HEADER = "pg-header"  # Project Gutenberg's header, before "*** START OF …"
PG_LICENCE = "pg-licence"  # Project Gutenberg's footer and licence, from "*** END OF …"
TRANSCRIBER_NOTE = "transcriber-note"
ADVERTISEMENT = "advertisement"
TOC_ENTRY = "toc-entry"  # a block that is mostly links into the book: an entry of a contents list

_DROP_TAGS = frozenset(
    [
        "script",
        "style",
        "head",
        "svg",
        "math",
        "rt",
        "rp",
        "template",
        "noscript",
        "object",
        "iframe",
        "audio",
        "video",
    ]
)
# Types (epub:type or doc-* role) of markers that are never narrated.
_NOISE_TYPES = frozenset(["noteref", "pagebreak", "backlink", "line-number", "linenum"])
_NOISE_CLASSES = frozenset(
    [
        "pagenum",  # Project Gutenberg: <span class="pagenum">[Pg 7]</span>
        "page-number",
        "pagebreak",
        "page-break",
        "pageno",
        "linenum",  # verse line numbers: Project Gutenberg, Standard Ebooks
        "line-number",
        "line-num",
        "lineno",
        "linenumber",
        "noteref",
        "footnote-ref",  # pandoc
        "footnote-back",  # pandoc's backlink
        "footnote-backref",
    ]
)
_NOTE_TYPES = frozenset(["footnote", "endnote", "rearnote", "note"])
_NOTES_TYPES = frozenset(["footnotes", "endnotes", "rearnotes"])
_NOTES_CLASSES = frozenset(["footnotes", "endnotes"])
_NOTE_CLASSES = frozenset(["footnote", "endnote"])
_CODE_TOKENS = frozenset(
    [
        "programlisting",  # DocBook, HTMLBook data-type
        "screen",
        "sourcecode",  # pandoc
        "code",
        "highlight",
        "listing",
        "src",
        "example-code",
    ]
)
_VERSE_TYPES = frozenset(["poem", "verse", "song", "hymn", "lyrics", "stanza"])
_VERSE_CLASSES = frozenset(
    ["poem", "poetry", "verse", "stanza", "song", "lyrics", "linegroup", "line-block"]
)
# A marker-looking link: "1", "[12]", "*", "(†)" — a note reference without its type.
_MARKER = re.compile(r"\s*[\[(]?\s*(?:\d{1,3}|[*†‡§¶]{1,3})\s*[\])]?\s*")
_MARKER_CHARS = 16


def semantic_types(element: ET.Element) -> frozenset[str]:
    """``epub:type`` tokens and ARIA ``doc-*`` roles, lowercased, vocabulary prefixes dropped."""
    tokens = element.get(EPUB_TYPE, "").split() + element.get("role", "").split()
    tokens += element.get("data-type", "").split()  # O'Reilly's HTMLBook
    out = set()
    for token in tokens:
        token = token.lower().rsplit(":", 1)[-1]
        out.add(token.removeprefix("doc-"))
    return frozenset(out)


def classes(element: ET.Element) -> frozenset[str]:
    """The element's classes, lowercased."""
    return frozenset(element.get("class", "").lower().split())


def _marker_link(element: ET.Element, name: str) -> bool:
    """A link to a place in the book whose text is only a marker: "1", "[12]", "*"."""
    href = element.get("href", "")
    if name != "a" or "#" not in href or href.startswith(("http:", "https:", "mailto:")):
        return False
    return _marker_text(element)


def _is_ref(element: ET.Element, name: str) -> bool:
    """A link marked as a note reference, or one that reads as a marker."""
    if name != "a":
        return False
    marked = "noteref" in semantic_types(element) or classes(element) & {"noteref", "footnote-ref"}
    return bool(marked) or _marker_link(element, name)


def _ref_wrapper(element: ET.Element, name: str) -> ET.Element | None:
    """The note link inside a wrapper that holds only it and brackets: DocBook's
    ``<sup>[<a href="#ftn.x">1</a>]</sup>``."""
    if name not in ("sup", "span", "small") or not _marker_text(element):
        return None
    links = (e for e in element.iter() if isinstance(e.tag, str))
    return next((a for a in links if _is_ref(a, a.tag.rsplit("}", 1)[-1].lower())), None)


def _marker_text(element: ET.Element) -> bool:
    """Whether the element's text is only a marker (stops early: it may hold a chapter)."""
    text = ""
    for piece in element.itertext():
        text += piece
        if len(text) > _MARKER_CHARS:
            return False
    return bool(text.strip()) and _MARKER.fullmatch(text) is not None


def is_noise(element: ET.Element, name: str) -> bool:
    """Whether an element and its content are left out of the narration, in place."""
    if name in _DROP_TAGS or element.get("hidden") is not None:
        return True
    if "display:none" in element.get("style", "").replace(" ", "").lower():
        return True
    if semantic_types(element) & _NOISE_TYPES or classes(element) & _NOISE_CLASSES:
        return True
    return _marker_link(element, name) or _ref_wrapper(element, name) is not None


def noteref_target(element: ET.Element, name: str) -> str | None:
    """The href of a note reference, or of the one a wrapper holds (else ``None``)."""
    if _is_ref(element, name):
        return element.get("href")
    link = _ref_wrapper(element, name)
    return link.get("href") if link is not None else None


def note_role(element: ET.Element) -> str | None:
    """ "note" for one footnote or endnote body, "notes" for a list of them, else None."""
    types, names = semantic_types(element), classes(element)
    if types & _NOTES_TYPES or names & _NOTES_CLASSES:
        return "notes"
    if types & _NOTE_TYPES or names & _NOTE_CLASSES:
        return "note"
    return None


def is_code(element: ET.Element, name: str) -> bool:
    """A code block: ``pre`` marked as code or holding ``code``; never inline ``code``."""
    if name != "pre":
        return False
    tokens = classes(element) | semantic_types(element)
    if tokens & _CODE_TOKENS or element.get("data-code-language") is not None:
        return True
    return any(isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] == "code" for c in element)


def is_verse(element: ET.Element) -> bool:
    """A poem, song or stanza: its lines keep their breaks."""
    return bool(semantic_types(element) & _VERSE_TYPES or classes(element) & _VERSE_CLASSES)


# Classes toolchains give whole parts, as the structural types they stand for: DocBook
# XSL's title page and legal notice, calibre's and Sigil's title pages.
_CLASS_TYPES = {
    "titlepage": "titlepage",
    "title-page": "titlepage",
    "halftitlepage": "halftitlepage",
    "legalnotice": "copyright-page",
    "copyright-page": "copyright-page",
    "colophon": "colophon",
    "dedication": "dedication",
    "toc": "toc",
}


def matter_kinds(element: ET.Element) -> frozenset[str]:
    """Kinds of boilerplate an element holds, by the ids and classes toolchains give it."""
    ident, names = element.get("id", "").lower(), classes(element)
    found: set[str] = set()
    if ident in ("pg-footer", "pg-end-separator") or names & {"pgfooter", "pglicense"}:
        found.add(PG_LICENCE)
    elif ident in ("pg-header", "pg-machine-header", "pg-start-separator") or "pgheader" in names:
        found.add(PG_HEADER)
    elif "pg-boilerplate" in names:
        found.add(PG_LICENCE if "licen" in ident or "footer" in ident else PG_HEADER)
    if names & {
        "transnote",
        "transnotes",
        "tnote",
        "transcriber-note",
        "transcribers-note",
    } or ident.startswith(("transcriber", "transnote", "tnote")):
        found.add(TRANSCRIBER_NOTE)
    if names & {"advertisement", "advertisements", "adverts", "ads"}:
        found.add(ADVERTISEMENT)
    found.update(_CLASS_TYPES[name] for name in names & _CLASS_TYPES.keys())
    return frozenset(found)
