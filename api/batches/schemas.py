"""What the batch routes take and answer: ``BatchCreate`` and ``ItemRetryIn`` in;
``BatchOut`` (one batch) and ``BatchList`` (a page of ``BatchSummaryOut``) out.

Requests derive from :class:`api.schemas.RequestModel`; checks that need
settings (text limits, output choices, reference audio, callback addresses)
are in :mod:`api.batches.service`.  :class:`BatchOptions` is also what a
book takes (:mod:`api.books.schemas`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.schemas import (
    MAX_REFERENCES,
    BillingOut,
    JobErrorOut,
    LexiconIds,
    ManifestOut,
    OutputOut,
    ProsodyIn,
    ReferenceIn,
    RequestModel,
    SubmitModel,
    not_blank,
)
from worker.audio import OutputFormat
from worker.batches.model import (
    AssemblyState,
    BatchStatus,
    CombinedFormat,
    LoudnessPreset,
)
from worker.fish.request import Latency
from worker.jobs.model import JobStatus, TimestampLevel

#: Most items in one batch (chapters of one book).
MAX_BATCH_ITEMS = 500
#: A batch's texts together may be this many times ``SHOAL_MAX_TEXT_BYTES`` (one job's limit).
BATCH_TEXT_FACTOR = 20
MAX_TITLE_CHARS = 300


class BatchKind(StrEnum):
    """What made a batch: the ``kind`` of a listed batch, and the listing's filter."""

    BOOK = "book"  # POST /v1/books: chapters read from an uploaded file
    BATCH = "batch"  # POST /v1/batches: texts sent as they are


# -- requests -------------------------------------------------------------------


class VoiceIn(RequestModel):
    """How items are spoken; every field left out is inherited (defaults, then the server's)."""

    reference_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="a voice model id of the provider; or give `references` to clone a voice",
    )
    references: list[ReferenceIn] | None = Field(None, max_length=MAX_REFERENCES)
    voice: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="a voice of the tenant (`/v1/voices`); instead of `references` or "
        "`reference_id`",
    )
    model: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    prosody: ProsodyIn | None = None
    latency: Latency | None = None
    normalize: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    timestamps: TimestampLevel | None = Field(
        None, description="captions for each item: `sentence` or `word` timings"
    )
    paragraph_silence_ms: int | None = Field(None, ge=0, le=10_000)
    lexicons: LexiconIds | None = Field(
        None, description="replaces the defaults' list whole; [] for none"
    )
    cache: bool | None = Field(
        None, description="use the tenant's segment cache (default true); false: a fresh take"
    )


class BatchDefaultsIn(VoiceIn):
    """Settings every item starts from."""

    priority: int = Field(0, ge=0, le=9, description="among batches; always behind narration jobs")


class BatchItemIn(VoiceIn):
    """One item of a batch: a text with a title, and optional settings of its own."""

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    text: str = Field(description="what to say; at most SHOAL_MAX_TEXT_BYTES in UTF-8")

    @field_validator("title", "text")
    @classmethod
    def _filled(cls, value: str) -> str:
        return not_blank(value)


class ProduceIn(RequestModel):
    """What a batch makes: each item's own file, a combined book, and always a manifest."""

    chapter_format: OutputFormat = Field(OutputFormat.MP3, description="each item's own file")
    chapter_sample_rate: int | None = None
    chapter_bitrate_kbps: int | None = None
    combined: CombinedFormat | None = Field(
        CombinedFormat.M4B, description="`m4b` (AAC with chapters), `mp3` (ID3 chapters) or null"
    )
    sample_rate: int = Field(44100, description="of the combined book")
    bitrate_kbps: int | None = Field(None, description="of the combined book; default per format")
    chapter_silence_ms: int = Field(1000, ge=0, le=60_000)
    head_silence_ms: int = Field(500, ge=0, le=60_000)
    tail_silence_ms: int = Field(1000, ge=0, le=60_000)
    loudness: LoudnessPreset | None = Field(
        None,
        description="`acx`: RMS −23…−18 dB, peaks ≤ −3 dB, room tone; measured in the manifest",
    )
    read_along: bool = Field(
        False,
        description="also an EPUB 3 whose text is highlighted sentence by sentence as the "
        "narration plays (Media Overlays, over each item's own mp3 or m4a file); "
        "items get sentence timings",
    )


