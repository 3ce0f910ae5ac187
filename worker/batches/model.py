"""The batch record: many jobs (a book's chapters) and what to make of them at the end.

A batch is a list of items, each narrated by one job of its own (``Job.batch_id``
points back), plus what to produce once every item has ended: a combined
audiobook (M4B or MP3, with chapter markers) and always a manifest.  Its status
is never stored; it is *derived* from the items' jobs and the assembly::

    queued ──> running ──> succeeded | partially_failed | failed
        └──────────┴─────> canceled

* queued: no item has started; running: items are being narrated, or every
  item is done and the combined outputs are being built;
* succeeded: every item succeeded and the outputs are built;
* partially_failed: some items succeeded, others failed (retry them to finish);
* failed: no item succeeded, or the outputs could not be built;
* canceled: the batch was canceled (or all its items were).

Retrying an item replaces its job with a new one and bumps the batch's
``generation``: the combined outputs of the previous generation stay until the
new ones are built, and a late result of an old generation is discarded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from worker.jobs.model import Billing, JobStatus, StoredAudio, StoredFile


class BatchStatus(StrEnum):
    """Where a batch stands; derived from its items (see :func:`derive_status`)."""

    QUEUED = "queued"  # accepted; no item has started yet
    RUNNING = "running"  # items are narrated, or the combined outputs are being built
    SUCCEEDED = "succeeded"  # every item succeeded and the outputs are built; terminal
    PARTIALLY_FAILED = "partially_failed"  # some items succeeded, some did not; terminal
    FAILED = "failed"  # no item succeeded, or the outputs could not be built; terminal
    CANCELED = "canceled"  # canceled by the user; terminal

    @property
    def terminal(self) -> bool:
        return self not in (BatchStatus.QUEUED, BatchStatus.RUNNING)


class CombinedFormat(StrEnum):
    """The combined audiobook of a batch."""

    M4B = "m4b"  # AAC in MP4 with a chapter track and iTunes tags
    MP3 = "mp3"  # one MP3 with ID3v2 CHAP/CTOC frames


class LoudnessPreset(StrEnum):
    """Loudness normalisation of the combined book."""

    ACX = "acx"  # RMS −23…−18 dB, peaks ≤ −3 dB, room tone at head and tail


class AssemblyState(StrEnum):
    """How far the batch's end products are."""

    WAITING = "waiting"  # items are still being narrated
    PENDING = "pending"  # every item succeeded; the build is queued
    BUILDING = "building"  # a worker is building the combined outputs
    DONE = "done"  # built and uploaded (``combined``, ``manifest``)
    FAILED = "failed"  # could not be built; ``error`` says why
    SKIPPED = "skipped"  # items did not all succeed: nothing to build until they are retried


class Produce(BaseModel):
    """What a batch makes at the end, besides each item's own file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chapter_format: str = "mp3"  # each item's own output (worker.audio.OutputFormat value)
    chapter_sample_rate: int | None = None
    chapter_bitrate_kbps: int | None = None
    combined: CombinedFormat | None = CombinedFormat.M4B
    sample_rate: int = 44100  # of the combined book
    bitrate_kbps: int | None = None  # of the combined book; default per format
    chapter_silence_ms: int = Field(1000, ge=0, le=60_000)
    head_silence_ms: int = Field(500, ge=0, le=60_000)
    tail_silence_ms: int = Field(1000, ge=0, le=60_000)
    loudness: LoudnessPreset | None = None
    read_along: bool = False  # also an EPUB 3 with Media Overlays over the chapters' files

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written as before read-along books existed, for a worker that forbids new fields.
        data: dict[str, Any] = handler(self)
        if not self.read_along:
            data.pop("read_along", None)
        return data


class BatchItem(BaseModel):
    """One item: its current job, and the jobs it replaced."""

    job_id: str
    title: str
    chars: int
    utf8_bytes: int
    source: str | None = None  # where a book's chapter came from (EPUB member, line)
    replaced: list[str] = Field(default_factory=list)  # earlier jobs of this item, oldest first


class BookInfo(BaseModel):
    """The book a batch narrates: tags of the combined output, and what ingestion found."""

    title: str
    author: str | None = None
    language: str | None = None
    cover_key: str | None = None  # staging object holding the cover image
    cover_type: str | None = None
    kind: str | None = None  # epub | markdown | text, for a batch made from an upload
    filename: str | None = None
    skipped: list[str] = Field(default_factory=list)


class CombinedOutput(StoredAudio):
    """The combined audiobook as uploaded."""


class ManifestOutput(StoredFile):
    """The manifest JSON as uploaded."""


class Assembly(BaseModel):
    """The batch's end products and the state of building them."""

    state: AssemblyState = AssemblyState.WAITING
    generation: int = 1  # bumped by every item retry
    built_generation: int | None = None  # the generation ``combined``/``manifest`` show
    combined: CombinedOutput | None = None
    manifest: ManifestOutput | None = None
    loudness: dict[str, Any] | None = None  # the manifest's loudness report, when normalised
    error: str | None = None
    attempts: int = 0  # builds started for this generation
    started_at: float | None = None
    finished_at: float | None = None
    read_along: StoredFile | None = None  # the read-along EPUB (Produce.read_along)

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)  # as before read-along books, when there is none
        if self.read_along is None:
            data.pop("read_along", None)
        return data


