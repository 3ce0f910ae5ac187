"""XML for EPUB members: safe parsing, and XHTML content documents to blocks of text.

:func:`parse_xml` refuses entity declarations (the "billion laughs" family)
and turns malformed XML into :class:`NotABook` naming the member.  Before
parsing, HTML named entities such as ``&nbsp;`` are rewritten as numeric
character references: EPUB 2 books declare the XHTML DTD and use them, and
expat does not read DTDs.

:func:`extract` walks a content document once (iteratively, so hostile
nesting cannot overflow the stack) and yields :class:`Block` values: one per
block element (``p``, ``div``, ``li``, ``h1``–``h6`` …), inline text joined,
source whitespace collapsed, ``<br/>`` kept as a line break.  Dropped with
their content (their tail text stays): ``script``/``style``/``head``, SVG and
MathML, ruby annotations, footnote markers (``epub:type="noteref"``, short
linked or numeric ``<sup>``, links reading ``[1]``), page-break markers
(``epub:type="pagebreak"``, ``role="doc-pagebreak"``, ``class="pagenum"``),
footnote and endnote bodies, and anything ``hidden``.  Images contribute
nothing: their alt text describes a picture the listener cannot see.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.entities import name2codepoint

from worker.books.errors import NotABook, UnsafeArchive

__all__ = ["Block", "Document", "extract", "local_name", "parse_xml", "semantic_types"]

OPS_NS = "http://www.idpf.org/2007/ops"
EPUB_TYPE = f"{{{OPS_NS}}}type"
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_WS = re.compile(r"\s+")
_MARKER_CHARS = 16
_MARKER = re.compile(r"\s*[\[(]?\s*(?:\d{1,3}|[*†‡§¶]{1,3})\s*[\])]?\s*")

_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
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
# Structural types (epub:type or role="doc-…") whose content is never narrated inline.
_DROP_TYPES = frozenset(
    [
        "noteref",
        "pagebreak",
        "footnote",
        "footnotes",
        "endnote",
        "endnotes",
        "rearnote",
        "rearnotes",
        "backlink",
    ]
)
_DROP_CLASSES = frozenset(
    ["pagenum", "page-number", "pagebreak", "page-break", "footnote", "footnotes"]
)


def local_name(tag: object) -> str:
    """An element's tag without its namespace, lowercased ('' for comments and PIs)."""
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def semantic_types(element: ET.Element) -> frozenset[str]:
    """``epub:type`` tokens and ARIA ``doc-*`` roles, lowercased, vocabulary prefixes dropped."""
    tokens = element.get(EPUB_TYPE, "").split() + element.get("role", "").split()
    out = set()
    for token in tokens:
        token = token.lower().rsplit(":", 1)[-1]
        out.add(token.removeprefix("doc-"))
    return frozenset(out)


def _html_entity(match: re.Match[bytes]) -> bytes:
    name = match.group(1).decode("ascii")
    if name in _XML_ENTITIES or name not in name2codepoint:
        return match.group(0)
    return b"&#%d;" % name2codepoint[name]


def parse_xml(data: bytes, member: str) -> ET.Element:
    """Parse one EPUB member as XML; :class:`NotABook` names the member if it is malformed."""
    if b"<!ENTITY" in data:
        raise UnsafeArchive(f"member {member!r} declares XML entities; refused as unsafe")
    try:
        return ET.fromstring(_ENTITY.sub(_html_entity, data))
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise NotABook(f"member {member!r} is not well-formed XML: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a content document: a paragraph, or a heading of level 1–6."""

    text: str  # whitespace collapsed; "\n" where the source had <br/>
    heading: int = 0  # 0 for a paragraph, else the h1–h6 level
    kinds: frozenset[str] = frozenset()  # semantic types of the sections around it


@dataclass(frozen=True, slots=True)
class Document:
    """A content document as blocks, with the block index each element id starts at."""

    blocks: tuple[Block, ...]
    anchors: dict[str, int] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()  # semantic types of <html> and <body>


def _is_marker_text(element: ET.Element) -> bool:
    """Whether an element reads like a footnote marker: "1", "[12]", "*", "(†)"."""
    text = ""
    for piece in element.itertext():
        text += piece
        if len(text) > _MARKER_CHARS:  # stop early: the element may hold a whole chapter
            return False
    return _MARKER.fullmatch(text) is not None


def _dropped(element: ET.Element, name: str) -> bool:
    """Whether an element and its content are left out of the narration."""
    if name in _DROP_TAGS or element.get("hidden") is not None:
        return True
    if semantic_types(element) & _DROP_TYPES:
        return True
    if _DROP_CLASSES.intersection(element.get("class", "").lower().split()):
        return True
    if "display:none" in element.get("style", "").replace(" ", "").lower():
        return True
    if name == "sup":  # a footnote number; "5<sup>th</sup>" keeps its letters
        return _is_marker_text(element)
    return name == "a" and element.get("href") is not None and _is_marker_text(element)


class _Walker:
    """The state of one pass over a document: the inline text gathered so far."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.anchors: dict[str, int] = {}
        self.parts: list[str] = []
        self.heading = 0
        self.pre = 0

    def add(self, text: str | None) -> None:
        if text:
            self.parts.append(text if self.pre else _WS.sub(" ", text))

    def flush(self, kinds: frozenset[str]) -> None:
        raw = "".join(self.parts)
        self.parts = []
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        if self.heading:
            text = ""
            for line in filter(None, lines):
                sep = " " if not text or text[-1] in ".:;—–-!?" else ": "
                text = f"{text}{sep}{line}" if text else line
        else:
            text = "\n".join(lines).strip("\n")
        if text.strip():
            self.blocks.append(Block(text, self.heading, kinds))


def _children(element: ET.Element) -> Iterator[ET.Element]:
    return reversed(list(element))


def extract(root: ET.Element) -> Document:
    """The blocks of an XHTML content document, in reading order."""
    walker = _Walker()
    doc_kinds = semantic_types(root)
    body = next((e for e in root.iter() if local_name(e.tag) == "body"), None)
    if body is None:
        return Document((), {}, doc_kinds)
    doc_kinds |= semantic_types(body)
    # Explicit stack of (element, kinds, entering): documents may nest deeper than
    # Python's recursion limit allows.
    stack: list[tuple[ET.Element, frozenset[str], bool]] = [(body, doc_kinds, True)]
    while stack:
        element, kinds, entering = stack.pop()
        name = local_name(element.tag)
        if not entering:
            if name in _BLOCKS and (name in _HEADINGS or not walker.heading):
                walker.flush(kinds)
            if name in _HEADINGS:
                walker.heading = 0
            elif name == "pre":
                walker.pre -= 1
            walker.add(element.tail)
            continue
        if not name or _dropped(element, name):
            walker.add(element.tail)
            continue
        if name in _BLOCKS:
            own = kinds | semantic_types(element)
            if not walker.heading:
                walker.flush(kinds)
                if name in _HEADINGS:
                    walker.heading = _HEADINGS[name]
            kinds = own
        if (ident := element.get("id")) is not None:
            # The block this element starts (or the paragraph it sits in) comes next.
            walker.anchors.setdefault(ident, len(walker.blocks))
        elif name == "br":
            walker.parts.append("\n")
        if name == "pre":
            walker.pre += 1
        walker.add(element.text)
        stack.append((element, kinds, False))
        stack.extend((child, kinds, True) for child in _children(element))
    walker.flush(doc_kinds)
    return Document(tuple(walker.blocks), walker.anchors, doc_kinds)
