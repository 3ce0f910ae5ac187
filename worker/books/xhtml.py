"""XML for EPUB members: safe parsing, and XHTML content documents to blocks of text.

:func:`parse_xml` refuses entity declarations (the "billion laughs" family)
and turns malformed XML into :class:`NotABook` naming the member.  Before
parsing, HTML named entities such as ``&nbsp;`` are rewritten as numeric
character references: EPUB 2 books declare the XHTML DTD and use them, and
expat does not read DTDs.

:func:`extract` walks a content document once (iteratively, so hostile
nesting cannot overflow the stack) and yields :class:`Block` values: one per
block element (``p``, ``div``, ``li``, ``h1``–``h6`` …), inline text joined,
source whitespace collapsed, ``<br/>`` kept as a line break.  What an element
means decides what becomes of it (see :mod:`~worker.books.semantics`); its
text is never rewritten:

* noise (scripts, hidden elements, note references, page-break markers, line
  numbers, backlinks) is left out in place, its tail text kept;
* a table is one :attr:`BlockRole.TABLE` block (rows separated by a blank
  line, cells by a line break), a code block one :attr:`BlockRole.CODE` block
  (verbatim); the reader reads or skips them;
* verse (a poem, a stanza, and Standard Ebooks' ``span`` per line), ``pre``
  and paragraphs with ``<br/>`` are :attr:`BlockRole.LINES` blocks: every
  line keeps its break (a short pause, and always a word boundary);
* footnote and endnote bodies are blocks with :attr:`Block.note` set, and the
  note references a block held are in :attr:`Block.refs`;
* boilerplate (Project Gutenberg's header and licence, transcriber's notes,
  advertisements) carries its kind in :attr:`Block.kinds`.

Images contribute nothing: their alt text describes a picture the listener
cannot see.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from html.entities import name2codepoint

from worker.books.clean import SCENE_BREAK
from worker.books.errors import NotABook, UnsafeArchive
from worker.books.semantics import (
    TOC_ENTRY,
    is_code,
    is_noise,
    is_verse,
    matter_kinds,
    note_role,
    noteref_target,
    semantic_types,
)

__all__ = [
    "Block",
    "BlockRole",
    "Document",
    "extract",
    "local_name",
    "parse_xml",
    "semantic_types",
]
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_WS = re.compile(r"\s+")

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
#: Heading-like paragraphs: a chapter's title in Standard Ebooks' <hgroup> or header.
_TITLE_TYPES = frozenset(["title", "subtitle"])


def local_name(tag: object) -> str:
    """An element's tag without its namespace, lowercased ('' for comments and PIs)."""
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


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


