"""PDF books with a text layer: pages to paragraphs, chapters from the outline or headings.

pypdf reads the text layer with each run's position and size (a pure-Python
reader with its own limits on streams, arrays and decompression).  Then, page
by page:

* **Lines and paragraphs.**  Runs on one baseline make a line; a gap well
  above the page's usual line spacing, a change of type size, or a first-line
  indent starts a paragraph.  A paragraph goes on over a page break unless
  the next page starts indented or the last line ended a sentence.
* **Running heads and page numbers.**  A line at the top or bottom of a page
  that is only a page number ("12", "- 12 -", "Page 12", "xii") goes, and so
  does one that repeats at the top or bottom of :data:`RUNNING_MIN` or more
  pages once page numbers at its ends are set aside ("12 THE SEA BOOK").  A
  chapter heading ("Chapter 3") repeats only as itself, never by its number.
* **Hyphenation** at line ends is mended as in plain text
  (:func:`~worker.books.clean.clean_text`), using the whole book's words.
* **Chapters.**  From the outline (bookmarks) when there is one: its top level
  (a single top entry that holds all the others, the book's own title, does
  not count; ``split_level`` 2 adds the next level), each starting at its
  title's line on its page, else at the page.  Without an outline, lines set
  larger than the body text are headings, by size; without those either,
  "Chapter N" lines are.  Either way the HTML reader's rules
  (:func:`~worker.books.html.sections_from_blocks`) make the sections.

Refused: bytes pypdf cannot read (:class:`NotABook`), a password it cannot
open (:class:`ProtectedBook`), more than :data:`MAX_PAGES` pages
(:class:`BookTooLarge`), page content past ``max_unpacked_bytes``
(:class:`UnsafeArchive`), and pages with no text at all
(:class:`NoTextLayer`: a scan, which needs OCR first).
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pypdf import PageObject, PdfReader
from pypdf.generic import Destination

from worker.books.clean import clean_title, has_words
from worker.books.errors import BookTooLarge, NotABook, NoTextLayer, ProtectedBook, UnsafeArchive
from worker.books.headings import match_heading
from worker.books.html import sections_from_blocks
from worker.books.model import ReadOptions, SourceBook
from worker.books.xhtml import Block, Document

__all__ = ["MAX_PAGES", "RUNNING_MIN", "Line", "page_lines", "read_pdf"]

logger = logging.getLogger(__name__)

MAX_PAGES = 5000
RUNNING_MIN = 3  # pages a line must top or tail to be a running head (fewer in a short PDF)
ZONE = 2  # lines at the top and at the bottom of a page where running heads sit
HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
HEADING_CHARS = 120
PARAGRAPH_GAP = 1.4  # a gap this many times the usual line spacing ends a paragraph
_PAGE_NUMBER = re.compile(
    r"[-–—(\[]?\s*(?:page\s+|p\.\s*)?(?:\d{1,4}|[ivxlcdm]{1,7})(?:\s+of\s+\d{1,4})?\s*[-–—)\]]?",
    re.IGNORECASE,
)
_EDGE_NUMBER = re.compile(r"^(?:\d{1,4}|[ivxlc]{1,6})\s+|\s+(?:\d{1,4}|[ivxlc]{1,6})$", re.I)
_SENTENCE_END = tuple('.!?:"”’)»')
_WORD_TITLE = re.compile(r"^Microsoft Word - |\.docx?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a page: its text, where it starts and how large it is set."""

    text: str
    x: float
    y: float  # of the baseline, up the page
    size: float


def _open(data: bytes, label: str) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many kinds on a broken file; all mean this
        raise NotABook(f"{label} is not a readable PDF: {exc}") from exc
    if encrypted:
        try:
            opened = reader.decrypt("")  # many PDFs are "encrypted" with an empty password
        except Exception as exc:  # an unsupported cipher: the same answer as a password
            raise ProtectedBook(f"{label} is an encrypted PDF pypdf cannot open: {exc}") from exc
        if not opened:
            raise ProtectedBook(f"{label} is protected by a password; remove it and upload again")
    return reader


