"""What a batch build makes: the combined audiobook and the manifest, uploaded.

:func:`make_products` is step 2-4 of :func:`worker.batches.build.build_batch`:
each chapter's master is fetched and cut back into its segments (or, if it is
gone, the chapter's own output is decoded), checked against its text, built
into an M4B or MP3, and uploaded with the manifest under
``<tenant>/<batch>/v<generation>/``.  Recording them is the caller's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.audio import (
    BookMeta,
    ChapterAudio,
    build_audiobook,
    chapter_from_file,
    format_info,
)
from worker.audio.book_sections import join_sections, sectionable
from worker.batches.lifecycle import BatchView, split_master
from worker.batches.model import (
    Batch,
    BatchItem,
    ChapterMaster,
    CombinedOutput,
    ManifestOutput,
)
from worker.batches.read_along import ReadAlongFailed, make_read_along
from worker.batches.sections import (
    ChapterSource,
    book_request,
    book_sections,
    master_identity,
    prune_sections,
)
from worker.batches.store import BatchStore
from worker.digest import sha256_file
from worker.jobs.markup import spoken_text
from worker.jobs.model import Job, StoredFile
from worker.jobs.truncation import AudioTruncated, check_duration
from worker.lease import Lease
from worker.storage.client import ObjectNotFound, Storage
from worker.storage.model import validate_key

log = logging.getLogger(__name__)


class BuildFailed(Exception):
    """The combined outputs cannot be built; ``message`` says why (permanent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Products:
    """What a build made and uploaded: the combined book (if any) and the manifest."""

    combined: CombinedOutput | None
    manifest: ManifestOutput
    loudness: dict[str, Any] | None
    read_along: StoredFile | None = None


def make_products(
    view: BatchView,
    generation: int,
    workdir: Path,
    batches: BatchStore,
    storage: Storage,
    lease: Lease,
) -> Products:
    """Build and upload the combined book (if the batch wants one) and the manifest.

    ``lease`` is checked before each chapter and each upload: a builder that
    lost it raises :class:`~worker.lease.LeaseLost` and uploads nothing more.
    """
    batch = view.batch
    chapters = _chapters(view, batches, lease)
    prefix = f"{batch.tenant}/{batch.id}/v{generation}"
    combined: CombinedOutput | None = None
    loudness: dict[str, Any] | None = None
    if batch.produce.combined is not None:
        combined, manifest = _upload_book(batch, chapters, prefix, workdir, storage, lease)
        loudness = manifest.get("loudness")
    else:
        manifest = _plain_manifest(batch, [chapter.entry for chapter in chapters])
    read_along = None
    if batch.produce.read_along:
        jobs = [job for job in view.jobs if job is not None]
        try:
            read_along = make_read_along(batch, jobs, prefix, workdir, storage, lease)
        except ReadAlongFailed as exc:
            raise BuildFailed(exc.message) from exc
        manifest["read_along"] = read_along.key
    manifest = {"batch_id": batch.id, "generation": generation, **manifest}
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    key = validate_key(f"{prefix}/manifest.json")
    lease.check()
    put = storage.put_bytes(key, data, content_type="application/json")
    return Products(
        combined,
        ManifestOutput(url=storage.url(key), key=key, bytes=len(data), sha256=put.sha256),
        loudness,
        read_along,
    )


@dataclass(frozen=True, slots=True)
class _Chapter:
    """One chapter of the build: its item, its job and master, its manifest entry."""

    index: int
    item: BatchItem
    job: Job
    master: ChapterMaster | None
    entry: dict[str, Any]

    @property
    def source(self) -> ChapterSource:
        """What names its audio (the master it would be rendered from), for its section."""
        assert self.job.output is not None
        if self.master is not None:
            identity = master_identity(self.master)
        else:
            identity = {"output": self.job.output.sha256}
        return ChapterSource(identity, self.item.chars, self.job.output.key)


def _chapters(view: BatchView, batches: BatchStore, lease: Lease) -> list[_Chapter]:
    """Each chapter with its manifest entry, checked; no audio is fetched yet."""
    batch = view.batch
    masters = batches.masters(batch.id)
    jobs = [job for job in view.jobs if job is not None]
    chapters: list[_Chapter] = []
    for index, (item, job) in enumerate(zip(batch.items, jobs, strict=True)):
        lease.check()
        if job.output is None:
            raise BuildFailed(f"item {index} ({item.title!r}) has no output")
        master = masters.get(job.id)
        duration = master.duration_s if master is not None else job.output.duration_s
        speed = job.request.prosody.speed if job.request.prosody else 1.0
        try:
            check_duration(duration, spoken_text(job.request.text), speed, what=f"item {index}")
        except AudioTruncated as exc:
            raise BuildFailed(f"item {index} ({item.title!r}): {exc.message}") from exc
        entry = {
            "job_id": job.id,
            "source": "master" if master is not None else "output",
            "duration_s": duration,
            "file": job.output.key,
            # Times in the chapter's own file; add captions_offset_s for the book's.
            "captions": {c.format.value: c.key for c in job.output.captions},
        }
        chapters.append(_Chapter(index, item, job, master, entry))
    return chapters


def _upload_book(
    batch: Batch,
    chapters: list[_Chapter],
    prefix: str,
    workdir: Path,
    storage: Storage,
    lease: Lease,
) -> tuple[CombinedOutput, dict[str, Any]]:
    """Build the combined book, upload it, and return it with its manifest.

    An M4B with silence enough between chapters is joined from its chapters'
    sections, kept between builds (:mod:`worker.batches.sections`): only
    chapters whose audio changed are encoded.  Anything else is encoded whole.
    """
    produce = batch.produce
    assert produce.combined is not None
    meta = BookMeta(
        title=batch.book.title,
        author=batch.book.author,
        cover=_cover(batch, workdir, storage),
        cover_type=batch.book.cover_type,
    )
    out = workdir / f"book.{produce.combined.value}"
    asked = book_request(batch, meta.cover)

    def fetch(index: int) -> ChapterAudio:
        chapter = chapters[index]
        audio, chapter.entry["source"] = _chapter_audio(chapter, workdir, storage)
        return audio

    used: list[str] = []
    if sectionable(asked):
        sources = [chapter.source for chapter in chapters]
        sections, used = book_sections(batch.id, sources, fetch, asked, workdir, storage, lease)
        result = join_sections(sections, asked, meta, out)
    else:
        result = build_audiobook(
            [fetch(index) for index in range(len(chapters))],
            out,
            produce.combined.value,
            meta,
            sample_rate=produce.sample_rate,
            bitrate_kbps=produce.bitrate_kbps,
            chapter_silence_ms=produce.chapter_silence_ms,
            head_silence_ms=produce.head_silence_ms,
            tail_silence_ms=produce.tail_silence_ms,
            loudness=asked.loudness,
        )
    key = validate_key(f"{prefix}/book.{produce.combined.value}")
    lease.check()  # building took a while: upload only what is still ours to upload
    storage.upload_file(
        out,
        key,
        content_type=result.content_type,
        metadata={"batch-id": batch.id, "duration-s": f"{result.duration_s:.3f}"},
    )
    out.unlink(missing_ok=True)
    if used:
        prune_sections(storage, batch.id, used)
    combined = CombinedOutput(
        url=storage.url(key),
        key=key,
        bytes=result.bytes,
        duration_s=round(result.duration_s, 6),
        format=result.format.value,
        sample_rate=result.sample_rate,
        content_type=result.content_type,
        sha256=result.sha256,
    )
    manifest = result.manifest()
    manifest["file"] = key
    entries = [chapter.entry for chapter in chapters]
    for chapter, entry in zip(manifest["chapters"], entries, strict=True):
        chapter["job_id"], chapter["source"] = entry["job_id"], entry["source"]
        if entry["captions"]:
            chapter["captions"] = entry["captions"]
            chapter["captions_offset_s"] = chapter["audio_start_s"]
    return combined, manifest


def _plain_manifest(batch: Batch, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of a batch without a combined book: its chapters' own files."""
    return {
        "title": batch.book.title,
        "author": batch.book.author,
        "format": None,
        "file": None,
        "duration_s": round(sum(e["duration_s"] for e in entries), 6),
        "chapters": [
            {
                "index": i,
                "title": item.title,
                "duration_s": round(entry["duration_s"], 6),
                "chars": item.chars,
                "file": entry["file"],
                "job_id": entry["job_id"],
                "source": entry["source"],
            }
            | ({"captions": entry["captions"]} if entry["captions"] else {})
            for i, (item, entry) in enumerate(zip(batch.items, entries, strict=True))
        ],
        "loudness": None,
    }


def _chapter_audio(chapter: _Chapter, workdir: Path, storage: Storage) -> tuple[ChapterAudio, str]:
    """The chapter's audio for the book: its master, else its own output decoded."""
    index, item, job, master = chapter.index, chapter.item, chapter.job, chapter.master
    assert job.output is not None
    folder = workdir / f"{index:05d}"
    folder.mkdir()
    if master is not None:
        source = folder / "master.pcm"
        try:
            storage.download_file(master.key, source)
        except ObjectNotFound:
            log.warning(
                "batch %s: master of job %s is gone; using its output", job.batch_id, job.id
            )
        else:
            if sha256_file(source) != master.sha256:
                raise BuildFailed(f"item {index}: the chapter master does not match its checksum")
            parts = split_master(master, source, folder)
            source.unlink()
            audio = ChapterAudio(
                title=item.title,
                pcm=tuple(parts),
                sample_rate=parts[0].sample_rate,
                chars=item.chars,
                file=job.output.key,
            )
            return audio, "master"
    encoded = folder / f"output{format_info(job.output.format).extension}"
    try:
        storage.download_file(job.output.key, encoded)
    except ObjectNotFound as exc:
        raise BuildFailed(f"item {index} ({item.title!r}): its audio is gone") from exc
    audio = chapter_from_file(
        item.title, encoded, folder / "decoded.pcm", chars=item.chars, file=job.output.key
    )
    encoded.unlink()
    return audio, "output"


def _cover(batch: Batch, workdir: Path, storage: Storage) -> bytes | None:
    if batch.book.cover_key is None:
        return None
    path = workdir / "cover"
    try:
        storage.download_file(batch.book.cover_key, path)
    except ObjectNotFound:
        log.warning("batch %s: cover image is gone; building without it", batch.id)
        return None
    return path.read_bytes()
