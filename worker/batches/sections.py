"""A book's chapters kept encoded between builds, so a rebuild encodes only what changed.

An M4B book is joined from its chapters' *sections*
(:mod:`worker.audio.book_sections`).  Each section is kept in the batch's
staging under a content address — a digest of everything that decides its
frames: the chapter's lossless master (or, without one, its own output file),
where it sits (first, last, between), and the book's format, rate, bitrate,
silences and loudness target::

    <staging>/<batch>/sections/<digest>.aac    the AAC frames (ADTS)
    <staging>/<batch>/sections/<digest>.json   its record and the frames' SHA-256

A chapter's section is encoded by its own job as soon as its master is kept
(:func:`keep_section`, from :func:`~worker.batches.lifecycle.keep_chapter_master`,
on the PCM still on the job's disk), so chapters are encoded while others are
still being spoken, and the build mostly downloads and joins.  The build
encodes whatever section it does not find (:func:`book_sections`).  So after
one chapter is retried, the next build downloads every other section and only
that chapter is encoded.  A section is used only if its record
reads and its file matches the record's digest; anything else is encoded
again and written over.  The record is written after the file, so a record
always has its file.  After a build, the sections it did not use are deleted;
the rest go with the batch's staging.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.audio import ACX, AudioError, BookMeta, ChapterAudio, SegmentAudio
from worker.audio.book import BookRequest, check_book
from worker.audio.book_sections import (
    SECTION_SUFFIX,
    Section,
    SectionedChapter,
    render_section,
    sectionable,
)
from worker.audio.decode import BLOCK_SAMPLES
from worker.batches.model import Batch, ChapterMaster, CombinedFormat
from worker.digest import sha256_bytes, sha256_file
from worker.lease import Lease
from worker.storage.client import ObjectNotFound, Storage, StorageError

log = logging.getLogger(__name__)

#: Part of every address: a new way of rendering sections starts a new set.
VERSION = 1
FOLDER = "sections/"
#: Kept sections downloaded at once by a build.
FETCHERS = 4


def book_request(batch: Batch, cover: bytes | None = None) -> BookRequest:
    """The combined book ``batch`` asks for, checked (:class:`AudioError` if it cannot be)."""
    produce = batch.produce
    assert produce.combined is not None
    meta = BookMeta(batch.book.title, batch.book.author, cover, batch.book.cover_type)
    return check_book(
        [item.title for item in batch.items],
        produce.combined.value,
        meta,
        produce.sample_rate,
        produce.bitrate_kbps,
        (produce.head_silence_ms, produce.chapter_silence_ms, produce.tail_silence_ms),
        ACX if produce.loudness is not None else None,
        BLOCK_SAMPLES,
    )


def master_identity(master: ChapterMaster) -> dict[str, Any]:
    """What names a chapter's audio when it comes from its master: its digest and pieces."""
    pieces = [piece.model_dump(mode="json") for piece in master.pieces]
    return {"master": master.sha256, "pieces": pieces}


def keep_section(
    batch: Batch,
    job_id: str,
    master: ChapterMaster,
    parts: Sequence[SegmentAudio],
    storage: Storage,
) -> bool:
    """Encode and keep the section of ``batch``'s chapter that job ``job_id`` just spoke.

    ``parts`` are the segment files its master was made of, still on disk.
    Whether it was kept; a batch that wants no M4B, or one not joined from
    sections, needs none.  A failure is logged and left to the build, which
    encodes any section it does not find.
    """
    index = next((i for i, item in enumerate(batch.items) if item.job_id == job_id), None)
    if batch.produce.combined is not CombinedFormat.M4B or index is None or not parts:
        return False
    try:
        asked = book_request(batch)
    except AudioError:
        return False  # the build reports it
    if not sectionable(asked):
        return False
    address = section_address(master_identity(master), index, len(batch.items), asked)
    key = storage.staging_key(batch.id, f"{FOLDER}{address}{SECTION_SUFFIX}")
    chapter = ChapterAudio(asked.titles[index], tuple(parts), parts[0].sample_rate)
    path = parts[0].path.parent / f"section-{job_id}{SECTION_SUFFIX}"
    started = time.monotonic()
    try:
        section = render_section(chapter, index, len(batch.items), asked, path)
        _keep(storage, key, path, section)
    except (AudioError, StorageError, OSError) as exc:
        log.warning("job %s: chapter section not kept (the build will encode it): %s", job_id, exc)
        return False
    finally:
        path.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    log.info(
        "job %s: chapter section kept (%.1f s of audio in %.2f s)",
        job_id,
        section.total / asked.sample_rate,
        seconds,
    )
    return True