class BlockRole(StrEnum):
    """How a block's lines are read."""

    PROSE = "prose"  # a paragraph of one line
    LINES = "lines"  # verse, preformatted text, lines broken by <br/>: each keeps its break
    CODE = "code"  # a code block, verbatim
    TABLE = "table"  # a table: rows separated by a blank line, cells by a line break


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a content document: a paragraph, a heading, a table, a code block."""

    text: str  # whitespace collapsed; "\n" where the source had a line break
    heading: int = 0  # 0 for a paragraph, else the h1–h6 level
    kinds: frozenset[str] = frozenset()  # semantic types of the elements around it
    role: BlockRole = BlockRole.PROSE
    note: str | None = None  # id of the footnote or endnote it is part of ("" for a notes list)
    refs: tuple[str, ...] = ()  # hrefs of the note references it held, in order


@dataclass(frozen=True, slots=True)
class Document:
    """A content document as blocks, with the block index each element id starts at."""

    blocks: tuple[Block, ...]
    anchors: dict[str, int] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()  # semantic types of <html> and <body>


@dataclass(frozen=True, slots=True)
class _Context:
    """What the elements around an element say about its text."""

    kinds: frozenset[str] = frozenset()
    note: str | None = None  # see Block.note
    verse: bool = False
    raw: BlockRole | None = None  # inside a table or code block: one block for all of it
    parent: str = ""  # the parent element's local name
    hgroup: bool = False
    inline_note: bool = False  # inside a note written inline: <span data-type="footnote">


class _Walker:
    """The state of one pass over a document: the inline text gathered so far."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.anchors: dict[str, int] = {}
        self.parts: list[str] = []
        self.refs: list[str] = []
        self.heading = 0
        self.heading_owner: ET.Element | None = None  # the element that set ``heading``
        self.last_heading = 2
        self.pre = 0
        self.link = 0  # depth of links into the book around the text being read
        self.linked = 0  # characters of the current block inside such links
        self.notes = 0  # note bodies without an id, numbered
        # The paragraph's text and references while an inline note is read.
        self.aside: list[tuple[list[str], list[str]]] = []

    def add(self, text: str | None) -> None:
        if text:
            self.parts.append(text if self.pre else _WS.sub(" ", text))
            if self.link:
                self.linked += len(text) - len(_WS.findall(text))

    def _kinds(self, ctx: _Context, raw: str) -> frozenset[str]:
        """The block's kinds; a block that is mostly links into the book is a contents entry."""
        linked, self.linked = self.linked, 0
        if self.heading or not linked:
            return ctx.kinds
        total = len(raw) - len(_WS.findall(raw))
        return ctx.kinds | {TOC_ENTRY} if linked * 2 >= total else ctx.kinds

    def flush(self, ctx: _Context) -> None:
        raw, refs = "".join(self.parts), tuple(self.refs)
        self.parts, self.refs = [], []
        kinds = self._kinds(ctx, raw)
        role = ctx.raw or (BlockRole.LINES if ctx.verse or self.pre else BlockRole.PROSE)
        if self.heading:
            role, text = BlockRole.PROSE, _heading_text(raw)
        elif role is BlockRole.CODE:
            text = "\n".join(line.rstrip() for line in raw.split("\n")).strip("\n")
        elif role is BlockRole.TABLE:
            rows = ("\n".join(filter(None, _lines(row))) for row in raw.split("\n\n"))
            text = "\n\n".join(filter(None, rows))
        else:
            text = "\n".join(filter(None, _lines(raw)))
            if "\n" in text:  # lines the author broke (<br/>): each keeps its break
                role = BlockRole.LINES
        if text.strip():
            self.blocks.append(Block(text, self.heading, kinds, role, ctx.note, refs))
        elif refs:
            self.refs = list(refs)  # a marker alone in its block: keep it for the next


def _lines(raw: str) -> list[str]:
    return [" ".join(line.split()) for line in raw.split("\n")]


def _heading_text(raw: str) -> str:
    """A heading's lines as one title: "Chapter 1: The Beginning"."""
    text = ""
    for line in filter(None, _lines(raw)):
        sep = " " if not text or text[-1] in ".:;—–-!?" else ": "
        text = f"{text}{sep}{line}" if text else line
    return text


def _children(element: ET.Element) -> Iterator[ET.Element]:
    return reversed(list(element))


def _context(walker: _Walker, element: ET.Element, name: str, ctx: _Context) -> _Context:
    """The context of an element's content."""
    kinds = ctx.kinds | semantic_types(element) | matter_kinds(element)
    note, raw = ctx.note, ctx.raw
    role = note_role(element)
    ident = element.get("id")
    if role == "notes":
        kinds |= {"notes"}
        note = "" if note is None else note
    elif role == "note" or (note == "" and ident and name in ("li", "aside", "div", "p", "dd")):
        walker.notes += 1
        kinds |= {"notes"}
        note = ident or f"#note-{walker.notes}"
    if raw is None and name == "table":
        raw = BlockRole.TABLE
    elif raw is None and is_code(element, name):
        raw = BlockRole.CODE
    verse = ctx.verse or is_verse(element)
    inline = ctx.inline_note or (role == "note" and name not in _BLOCKS and raw is None)
    return _Context(kinds, note, verse, raw, name, ctx.hgroup or name == "hgroup", inline)


