"""HTML books: a web page or an XHTML file, chapters from its headings.

The file is parsed forgivingly (lxml's HTML parser; a well-formed XHTML file
is parsed as XML, as an EPUB's documents are) and read into blocks by the
same walker as EPUB content documents (:func:`~worker.books.xhtml.extract`),
so note references, page numbers, line numbers and hidden text go the same
way.  Word documents come here too, converted by :mod:`~worker.books.docx`.

Metadata: the title from a heading of class ``title`` (pandoc's title block,
a Word document's Title style), else ``<title>``, else a single ``h1`` that
opens the file; the author from an element of class ``author`` or
``<meta name="author">``; the language from ``<html lang>``.  The title block
is not narrated.

Chapters (:func:`sections_from_blocks`, shared with the PDF reader): a single
level-1 heading that comes first is the book's title, not a chapter.  Of h1–h3,
the highest level that occurs more than once makes chapters; when every one
of those is only a divider (a "Part" heading before its chapters), the next
level makes them instead and the dividers become title-only sections (skipped
and listed).  Deeper headings stay in the text.  Text before the first
chapter heading is a section of its own.  A table of contents (``nav``,
``role="doc-toc"``), Project Gutenberg's header and licence, transcriber's
notes and advertisements are left out and listed; footnotes, code blocks
and tables follow the :class:`~worker.books.model.ReadOptions`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace

import lxml.etree
import lxml.html

from worker.books.clean import (
    Vocabulary,
    clean_lines,
    clean_text,
    clean_title,
    has_words,
    tidy_scene_breaks,
)
from worker.books.detect import decode_text
from worker.books.errors import NotABook
from worker.books.frontmatter import check_section_count
from worker.books.headings import chapter_level, match_heading
from worker.books.matter import MATTER_REASONS, block_matter, mark_gutenberg
from worker.books.model import (
    OPENING,
    NotesMode,
    ReadMode,
    ReadOptions,
    Section,
    Skip,
    SkipCategory,
    SourceBook,
)
from worker.books.semantics import EPUB_TYPE, classes
from worker.books.xhtml import Block, BlockRole, Document, extract, local_name, parse_xml

__all__ = [
    "Found",
    "Meta",
    "html_charset",
    "parse_html",
    "read_html",
    "sections_from_blocks",
    "take_metadata",
]

CHAPTER_LEVELS = 3  # h1–h3 can make chapters; deeper headings stay in the text
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_META_CLASSES = frozenset({"title", "subtitle", "author", "date"})
_META_TAGS = frozenset({"h1", "p", "div", "header"})
_META_CHARS = 600  # a title block is a few lines: never remove a chapter classed "title"
_TOC_KINDS = frozenset({"toc", "landmarks", "page-list", "loi", "lot"})
_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I)
_XML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]{0,200}\?>")
_MARKUP = re.compile(r"<(?:[A-Za-z][A-Za-z0-9:-]*|!doctype)[\s/>]", re.IGNORECASE)


def html_charset(data: bytes) -> str | None:
    """The charset a ``<meta>`` near the start declares, if any."""
    found = _CHARSET.search(data[:4096])
    return found.group(1).decode("ascii") if found else None


def _from_lxml(root: lxml.etree._Element) -> ET.Element:
    """An lxml tree as a standard-library one, ``epub:type`` in its namespace.

    Iterative: a hostile file may nest deeper than the recursion limit.
    """
    out = ET.Element("html")
    stack: list[tuple[lxml.etree._Element, ET.Element]] = [(root, out)]
    first = True
    while stack:
        node, parent = stack.pop()
        if first:
            element, first = out, False
        elif not isinstance(node.tag, str):  # a comment or processing instruction
            _append_text(parent, node.tail)
            continue
        else:
            element = ET.SubElement(parent, node.tag.rsplit(":", 1)[-1].lower())
            element.tail = node.tail
        for name, value in node.attrib.items():
            key = str(name)
            key = {"epub:type": EPUB_TYPE, "xml:lang": _XML_LANG}.get(key, key)
            element.set(key, str(value))
        element.text = node.text
        stack.extend((child, element) for child in reversed(list(node)))
    return out


def _append_text(parent: ET.Element, text: str | None) -> None:
    """Text after a dropped node joins the text before it."""
    if not text:
        return
    children = list(parent)
    if children:
        children[-1].tail = (children[-1].tail or "") + text
    else:
        parent.text = (parent.text or "") + text


def parse_html(data: bytes, *, label: str, charset: str | None = None) -> ET.Element:
    """An HTML or XHTML file as an element tree; :class:`NotABook` if it has no markup."""
    if _XML_START.match(data) or data.lstrip().startswith(b"<html"):
        try:
            return parse_xml(data, label)  # well-formed XHTML: read exactly as an EPUB's
        except NotABook:
            pass  # HTML that only looks like XML: the forgiving parser below
    text = decode_text(data, filename=None, content_type=f"text/html; charset={charset or ''}")
    if not _MARKUP.search(text[:100_000]):
        raise NotABook(f"{label} is not an HTML document: it has no HTML markup")
    parser = lxml.html.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True
    )
    try:
        root = lxml.html.document_fromstring(_XML_START.sub(b"", text.encode("utf-8")), parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise NotABook(f"{label} is not a readable HTML document: {exc}") from exc
    return _from_lxml(root)


@dataclass(frozen=True, slots=True)
class Meta:
    """What an HTML file says about itself."""

    title: str | None = None  # from the title block (class "title")
    author: str | None = None
    language: str | None = None
    head_title: str | None = None  # <title>: often a site's name too, so the last resort


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if local_name(e.tag) == name), None)


def _text(element: ET.Element) -> str:
    return clean_title("".join(element.itertext()))


def take_metadata(root: ET.Element) -> Meta:
    """Title, author and language; the title block (pandoc's, a Word Title) is removed."""
    title = author = None
    head, body = _find(root, "head"), _find(root, "body")
    language = (root.get("lang") or root.get(_XML_LANG) or "").strip() or None
    if head is not None:
        for element in head.iter():
            name = local_name(element.tag)
            if name == "title" and not title:
                title = _text(element) or None
            elif name == "meta" and (element.get("name") or "").lower() in (
                "author",
                "dc.creator",
                "dcterms.creator",
            ):
                author = author or clean_title(element.get("content", "")) or None
    if body is None:
        return Meta(None, author, language, title)
    parents = {child: parent for parent in body.iter() for child in parent}
    found_title = found_author = None
    for element in list(body.iter()):
        name, names = local_name(element.tag), classes(element)
        in_block = element.get("id") == "title-block-header"
        if name in ("h1", "h2", "h3", "h4", "h5", "h6") and "title" not in names:
            break  # the title block comes before the first heading of the text
        short = len("".join(element.itertext())) <= _META_CHARS
        if short and (in_block or (names & _META_CLASSES and name in _META_TAGS)):
            if "title" in names and name != "div" and found_title is None:
                found_title = _text(element) or None
            if "author" in names and found_author is None:
                found_author = _text(element) or None
            if in_block:
                for child in element.iter():
                    child_names = classes(child)
                    if "title" in child_names and found_title is None:
                        found_title = _text(child) or None
                    if "author" in child_names and found_author is None:
                        found_author = _text(child) or None
            if (parent := parents.get(element)) is not None:
                parent.remove(element)
    return Meta(found_title, found_author or author, language, title)


@dataclass(frozen=True, slots=True)
class Found:
    """What :func:`sections_from_blocks` found: a title heading, sections, skipped parts."""

    title: str | None
    sections: tuple[Section, ...]
    skips: tuple[Skip, ...]


def _noted(blocks: Sequence[Block], where: str) -> tuple[list[Block], list[Skip]]:
    """The blocks without tables of contents and boilerplate, and a skip for each run of them."""
    kept: list[Block] = []
    skips: list[Skip] = []
    last: tuple[SkipCategory, str] | None = None
    for block in blocks:
        matter = block_matter(block)
        reason: tuple[SkipCategory, str] | None = None
        if matter is not None:
            reason = MATTER_REASONS[matter]
        elif block.kinds & _TOC_KINDS:
            reason = (SkipCategory.FRONT_MATTER, "table of contents")
        if reason is None:
            kept.append(block)
        elif reason != last:
            skips.append(Skip(reason[0], reason[1], where))
        last = reason
    return kept, skips


def _body(
    blocks: Sequence[Block],
    notes: dict[str, list[Block]],
    vocabulary: Vocabulary,
    options: ReadOptions,
    typeset: bool,
) -> tuple[str, list[tuple[SkipCategory, str]]]:
    """A chapter's narration text and what of it was left out (code, tables, notes)."""
    parts: list[str] = []
    left_out: dict[SkipCategory, int] = {}
    refs: list[str] = []
    for block in blocks:
        refs += block.refs
        if block.role is BlockRole.CODE and options.code is ReadMode.SKIP:
            left_out[SkipCategory.CODE] = left_out.get(SkipCategory.CODE, 0) + 1
        elif block.role is BlockRole.TABLE and options.tables is ReadMode.SKIP:
            left_out[SkipCategory.TABLE] = left_out.get(SkipCategory.TABLE, 0) + 1
        elif typeset and block.role is BlockRole.PROSE and not block.heading:
            # Lines broken by a typesetter: hyphens at their ends broke words, and
            # a bare number between them is a page number.
            parts.append(clean_text(block.text, vocabulary))
        else:
            keep = block.role is not BlockRole.PROSE or bool(block.heading)
            parts.append(clean_lines(block.text, vocabulary, keep_breaks=keep))
    if options.notes is NotesMode.END_OF_CHAPTER:
        for ref in dict.fromkeys(refs):
            for note in notes.pop(ref.rsplit("#", 1)[-1], []):
                parts.append(clean_lines(note.text, vocabulary, keep_breaks=False))
    words = {SkipCategory.CODE: "code block", SkipCategory.TABLE: "table"}
    reasons = [(c, f"{n} {words[c]}{'s' if n > 1 else ''}") for c, n in left_out.items()]
    return "\n\n".join(tidy_scene_breaks(p for p in parts if p)), reasons


def _plan(body: list[Block]) -> tuple[int | None, list[int]]:
    """The block that is the book's title heading (if any), and where chapters start.

    A document without h1–h3 headings gets its "Chapter N" lines as headings
    (``body`` is changed in place).
    """
    heads = [i for i, b in enumerate(body) if 0 < b.heading <= CHAPTER_LEVELS]
    if not heads:
        for i, block in enumerate(body):
            line = " ".join(block.text.split())
            if not block.heading and "\n" not in block.text.strip() and match_heading(line):
                body[i] = replace(block, heading=2)
                heads.append(i)
    book_heading = None
    if heads and body[heads[0]].heading == 1 and [body[i].heading for i in heads].count(1) == 1:
        book_heading = heads.pop(0)
    bounds = [*heads, len(body)]
    prose = [
        any(not b.heading and has_words(b.text) for b in body[h + 1 : bounds[k + 1]])
        for k, h in enumerate(heads)
    ]
    level = chapter_level([body[i].heading for i in heads], prose)
    return book_heading, [i for i in heads if level is not None and body[i].heading <= level]


def sections_from_blocks(
    doc: Document,
    *,
    where: str,
    options: ReadOptions,
    sources: dict[int, str] | None = None,
    typeset: bool = False,
) -> Found:
    """Chapters of one document from its headings (see the module docstring).

    ``where`` names the file in sources ("book.html"); ``sources`` may name
    a block's place better (a PDF's page), by the block's index in ``doc``.
    ``typeset`` text (a PDF's) has its lines broken by a typesetter, not an author.
    """
    marked = mark_gutenberg([doc])[0]
    kept, skips = _noted(marked.blocks, where)
    notes: dict[str, list[Block]] = {}
    for block in kept:
        if block.note is not None:
            notes.setdefault(block.note.lstrip("#"), []).append(block)
    if notes and options.notes is NotesMode.SKIP:
        count = len(notes)
        skips.append(Skip(SkipCategory.NOTES, f"{count} note{'s' * (count > 1)}", where))
    # Where each kept block came from, to name chapters by their anchor or page.
    index = {id(b): i for i, b in enumerate(marked.blocks)}
    body = [b for b in kept if b.note is None]
    anchors = {i: name for name, i in sorted(doc.anchors.items(), key=lambda kv: -kv[1])}
    places = {**{i: f"{where}#{a}" for i, a in anchors.items()}, **(sources or {})}
    book_heading, starts = _plan(body)
    check_section_count(len(starts) + 1)
    vocabulary = Vocabulary.of("\n".join(b.text for b in body))
    spans = [(0, starts[0] if starts else len(body))]
    if starts:
        spans += list(zip(starts, [*starts[1:], len(body)], strict=True))
    sections: list[Section] = []
    for number, (start, stop) in enumerate(spans):
        head = start if number else None
        chunk = [b for i, b in enumerate(body[start:stop], start) if i not in (head, book_heading)]
        text, left_out = _body(chunk, notes, vocabulary, options, typeset)
        if head is None:
            if not has_words(text) and starts:
                continue
            source = f"{where}, before the first heading" if starts else where
            sections.append(Section(None, text, source, frozenset({OPENING})))
        else:
            place = places.get(index.get(id(body[head]), -1), f"{where}, heading {number}")
            title = clean_title(body[head].text) or None
            kinds = frozenset.intersection(*(b.kinds for b in body[start:stop]))
            sections.append(Section(title, text, place, kinds))
        skips += [Skip(c, r, sections[-1].source, sections[-1].title) for c, r in left_out]
    title = clean_title(body[book_heading].text) or None if book_heading is not None else None
    return Found(title, tuple(sections), tuple(skips))


def read_html(
    data: bytes,
    *,
    label: str,
    where: str,
    charset: str | None = None,
    options: ReadOptions | None = None,
) -> SourceBook:
    """Sections of an HTML book and its metadata; raises :class:`BookError`.

    ``label`` names the upload in errors; ``where`` names it in sources.
    """
    root = parse_html(data, label=label, charset=charset or html_charset(data))
    meta = take_metadata(root)
    found = sections_from_blocks(extract(root), where=where, options=options or ReadOptions())
    return SourceBook(
        meta.title or found.title or meta.head_title,
        meta.author,
        meta.language,
        found.sections,
        skipped=found.skips,
    )