def section_address(identity: dict[str, Any], index: int, count: int, asked: BookRequest) -> str:
    """The content address of chapter ``index``'s section; ``identity`` names its audio."""
    loudness = asked.loudness.to_dict() if asked.loudness is not None else None
    decided_by = {
        "version": VERSION,
        "chapter": identity,
        "first": index == 0,
        "last": index == count - 1,
        "format": asked.format.value,
        "sample_rate": asked.sample_rate,
        "bitrate_kbps": asked.bitrate_kbps,
        "silence_ms": list(asked.silence_ms),
        "loudness": loudness,
    }
    return sha256_bytes(json.dumps(decided_by, sort_keys=True).encode())


@dataclass(frozen=True, slots=True)
class ChapterSource:
    """What names a chapter's audio (for its address), and what the manifest says of it."""

    identity: dict[str, Any]
    chars: int
    file: str | None


def book_sections(
    batch_id: str,
    sources: Sequence[ChapterSource],
    fetch: Callable[[int], ChapterAudio],
    asked: BookRequest,
    workdir: Path,
    storage: Storage,
    lease: Lease,
) -> tuple[list[SectionedChapter], list[str]]:
    """Every chapter's section, and the keys they are kept at.

    Kept ones are downloaded, :data:`FETCHERS` at a time; the others are then
    encoded from ``fetch(index)`` (called only for those) and kept.  ``lease``
    is checked before and after the downloads, and before each chapter encoded.
    """
    count = len(sources)
    folder = workdir / "sections"
    folder.mkdir(exist_ok=True)
    keys = [
        storage.staging_key(
            batch_id, f"{FOLDER}{section_address(s.identity, i, count, asked)}{SECTION_SUFFIX}"
        )
        for i, s in enumerate(sources)
    ]
    paths = [folder / f"{index:05d}{SECTION_SUFFIX}" for index in range(count)]
    lease.check()
    with ThreadPoolExecutor(FETCHERS, thread_name_prefix="section") as pool:
        found = list(pool.map(functools.partial(_kept, storage), keys, paths))
    lease.check()
    made: list[SectionedChapter] = []
    for index, (source, section) in enumerate(zip(sources, found, strict=True)):
        if section is None:
            lease.check()
            chapter = fetch(index)
            section = render_section(chapter, index, count, asked, paths[index])
            _keep(storage, keys[index], paths[index], section)
            _drop_pieces(chapter)
        made.append(SectionedChapter(paths[index], section, source.chars, source.file))
    kept = sum(section is not None for section in found)
    log.info("batch %s: %d of %d chapter sections were kept", batch_id, kept, count)
    return made, keys


def prune_sections(storage: Storage, batch_id: str, used: Sequence[str]) -> None:
    """Delete the batch's kept sections but ``used`` (section file keys); quietly."""
    keep = set(used) | {key.removesuffix(SECTION_SUFFIX) + ".json" for key in used}
    try:
        prefix = storage.staging_key(batch_id, "") + FOLDER
        stale = [key for key, _ in storage.list_objects(prefix) if key not in keep]
        if stale:
            storage.delete_many(stale)
    except StorageError as exc:
        log.warning("batch %s: stale chapter sections not deleted: %s", batch_id, exc)


def _kept(storage: Storage, key: str, path: Path) -> Section | None:
    """The section kept at ``key``, downloaded to ``path`` and checked; None if unusable."""
    record_key = key.removesuffix(SECTION_SUFFIX) + ".json"
    try:
        record = json.loads(storage.get_bytes(record_key))
        section = Section.from_dict(record["section"])
        storage.download_file(key, path)
    except ObjectNotFound:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("kept section %s is unreadable (%s); encoding it again", key, exc)
        return None
    if sha256_file(path) != record.get("sha256"):
        log.warning("kept section %s does not match its digest; encoding it again", key)
        path.unlink(missing_ok=True)
        return None
    return section


def _keep(storage: Storage, key: str, path: Path, section: Section) -> None:
    """Upload the section's file, then its record."""
    storage.upload_file(path, key, content_type="audio/aac")
    record = {"section": section.to_dict(), "sha256": sha256_file(path)}
    storage.put_bytes(
        key.removesuffix(SECTION_SUFFIX) + ".json",
        json.dumps(record).encode(),
        content_type="application/json",
    )


def _drop_pieces(chapter: ChapterAudio) -> None:
    """Remove the chapter's downloaded PCM once its section is encoded (disk stays small)."""
    folders = {(p if isinstance(p, Path) else p.path).parent for p in chapter.pcm}
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