def _enter_block(walker: _Walker, element: ET.Element, name: str, parent: _Context) -> None:
    """A block element starts: the text before it is a block of its own."""
    if walker.heading:
        return  # a heading's inner blocks stay part of the heading
    walker.flush(parent)
    level = _HEADINGS.get(name, 0)
    if not level and name == "p" and (parent.hgroup or semantic_types(element) & _TITLE_TYPES):
        level = walker.last_heading  # a subtitle in a chapter's header
    if level:
        walker.heading = walker.last_heading = level
        walker.heading_owner = element


def _book_link(element: ET.Element, name: str) -> bool:
    """A link to a place in the book (not to a web page)."""
    href = element.get("href")
    return name == "a" and href is not None and ":" not in href.split("#", 1)[0]


def _enter(
    walker: _Walker, element: ET.Element, name: str, ctx: _Context, parent: _Context
) -> None:
    """What an element's start adds: a block boundary, a line break, an anchor."""
    if ctx.inline_note and not parent.inline_note:
        walker.aside.append((walker.parts, walker.refs))  # the note is a block of its own
        walker.parts, walker.refs = [], []
    if parent.raw is BlockRole.TABLE:
        if name == "tr":
            walker.parts.append("\n\n")  # a row
        elif name in _BLOCKS or name == "br":
            walker.parts.append("\n")  # a cell, or a line in one
    elif name in _BLOCKS and parent.raw is None:
        _enter_block(walker, element, name, parent)
    elif name == "br":
        walker.parts.append("\n")
    elif name == "span" and parent.verse and parent.parent in ("p", "div"):
        walker.parts.append("\n")  # one span per line of verse (Standard Ebooks, Gutenberg)
    if (ident := element.get("id")) is not None:
        # The block this element starts (or the paragraph it sits in) comes next.
        walker.anchors.setdefault(ident, len(walker.blocks))
    if name == "pre":
        walker.pre += 1
    if _book_link(element, name):
        walker.link += 1


def _exit(walker: _Walker, element: ET.Element, name: str, ctx: _Context, parent: _Context) -> None:
    """What an element's end adds: the end of its block."""
    if ctx.inline_note and not parent.inline_note:
        heading, walker.heading = walker.heading, 0
        walker.flush(ctx)
        walker.heading = heading
        walker.parts, walker.refs = walker.aside.pop()
    elif walker.heading_owner is element:
        walker.flush(ctx)
        walker.heading, walker.heading_owner = 0, None
    elif name in _BLOCKS and parent.raw is None and not walker.heading:
        walker.flush(ctx)
        if name == "hr":  # a thematic break: a scene break in a story
            walker.blocks.append(Block(SCENE_BREAK, kinds=ctx.kinds, note=ctx.note))
    if name == "pre":
        walker.pre -= 1
    if _book_link(element, name):
        walker.link -= 1


def extract(root: ET.Element) -> Document:
    """The blocks of an XHTML content document, in reading order."""
    walker = _Walker()
    doc_kinds = semantic_types(root)
    body = next((e for e in root.iter() if local_name(e.tag) == "body"), None)
    if body is None:
        return Document((), {}, doc_kinds)
    doc_kinds |= semantic_types(body)
    top = _Context(kinds=doc_kinds)
    # Explicit stack of (element, context of its content, its parent's context,
    # entering): documents may nest deeper than Python's recursion limit allows.
    stack: list[tuple[ET.Element, _Context, _Context, bool]] = [(body, top, top, True)]
    while stack:
        element, ctx, parent, entering = stack.pop()
        name = local_name(element.tag)
        if not entering:
            _exit(walker, element, name, ctx, parent)
            walker.add(element.tail)
            continue
        if not name or is_noise(element, name):
            if name and (target := noteref_target(element, name)):
                walker.refs.append(target)
            walker.add(element.tail)
            continue
        ctx = _context(walker, element, name, parent)
        _enter(walker, element, name, ctx, parent)
        walker.add(element.text)
        stack.append((element, ctx, parent, False))
        stack.extend((child, ctx, ctx, True) for child in _children(element))
    walker.flush(top)
    return Document(tuple(walker.blocks), walker.anchors, doc_kinds | top.kinds)