class BatchOptions(SubmitModel):
    """What a batch and a book both take: defaults, outputs, callback, metadata."""

    defaults: BatchDefaultsIn = Field(default_factory=BatchDefaultsIn)
    produce: ProduceIn = Field(default_factory=ProduceIn)
    callback_url: str | None = Field(
        None, min_length=1, max_length=2048, description="http(s) URL that receives batch events"
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="echoed back (≤ 16 KiB)")


class BatchCreate(BatchOptions):
    """``POST /v1/batches``: many texts (e.g. a book's chapters), shared defaults, and outputs."""

    title: str | None = Field(
        None, max_length=MAX_TITLE_CHARS, description="of the combined book; default: 'Untitled'"
    )
    author: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    items: list[BatchItemIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ItemRetryIn(VoiceIn):
    """``POST /v1/batches/{id}/items/{n}/retry``: optional changes for the new rendering."""

    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE_CHARS)
    text: str | None = None

    @field_validator("title", "text")
    @classmethod
    def _filled(cls, value: str | None) -> str | None:
        return None if value is None else not_blank(value)


class RerenderIn(RequestModel):
    """``POST /v1/batches/{id}/rerender``: render again what the lexicons now change."""

    lexicons: LexiconIds | None = Field(
        None, description="every item's lexicons from now on; default: each item's own"
    )
    every_item: bool = Field(
        False, description="render every item again, not only those whose text changes"
    )


# -- responses ------------------------------------------------------------------


class ItemProgressOut(BaseModel):
    chars_done: int
    chars_total: int
    audio_seconds: float
    percent: float


class BatchItemLinks(BaseModel):
    job: str
    retry: str


class BatchItemOut(BaseModel):
    """One item and its current job."""

    index: int
    title: str
    chars: int
    utf8_bytes: int
    source: str | None = Field(description="where a book's chapter came from")
    job_id: str
    status: JobStatus
    attempts: int
    progress: ItemProgressOut
    output: OutputOut | None = Field(description="the item's own file, with a presigned URL")
    error: JobErrorOut | None
    replaced_jobs: list[str] = Field(description="earlier jobs of this item (retries)")
    links: BatchItemLinks


class BatchCountsOut(BaseModel):
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class BatchProgressOut(BaseModel):
    chars_done: int
    chars_total: int
    audio_seconds: float = Field(description="audio of every item so far")
    percent: float


class AssemblyOut(BaseModel):
    state: AssemblyState
    generation: int = Field(description="bumped by every item retry")
    built_generation: int | None
    attempts: int
    error: str | None
    loudness: dict[str, Any] | None = Field(description="measured, when normalised")


class BatchOutputsOut(BaseModel):
    combined: OutputOut | None
    manifest: ManifestOut | None
    read_along: ManifestOut | None = Field(
        None, description="the read-along EPUB (produce.read_along), once built"
    )
    assembly: AssemblyOut


class BookInfoOut(BaseModel):
    title: str
    author: str | None
    language: str | None
    kind: str | None
    filename: str | None
    cover: bool
    skipped: list[str]


class BatchLinks(BaseModel):
    self: str
    cancel: str
    jobs: str


class BatchOut(BaseModel):
    """A batch as its tenant sees it."""

    id: str
    status: BatchStatus
    items_total: int
    items_done: int = Field(description="items whose job succeeded")
    items_failed: int = Field(description="items whose job failed or was canceled")
    counts: BatchCountsOut
    progress: BatchProgressOut
    billing: BillingOut
    book: BookInfoOut
    produce: ProduceIn
    defaults: dict[str, Any]
    callback_url: str | None
    metadata: dict[str, Any]
    items: list[BatchItemOut]
    outputs: BatchOutputsOut
    error: str | None
    created_at: datetime
    updated_at: datetime
    canceled_at: datetime | None
    finished_at: datetime | None
    links: BatchLinks


class BatchSummaryLinks(BaseModel):
    self: str
    jobs: str


class BatchSummaryOut(BaseModel):
    """A batch in a listing: what it is and how far it got (``GET /v1/batches/{id}`` for
    the rest: items, outputs, billing)."""

    id: str
    status: BatchStatus
    kind: BatchKind
    title: str = Field(description="the book's title; a batch without one: its first item's")
    author: str | None
    file_kind: str | None = Field(description="a book's file: epub, markdown, text, …")
    items_total: int
    items_done: int = Field(description="items whose job succeeded")
    items_failed: int = Field(description="items whose job failed or was canceled")
    created_at: datetime
    finished_at: datetime | None
    links: BatchSummaryLinks


class BatchList(BaseModel):
    """One page of batches, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[BatchSummaryOut]
    next_cursor: str | None
