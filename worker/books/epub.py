"""EPUB books: the spine read into documents, chapters planned by the navigation, sections out.

The reading order is the spine (``linear="no"`` items, items that are not
XHTML and missing members are skipped and recorded).  Each document is read
into blocks (:mod:`~worker.books.xhtml`), Project Gutenberg's header and
licence are marked (:mod:`~worker.books.matter`), and the navigation decides
which runs of blocks make each chapter (:mod:`~worker.books.nav`).  Then, for
each chapter:

* boilerplate blocks (licence, transcriber's notes, advertisements) and
  unlisted documents that are matter are left out, each skip recorded with
  its reason;
* footnote and endnote bodies are left out, or read after the chapter's text
  (``notes="end_of_chapter"``: the notes it refers to, in order);
* code blocks and tables are left out or read as written (``code``,
  ``tables``);
* its title comes from the navigation, else from the headings that open it
  (joined: "Chapter 1: The Beginning"), else from its first h1–h3, else it is
  left for :func:`~worker.books.frontmatter.build_book` to call "Chapter N";
  the headings that open it are not part of its text;
* a part that holds only a heading gives its title to the part after it when
  that part has no title of its own (a title page before an untitled story);
  otherwise (a part title "I" before a story with its own) it is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from worker.books.archive import SafeArchive
from worker.books.clean import (
    SCENE_BREAK,
    Vocabulary,
    clean_lines,
    has_words,
    tidy_scene_breaks,
)
from worker.books.epub_package import XHTML_TYPES, Package, read_package, resolve
from worker.books.frontmatter import check_section_count, copyright_notice, type_reason
from worker.books.matter import MATTER_REASONS, block_matter, mark_gutenberg, unlisted_reason
from worker.books.model import (
    NotesMode,
    ReadMode,
    ReadOptions,
    Section,
    Skip,
    SkipCategory,
    SourceBook,
)
from worker.books.nav import TITLE_LEVELS, Planned, Span, plan_chapters
from worker.books.xhtml import Block, BlockRole, Document, extract, parse_xml

__all__ = ["read_epub"]

_TITLE_ENDS = ".:;—–-!?"


@dataclass(frozen=True, slots=True)
class _Draft:
    """A chapter assembled, before titles are passed on and front matter is judged."""

    title: str | None
    own_title: bool  # the title is its own (navigation or opening heading), not a guess
    text: str
    source: str
    kinds: frozenset[str]
    skips: tuple[Skip, ...] = ()  # parts left out before and within it, in reading order


def read_epub(
    data: bytes, *, label: str, max_unpacked_bytes: int, options: ReadOptions | None = None
) -> SourceBook:
    """Sections of an EPUB, with its metadata and cover; raises :class:`BookError`."""
    archive = SafeArchive(data, max_unpacked_bytes=max_unpacked_bytes, label=label)
    package = read_package(archive)
    options = options or ReadOptions()
    skipped: list[Skip] = []
    paths: list[str] = []
    docs: list[Document] = []
    aside: list[tuple[str, Document]] = []  # outside the reading order: read for notes only
    for ref in package.spine:
        item = ref.item
        if item is None:
            reason, source = "not in the manifest", f"spine item {ref.idref!r}"
        elif not ref.linear:
            reason, source = 'outside the reading order (linear="no")', item.path
            member = archive.find(item.path) if item.media_type in XHTML_TYPES else None
            if member and options.notes is NotesMode.END_OF_CHAPTER:
                aside.append((item.path, extract(parse_xml(archive.read(member), member))))
        elif item.media_type not in XHTML_TYPES:
            reason, source = f"not a text document ({item.media_type or 'no type'})", item.path
        elif (member := archive.find(item.path)) is None:
            reason, source = "missing from the archive", item.path
        else:
            paths.append(item.path)
            docs.append(extract(parse_xml(archive.read(member), member)))
            continue
        skipped.append(Skip(SkipCategory.NOT_TEXT, reason, source))
    reader = _Reader(package, paths, mark_gutenberg(docs), options, aside)
    sections = reader.sections()
    cover = cover_type = None
    if package.cover is not None and (member := archive.find(package.cover.path)):
        cover, cover_type = archive.read(member), package.cover.media_type
    return SourceBook(
        package.title,
        package.author,
        package.language,
        tuple(sections),
        cover,
        cover_type,
        tuple([*skipped, *reader.skips]),
    )


def _opening(blocks: list[Block], sections: frozenset[int]) -> int:
    """How many heading blocks open a chapter (its title, not its text).

    The first heading always does; the ones after it do unless a navigation
    entry points at them (``sections``: ids of such blocks) or their level
    comes back later in the chapter: "Chapter 1" / "The Beginning" is one
    title, "The Story" / "I" … "II" a title and a section.
    """
    count = 0
    while count < len(blocks) and 0 < blocks[count].heading <= TITLE_LEVELS:
        level = blocks[count].heading
        if count and id(blocks[count]) in sections:
            break
        if count and any(b.heading == level for b in blocks[count + 1 :]):
            break
        count += 1
    return count


def _byline(title: str) -> bool:
    return title.casefold().startswith("by ")


def _title(
    blocks: list[Block], nav_title: str | None, sections: frozenset[int] = frozenset()
) -> tuple[str | None, bool, int]:
    """(title, whether it is the chapter's own, opening headings it takes from the text)."""
    opening = _opening(blocks, sections)
    if nav_title and not _byline(nav_title):
        return nav_title, True, opening
    titles: list[str] = []
    for block in blocks[:opening]:
        sep = " " if titles and titles[-1][-1] in _TITLE_ENDS else ": "
        titles += [sep, block.text] if titles else [block.text]
    if titles and not _byline(titles[0]):
        return "".join(titles), True, opening
    first = next((b.text for b in blocks if 0 < b.heading <= TITLE_LEVELS), None)
    return nav_title or first, False, opening if titles else 0


class _Reader:
    """One book's chapters: the plan, the skips made on the way, the notes by id."""

    def __init__(
        self,
        package: Package,
        paths: list[str],
        docs: list[Document],
        options: ReadOptions,
        aside: Sequence[tuple[str, Document]] = (),
    ) -> None:
        self.package, self.paths, self.docs, self.options = package, paths, docs, options
        self.vocabulary = Vocabulary.of("\n".join(b.text for d in docs for b in d.blocks))
        self.index = {path: i for i, path in enumerate(paths)}
        listed = [self.index[e.path] for e in package.nav if e.path in self.index]
        self.last_listed = max(listed, default=len(docs))  # documents after it are back matter
        start = package.body_start
        self.body_doc = self.index.get(start[0]) if start else None  # landmarks: the body starts
        self.skips: list[Skip] = []
        # Blocks a navigation entry points at (by identity): a section's heading.
        self.targets = frozenset(
            id(docs[i].blocks[at])
            for e in package.nav
            if (i := self.index.get(e.path)) is not None
            and e.fragment
            and (at := docs[i].anchors.get(e.fragment, -1)) in range(len(docs[i].blocks))
        )
        # Notes are looked up in the reading order and in documents outside it.
        self.note_paths = paths + [path for path, _ in aside]
        self.note_docs = docs + [doc for _, doc in aside]
        self.notes = _note_index(self.note_docs)
        self.note_at = {path: i for i, path in enumerate(self.note_paths)}
        self._ids = [{i: name for name, i in sorted(d.anchors.items(), key=_last)} for d in docs]

    def sections(self) -> list[Section]:
        """The book's sections in reading order, front and back matter still among them."""
        plans = list(self._plans())
        check_section_count(len(plans))
        drafts: list[_Draft] = []
        done = 0  # skips already given to a draft: each goes with the part after it
        for plan in plans:
            if (draft := self._draft(plan)) is not None:
                drafts.append(dataclasses.replace(draft, skips=tuple(self.skips[done:])))
                done = len(self.skips)
        if drafts and done < len(self.skips):  # after the last part: listed with it
            last = drafts[-1]
            drafts[-1] = dataclasses.replace(last, skips=last.skips + tuple(self.skips[done:]))
            done = len(self.skips)
        self.skips = self.skips[done:]
        return [Section(d.title, d.text, d.source, d.kinds, d.skips) for d in _pass_titles(drafts)]

    def _plans(self) -> Iterator[Planned]:
        """The navigation's plan; unlisted documents after matter are parts of their own."""
        package, level = self.package, self.options.split_level
        plans = plan_chapters(self.docs, self.paths, package.nav, level, package.title)
        for plan in plans:
            if len(plan.spans) > 1 and type_reason(self._kinds(plan.spans[0])):
                yield dataclasses.replace(plan, spans=plan.spans[:1])
                yield from (Planned((span,)) for span in plan.spans[1:])
            else:
                yield plan

    def _kinds(self, span: Span) -> frozenset[str]:
        """What a run of blocks is: its document's types and landmarks, its blocks' shared types."""
        path, doc = self.paths[span.doc], self.docs[span.doc]
        kinds = doc.kinds
        if self.body_doc is not None and span.doc < self.body_doc:
            kinds |= {"frontmatter"}  # before the body the landmarks name
        if span.start == 0:
            kinds |= self.package.landmarks.get(path, frozenset())
            if path == self.package.nav_path:
                kinds |= {"toc"}
        blocks = [b for b in doc.blocks[span.start : span.stop] if b.note is None]
        if blocks:
            kinds |= frozenset.intersection(*(b.kinds for b in blocks))
        return kinds

    def _source(self, span: Span, fragment: str | None) -> str:
        path, doc = self.paths[span.doc], self.docs[span.doc]
        at = doc.anchors.get(fragment or "", -1)
        if at != span.start or (at < len(doc.blocks) and block_matter(doc.blocks[at])):
            fragment = None  # the entry's anchor is not where the chapter starts
        fragment = fragment or (self._ids[span.doc].get(span.start) if span.start else None)
        if fragment:
            return f"{path}#{fragment}"
        before = [b.text for b in doc.blocks[: span.start] if b.heading]
        return f"{path}, after {before[-1]!r}" if before else path

    def _draft(self, plan: Planned) -> _Draft | None:
        """One chapter's title and text, or None when nothing of it is left to judge."""
        source = self._source(plan.spans[0], plan.fragment)
        kinds = self._kinds(plan.spans[0])
        if type_reason(kinds):  # matter as a whole (contents, colophon …): judged as one
            blocks = [b for s in plan.spans for b in self.docs[s.doc].blocks[s.start : s.stop]]
            title, own, opening = _title(blocks, plan.title, self.targets)
            text = "\n\n".join(tidy_scene_breaks(filter(None, map(self._clean, blocks[opening:]))))
            return _Draft(title, own, text, source, kinds)
        body, notes, skipped = self._gather(plan)
        while body and body[0][1].text == SCENE_BREAK:  # a rule above the title opens nothing
            body = body[1:]
        # An entry that points at boilerplate (Gutenberg's header) names the boilerplate.
        doc = self.docs[plan.spans[0].doc]
        at = doc.anchors.get(plan.fragment or "", -1)
        named = 0 <= at < len(doc.blocks) and block_matter(doc.blocks[at])
        nav_title = None if named else plan.title
        title, own, opening = _title([b for _, b in body], nav_title, self.targets)
        self._skip_parts(skipped, notes if body else [], title, source)
        if not body and self._all_matter(plan):
            return None  # boilerplate only, recorded block by block
        if not body and notes:
            reason = "endnotes"
            if self.options.notes is NotesMode.END_OF_CHAPTER:
                reason += " (read at the end of the chapters that refer to them)"
            self.skips.append(Skip(SkipCategory.NOTES, reason, source, title))
            return None
        paragraphs = [self._clean(b) for _, b in body[opening:]]
        if self.options.notes is NotesMode.END_OF_CHAPTER:
            paragraphs += [self._clean(b) for b in self._notes_for(body, notes)]
        text = "\n\n".join(tidy_scene_breaks(p for p in paragraphs if p))
        return _Draft(title, own, text, source, kinds)

    def _gather(
        self, plan: Planned
    ) -> tuple[list[tuple[int, Block]], list[tuple[int, Block]], dict[str, int]]:
        """The chapter's blocks to read, its note bodies, and how many code blocks and
        tables it leaves out."""
        body: list[tuple[int, Block]] = []
        notes: list[tuple[int, Block]] = []
        skipped = {"code": 0, "table": 0}
        for n, span in enumerate(plan.spans):
            if n and not span.listed and self._unlisted(span):
                continue
            for doc, block in self._blocks(span):
                if block.note is not None:
                    notes.append((doc, block))
                elif block.role is BlockRole.CODE and self.options.code is ReadMode.SKIP:
                    skipped["code"] += 1
                elif block.role is BlockRole.TABLE and self.options.tables is ReadMode.SKIP:
                    skipped["table"] += 1
                else:
                    body.append((doc, block))
        return body, notes, skipped

    def _clean(self, block: Block) -> str:
        return clean_lines(block.text, self.vocabulary, keep_breaks=block.role != BlockRole.PROSE)

    def _blocks(self, span: Span) -> Iterator[tuple[int, Block]]:
        """The span's blocks, boilerplate left out and recorded run by run."""
        doc = self.docs[span.doc]
        run: tuple[str, int] | None = None  # (kind, first block) of the boilerplate being skipped
        for i in range(span.start, span.stop):
            block = doc.blocks[i]
            kind = block_matter(block)
            if run and run[0] != kind:
                self._skip_run(span.doc, run, i)
                run = None
            if kind is None:
                yield span.doc, block
            elif run is None:
                run = (kind, i)
        if run:
            self._skip_run(span.doc, run, span.stop)

    def _skip_run(self, doc: int, run: tuple[str, int], stop: int) -> None:
        kind, start = run
        blocks = self.docs[doc].blocks[start:stop]
        if not any(has_words(b.text) for b in blocks):
            return  # nothing that would have been read
        category, reason = MATTER_REASONS[kind]
        title = next((b.text for b in blocks if b.heading), None)
        source = self._source(Span(doc, start, stop), None)
        if self.skips and self.skips[-1].reason == reason and self.skips[-1].source == source:
            return
        self.skips.append(Skip(category, reason, source, title))

    def _all_matter(self, plan: Planned) -> bool:
        """Whether every block of the chapter was boilerplate (already recorded)."""
        blocks = [b for s in plan.spans for b in self.docs[s.doc].blocks[s.start : s.stop]]
        return bool(blocks) and all(block_matter(b) for b in blocks if has_words(b.text))

    def _unlisted(self, span: Span) -> bool:
        """Skip (and record) an unlisted document that is matter; False to join it."""
        doc = self.docs[span.doc]
        heading = next((b.text for b in doc.blocks if b.heading), None)
        found = unlisted_reason(doc, heading or next((b.text for b in doc.blocks), None))
        if found is None and (reason := type_reason(self._kinds(span))):
            found = SkipCategory.BACK_MATTER, reason
        text = "\n\n".join(b.text for b in doc.blocks if not b.heading)
        if found is None and span.doc > self.last_listed and not heading and copyright_notice(text):
            found = SkipCategory.BACK_MATTER, "copyright page"
        if found is None:
            return False
        if not all(block_matter(b) for b in doc.blocks if has_words(b.text)):
            self.skips.append(Skip(found[0], found[1], self.paths[span.doc], heading))
        else:
            list(self._blocks(span))  # boilerplate blocks: recorded run by run
        return True

    def _skip_parts(
        self, skipped: dict[str, int], notes: list[tuple[int, Block]], title: str | None, src: str
    ) -> None:
        """Record the code blocks, tables and notes a chapter's text leaves out."""
        names = {"code": ("code block", SkipCategory.CODE), "table": ("table", SkipCategory.TABLE)}
        for key, count in skipped.items():
            if count:
                name, category = names[key]
                self.skips.append(Skip(category, f"{count} {name}{'s' * (count > 1)}", src, title))
        ids = {(doc, b.note) for doc, b in notes if b.note}
        if (
            ids
            and self.options.notes is NotesMode.SKIP
            and any(has_words(b.text) for _, b in notes)
        ):
            count = len(ids)
            self.skips.append(
                Skip(SkipCategory.NOTES, f"{count} note{'s' * (count > 1)}", src, title)
            )

    def _notes_for(
        self, body: list[tuple[int, Block]], own: list[tuple[int, Block]]
    ) -> list[Block]:
        """The note bodies a chapter refers to, in order, then its own unreferenced ones."""
        chosen: dict[tuple[int, str], None] = {}
        for doc, block in body:
            for href in block.refs:
                if (key := self._note_key(doc, href)) is not None:
                    chosen.setdefault(key)
        for doc, block in own:
            if block.note:
                chosen.setdefault((doc, block.note))
        return [block for key in chosen for block in self.notes.get(key, ())]

    def _note_key(self, doc: int, href: str) -> tuple[int, str] | None:
        """(document, note id) of the note a reference in document ``doc`` points at."""
        target = resolve(self.note_paths[doc], href)
        if target is None or target[1] is None or (found := self.note_at.get(target[0])) is None:
            return None
        blocks = self.note_docs[found].blocks
        at = self.note_docs[found].anchors.get(target[1], len(blocks))
        note = blocks[at].note if at < len(blocks) else None
        return (found, note) if note else None


def _note_index(docs: list[Document]) -> dict[tuple[int, str], list[Block]]:
    """(document, note id) → the blocks of that footnote or endnote."""
    notes: dict[tuple[int, str], list[Block]] = {}
    for i, doc in enumerate(docs):
        for block in doc.blocks:
            if block.note:
                notes.setdefault((i, block.note), []).append(block)
    return notes


def _last(item: tuple[str, int]) -> int:
    return -item[1]


def _pass_titles(drafts: list[_Draft]) -> list[_Draft]:
    """A part with only a heading gives its title to an untitled part after it."""
    out: list[_Draft] = []
    pending: _Draft | None = None
    for draft in drafts:
        if pending is not None:
            if draft.text and not draft.own_title and not type_reason(draft.kinds):
                skips = pending.skips + draft.skips
                draft = dataclasses.replace(draft, title=pending.title, own_title=True, skips=skips)
            else:
                out.append(pending)
            pending = None
        heading_only = draft.title and not has_words(draft.text) and not type_reason(draft.kinds)
        if heading_only and draft.own_title:
            pending = draft
        else:
            out.append(draft)
    if pending is not None:
        out.append(pending)
    return out