class Batch(BaseModel):
    """The whole batch record, as stored."""

    id: str
    tenant: str
    items: list[BatchItem]
    produce: Produce = Field(default_factory=Produce)
    book: BookInfo
    defaults: dict[str, Any] = Field(default_factory=dict)  # the request's defaults, echoed
    callback_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    billing: Billing
    assembly: Assembly = Field(default_factory=Assembly)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    canceled_at: float | None = None
    finished_at: float | None = None  # when the batch last reached a terminal status

    def item_of(self, job_id: str) -> int | None:
        """The index of the item whose *current* job is ``job_id``, else None."""
        return next((i for i, item in enumerate(self.items) if item.job_id == job_id), None)

    @property
    def job_ids(self) -> list[str]:
        return [item.job_id for item in self.items]


def new_batch_id() -> str:
    """A batch id: sortable by time, unguessable, never a job id."""
    return f"bat_{int(time.time() * 1000):012x}{uuid.uuid4().hex[:16]}"


def derive_status(batch: Batch, statuses: Sequence[JobStatus | None]) -> BatchStatus:
    """The batch's status from its items' job statuses (``None``: the record is gone).

    A gone job counts as failed: its audio cannot be part of the book.
    """
    if batch.canceled_at is not None:
        return BatchStatus.CANCELED
    current = [s if s is not None else JobStatus.FAILED for s in statuses]
    if any(not s.terminal for s in current):
        if all(s is JobStatus.QUEUED for s in current):
            return BatchStatus.QUEUED
        return BatchStatus.RUNNING
    succeeded = sum(s is JobStatus.SUCCEEDED for s in current)
    if succeeded == len(current):
        state = batch.assembly.state
        if state is AssemblyState.DONE:
            return BatchStatus.SUCCEEDED
        if state is AssemblyState.FAILED:
            return BatchStatus.FAILED
        return BatchStatus.RUNNING  # every item done; the end products are being built
    if all(s is JobStatus.CANCELED for s in current):
        return BatchStatus.CANCELED
    if succeeded == 0:
        return BatchStatus.FAILED
    return BatchStatus.PARTIALLY_FAILED


class MasterPiece(BaseModel):
    """One segment within a chapter master: its PCM bytes, rate and the pause after it."""

    model_config = ConfigDict(frozen=True)

    bytes: int
    sample_rate: int
    silence_after_ms: int = 0


class ChapterMaster(BaseModel):
    """A batch job's lossless audio, kept in staging until the batch no longer needs it.

    One object: the job's segment PCM (s16le mono) concatenated in order;
    ``pieces`` says where each segment ends and what followed it, so the book
    is rendered from exactly what the chapter's own file was rendered from.
    """

    model_config = ConfigDict(frozen=True)

    job_id: str
    key: str
    bytes: int
    sha256: str
    pieces: list[MasterPiece]

    @property
    def duration_s(self) -> float:
        """Seconds of audio, pauses between segments included."""
        return sum(p.bytes / 2 / p.sample_rate + p.silence_after_ms / 1000 for p in self.pieces)
