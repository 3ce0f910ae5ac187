"""A batch's read-along book: its chapters' text and audio as an EPUB 3 with Media Overlays.

Built with the other products when ``produce.read_along`` is set.  Each
chapter is its item: the item's own audio file (mp3 or m4a, checked at
submission), and its captions' sentence marks (every item of such a batch
asks for sentence timings), whose character offsets index the item's text as
submitted.  That text's paragraphs become the chapter's paragraphs, each
sentence a ``<span>`` the overlay points at; a title read aloud first becomes
the chapter's heading, highlighted while it is spoken.  The EPUB itself is
:mod:`worker.books.media_overlays`' to write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from worker.batches.model import Batch, BatchItem
from worker.books.media_overlays import (
    OverlayChapter,
    ReadAlongBook,
    ReadAlongError,
    Sentence,
    write_read_along,
)
from worker.books.titles import spoken_title
from worker.jobs.model import CaptionFormat, Job, StoredFile
from worker.lease import Lease
from worker.storage.client import Storage
from worker.storage.model import validate_key
from worker.timings import Mark, MarkKind, marks_from_json

_PARAGRAPH = re.compile(r"\n\s*\n")
_TITLE_END = ".!?:;…"


class ReadAlongFailed(Exception):
    """The read-along book cannot be made (permanent): ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def make_read_along(
    batch: Batch,
    jobs: Sequence[Job],
    prefix: str,
    workdir: Path,
    storage: Storage,
    lease: Lease,
) -> StoredFile:
    """Build the read-along EPUB of ``batch`` (its items' ``jobs``, in order) and upload
    it as ``<prefix>/read-along.epub``."""
    chapters = []
    for index, (item, job) in enumerate(zip(batch.items, jobs, strict=True)):
        lease.check()
        chapters.append(_chapter(index, item, job, workdir, storage))
    book = ReadAlongBook(
        title=batch.book.title,
        chapters=tuple(chapters),
        author=batch.book.author,
        language=batch.book.language or "en",
        identifier=f"urn:shoal:{batch.id}",
    )
    out = workdir / "read-along.epub"
    try:
        write_read_along(book, out)
    except ReadAlongError as exc:
        raise ReadAlongFailed(f"the read-along book: {exc}") from exc
    key = validate_key(f"{prefix}/read-along.epub")
    lease.check()
    put = storage.upload_file(
        out, key, content_type="application/epub+zip", metadata={"batch-id": batch.id}
    )
    out.unlink(missing_ok=True)
    return StoredFile(url=storage.url(key), key=key, bytes=put.bytes, sha256=put.sha256)


def _chapter(
    index: int, item: BatchItem, job: Job, workdir: Path, storage: Storage
) -> OverlayChapter:
    """One chapter: its audio fetched, its sentences grouped into its paragraphs."""
    output = job.output
    captions = output.caption(CaptionFormat.JSON) if output is not None else None
    if output is None or captions is None:
        raise ReadAlongFailed(f"item {index} ({item.title!r}) has no sentence timings")
    audio = workdir / f"read-along-{index:05d}{Path(output.key).suffix}"
    storage.download_file(output.key, audio)
    marks = marks_from_json(json.loads(storage.get_bytes(captions.key)))
    said = [m for m in marks if m.kind is MarkKind.SENTENCE]
    text = job.request.source_text or job.request.text
    paragraphs = _paragraphs(text, said)
    title_clip = None
    if len(paragraphs) > 1 and _is_title(paragraphs[0], item.title):
        only = paragraphs.pop(0)[0]
        title_clip = (only.begin_s, only.end_s)
    return OverlayChapter(
        title=item.title,
        paragraphs=tuple(tuple(p) for p in paragraphs),
        audio=audio,
        duration_s=output.duration_s,
        title_clip=title_clip,
    )


def _paragraphs(text: str, said: Sequence[Mark]) -> list[list[Sentence]]:
    """The sentence marks grouped by the paragraph of ``text`` each starts in, in order;
    paragraphs with nothing spoken (a pause) are left out."""
    bounds = [m.end() for m in _PARAGRAPH.finditer(text)]
    out: list[list[Sentence]] = []
    current = -1
    for mark in sorted(said, key=lambda m: m.char_start):
        paragraph = sum(1 for b in bounds if b <= mark.char_start)
        if paragraph != current or not out:
            out.append([])
            current = paragraph
        out[-1].append(Sentence(mark.text, mark.start_ms / 1000, mark.end_ms / 1000))
    return out


def _is_title(paragraph: Sequence[Sentence], title: str) -> bool:
    """Whether a paragraph is the chapter's title read aloud before its text."""
    if len(paragraph) != 1:
        return False
    said = paragraph[0].text.rstrip(_TITLE_END).casefold()
    return said in {t.rstrip(_TITLE_END).casefold() for t in (title, spoken_title(title))}