def _size(matrix: Sequence[float], font_size: float) -> float:
    """The type size on the page: the font size scaled by the text and page matrices."""
    return abs(font_size * (matrix[3] if matrix[3] else matrix[1])) or font_size


def page_lines(page: PageObject) -> list[Line]:
    """The lines of one pypdf page, in the order its content draws them."""
    lines: list[Line] = []

    def visit(
        text: str, cm: Sequence[float], tm: Sequence[float], _font: object, size: float
    ) -> None:
        if not text:
            return
        a, b, c, d, e, f = tm
        x = e * cm[0] + f * cm[2] + cm[4]
        y = e * cm[1] + f * cm[3] + cm[5]
        scale = [a * cm[0] + b * cm[2], a * cm[1] + b * cm[3], c * cm[0] + d * cm[2]]
        scale.append(c * cm[1] + d * cm[3])
        height = _size(scale, size)
        for number, piece in enumerate(text.split("\n")):
            last = lines[-1] if lines else None
            same = last is not None and not number and abs(last.y - y) < 0.5 * max(height, 1)
            if same and last is not None:
                # The line's size is its longest run's: a drop cap or a note number
                # does not make a line of body text a heading.
                size = height if len(piece.strip()) > len(last.text.strip()) else last.size
                lines[-1] = replace(last, text=last.text + piece, size=size)
            elif piece.strip():
                lines.append(Line(piece, x, y, height))

    page.extract_text(visitor_text=visit)
    return [replace(line, text=" ".join(line.text.split())) for line in lines if line.text.strip()]


def _key(line: Line) -> str:
    """How a running head is recognised: casefolded, page numbers at its ends set aside."""
    text = line.text.casefold()
    if match_heading(line.text):
        return text  # "Chapter 3" repeats only as itself, never as "chapter #"
    return _EDGE_NUMBER.sub("", text).strip()


def _zone(lines: Sequence[Line]) -> list[int]:
    """Indices of the lines at the top and at the bottom of a page (fewer on a short page)."""
    order = sorted(range(len(lines)), key=lambda i: -lines[i].y)
    size = max(1, min(ZONE, len(lines) // 3))
    return sorted({*order[:size], *order[-size:]})


def strip_running(pages: Sequence[list[Line]]) -> list[list[Line]]:
    """The pages without running heads and feet, and page numbers at their top or bottom."""
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({_key(lines[i]) for i in _zone(lines)})
    least = min(RUNNING_MIN, max(2, len(pages) // 2))
    out = []
    for lines in pages:
        drop = {
            i
            for i in _zone(lines)
            if _PAGE_NUMBER.fullmatch(lines[i].text) or counts[_key(lines[i])] >= least
        }
        out.append([line for i, line in enumerate(lines) if i not in drop])
    return out


@dataclass(frozen=True, slots=True)
class _Para:
    lines: list[str]
    size: float
    page: int
    indented: bool
    alone: bool = False  # a heading line: nothing joins it


def _paragraphs(pages: Sequence[list[Line]]) -> list[_Para]:
    """Lines into paragraphs, across pages (see the module docstring)."""
    paras: list[_Para] = []
    # The usual length of a line, over the whole book: a page may hold only a few.
    width = statistics.median(len(line.text) for lines in pages for line in lines)
    for number, lines in enumerate(pages):
        if not lines:
            continue
        # Line spacing in units of the type size, so a heading set large and
        # spaced to match keeps its lines together.
        gaps = [(p.y - n.y) / max(p.size, 1.0) for p, n in itertools.pairwise(lines) if p.y > n.y]
        spacing = statistics.median(gaps) if gaps else 0.0
        left = min(line.x for line in lines)
        prev: Line | None = None
        for line in lines:
            indented = line.x - left > 0.8 * line.size
            resized = prev is not None and abs(line.size - prev.size) > 0.1 * prev.size
            if prev is None:
                last = paras[-1] if paras else None
                joins = (
                    last is not None
                    and not indented
                    and abs(last.size - line.size) <= 0.1 * line.size
                    and not last.lines[-1].endswith(_SENTENCE_END)
                )
            else:
                gap = (prev.y - line.y) / max(prev.size, 1.0)
                joins = not resized and not indented and 0 < gap <= PARAGRAPH_GAP * spacing
            # A short "Chapter 3" line stands alone, whatever its size and spacing
            # (a full line that starts so is prose that wrapped there).
            alone = len(line.text) < 0.6 * width and match_heading(line.text) is not None
            if joins and paras and not alone and not paras[-1].alone:
                paras[-1].lines.append(line.text)
            else:
                paras.append(_Para([line.text], line.size, number, indented, alone))
            prev = line
    return paras


def _body_size(paras: Sequence[_Para]) -> float:
    """The size most of the text is set in."""
    weights: Counter[float] = Counter()
    for para in paras:
        weights[round(para.size, 1)] += sum(len(line) for line in para.lines)
    return weights.most_common(1)[0][0] if weights else 0.0


def _heading_levels(paras: Sequence[_Para]) -> dict[int, int]:
    """Paragraph index → heading level, from type sizes larger than the body's."""
    body = _body_size(paras)
    sizes = sorted(
        {
            round(p.size, 1)
            for p in paras
            if p.size >= HEADING_RATIO * body and len(" ".join(p.lines)) <= HEADING_CHARS
        },
        reverse=True,
    )
    rank = {size: min(level, 3) for level, size in enumerate(sizes, 1)}
    return {
        i: rank[round(p.size, 1)]
        for i, p in enumerate(paras)
        if round(p.size, 1) in rank and len(" ".join(p.lines)) <= HEADING_CHARS
    }


@dataclass(frozen=True, slots=True)
class _Entry:
    title: str
    page: int
    depth: int


def _flatten(items: Sequence[object], reader: PdfReader, depth: int, out: list[_Entry]) -> None:
    """Outline entries in order, to depth 3 (all a chapter list needs)."""
    for item in items:
        if isinstance(item, list):
            if depth < 3:
                _flatten(item, reader, depth + 1, out)
        elif isinstance(item, Destination):
            page = reader.get_destination_page_number(item)
            title = clean_title(str(item.title or ""))
            if page is not None and page >= 0 and title:
                out.append(_Entry(title, page, depth))


def outline_entries(reader: PdfReader, split_level: int) -> list[_Entry]:
    """The outline entries that start chapters, in reading order."""
    entries: list[_Entry] = []
    try:
        _flatten(reader.outline, reader, 1, entries)
    except Exception as exc:  # a broken outline is no reason to refuse a readable text
        logger.info("ignoring a broken PDF outline: %s", exc)
        return []
    tops = [e for e in entries if e.depth == 1]
    if len(tops) == 1 and len(entries) > 1:  # one entry holding all: the book's own title
        entries = [replace(e, depth=e.depth - 1) for e in entries if e.depth > 1]
    return [e for e in entries if e.depth <= max(1, split_level)]


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _mark_outline(paras: list[_Para], entries: Sequence[_Entry]) -> dict[int, int]:
    """Where each outline entry's chapter starts: its title's line on its page, else the page.

    Paragraphs are added for entries whose title is not on their page; the
    answer maps paragraph index to heading level (2 for every chapter).
    """
    heads: dict[int, int] = {}
    for entry in entries:
        want = _norm(entry.title)
        on_page = [i for i, p in enumerate(paras) if p.page == entry.page and i not in heads]
        found = next((i for i in on_page if _norm(" ".join(paras[i].lines)) == want), None)
        if found is None:  # the title set in the body's type, run into its first paragraph
            found = next((i for i in on_page if _norm(paras[i].lines[0]) == want), None)
            if found is not None:
                para = paras[found]
                paras[found : found + 1] = [
                    replace(para, lines=para.lines[:1]),
                    replace(para, lines=para.lines[1:]),
                ]
                heads = {i + (i > found): level for i, level in heads.items()}
        if found is None:
            at = next((i for i, p in enumerate(paras) if p.page >= entry.page), len(paras))
            at = max(at, max(heads, default=-1) + 1)
            paras.insert(at, _Para([entry.title], 0.0, entry.page, False))
            heads = {i + (i >= at): level for i, level in heads.items()}
            found = at
        heads[found] = 2
    return heads


def _metadata(reader: PdfReader) -> tuple[str | None, str | None, str | None]:
    try:
        info = reader.metadata
        title = _WORD_TITLE.sub("", str(info.title or "")) if info else ""
        author = str(info.author or "") if info else ""
        language = reader.root_object.get("/Lang")
    except Exception:  # metadata is a nicety: a broken dictionary never stops the text
        return None, None, None
    lang = str(language).strip() if language else ""
    return clean_title(title) or None, clean_title(author) or None, lang or None


def read_pdf(
    data: bytes,
    *,
    label: str,
    where: str,
    max_unpacked_bytes: int,
    options: ReadOptions | None = None,
) -> SourceBook:
    """Sections of a PDF's text layer, and its metadata; raises :class:`BookError`."""
    options = options or ReadOptions()
    reader = _open(data, label)
    pages = strip_running(_read_pages(reader, label, max_unpacked_bytes))
    if not any(has_words(line.text) for lines in pages for line in lines):
        # Nothing but page numbers, if that: the pages are pictures of text.
        raise NoTextLayer(f"{label} has no text layer (its pages are images); run OCR first")
    paras = _paragraphs(pages)
    entries = outline_entries(reader, options.split_level)
    heads = _mark_outline(paras, entries) if entries else _heading_levels(paras)
    blocks: list[Block] = []
    sources: dict[int, str] = {}
    for i, para in enumerate(paras):
        level = heads.get(i, 0)
        # U+2010 at a line end is a typesetter's break (a soft hyphen, shown): a hyphen.
        lines = [line[:-1] + "-" if line.endswith("\u2010") else line for line in para.lines]
        text = " ".join(lines) if level else "\n".join(lines)
        sources[len(blocks)] = f"{where}, page {para.page + 1}"
        blocks.append(Block(text, level))
    found = sections_from_blocks(
        Document(tuple(blocks)), where=where, options=options, sources=sources, typeset=True
    )
    title, author, language = _metadata(reader)
    return SourceBook(title or found.title, author, language, found.sections, skipped=found.skips)


def _read_pages(reader: PdfReader, label: str, max_unpacked_bytes: int) -> list[list[Line]]:
    """Every page's lines, within the page limit and the budget for decompressed content."""
    try:
        count = len(reader.pages)
    except Exception as exc:  # a page tree pypdf cannot walk
        raise NotABook(f"{label} is not a readable PDF: {exc}") from exc
    if count > MAX_PAGES:
        raise BookTooLarge(f"{label} has {count} pages; at most {MAX_PAGES} are read")
    budget = max_unpacked_bytes
    pages = []
    for number, page in enumerate(reader.pages, 1):
        try:
            contents = page.get_contents()
            budget -= len(contents.get_data()) if contents is not None else 0
            if budget < 0:
                raise UnsafeArchive(
                    f"{label}: the content of its pages expands past {max_unpacked_bytes} bytes"
                )
            pages.append(page_lines(page))
        except UnsafeArchive:
            raise
        except Exception as exc:  # pypdf raises many kinds on a broken page; all mean this
            raise NotABook(f"page {number} of {label} cannot be read: {exc}") from exc
    return pages
