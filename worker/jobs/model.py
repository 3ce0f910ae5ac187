"""The job record as small typed values (its path: docs/architecture.md).

A job is one text → one audio file.  Its status only moves forward::

    queued → running → succeeded | failed | canceled
    queued → canceled

Progress is a field, not a state.  The API builds :class:`JobRequest` from what
a user posts; the worker reads it back from the store.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from worker.fish.request import Latency, Prosody
from worker.jobs.markup import spoken_text
from worker.lexicons.model import AppliedLexicon


class JobStatus(StrEnum):
    """Where a job stands; only moves forward (see :data:`STATUS_RANK`)."""

    QUEUED = "queued"  # accepted, waiting for a worker
    RUNNING = "running"  # a worker is synthesising it (across retries too)
    SUCCEEDED = "succeeded"  # output uploaded; terminal
    FAILED = "failed"  # permanent error or retries exhausted; terminal
    CANCELED = "canceled"  # canceled by the user; terminal, no output left behind

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
#: A transition is allowed only to a strictly higher rank.
STATUS_RANK: dict[JobStatus, int] = {
    JobStatus.QUEUED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.SUCCEEDED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELED: 2,
}


class ErrorCode(StrEnum):
    """Why a job failed; stable strings clients may switch on."""

    PROVIDER_AUTH = "provider_auth_rejected"  # 401: the Fish key was refused
    PROVIDER_CREDIT = "provider_no_credit"  # 402: the account is out of credit
    PROVIDER_REQUEST = "provider_invalid_request"  # the provider refused the request
    REFERENCE_AUDIO = "reference_audio_unreadable"  # a reference clip does not decode
    VOICE_DELETED = "voice_deleted"  # the voice it names was deleted while it was queued
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # transient provider errors, retries used up
    STORAGE = "storage_error"  # uploads kept failing
    INTERNAL = "internal_error"  # a bug; the message says where


class ReferenceClip(BaseModel):
    """A voice-cloning reference: audio and its transcript."""

    model_config = ConfigDict(frozen=True)

    audio: bytes
    text: str = ""


class PassageVoice(BaseModel):
    """A voice a ``<voice>`` passage of the text names, resolved at submission like
    the job's own: a provider model id once trained, else copies of its samples."""

    model_config = ConfigDict(frozen=True)

    reference_id: str | None = None
    references: list[ReferenceClip] = Field(default_factory=list)


class JobRequest(BaseModel):
    """What to synthesise and what to produce."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    reference_id: str | None = None
    references: list[ReferenceClip] = Field(default_factory=list)
    model: str | None = None  # provider model; None: the configured default
    format: str = "mp3"  # worker.audio.OutputFormat value
    sample_rate: int | None = None
    bitrate_kbps: int | None = None
    prosody: Prosody | None = None
    latency: Latency = Latency.NORMAL
    normalize: bool = True
    temperature: float = Field(0.7, ge=0, le=1)
    top_p: float = Field(0.7, ge=0, le=1)
    repetition_penalty: float = Field(1.2, gt=0)
    paragraph_silence_ms: int | None = Field(None, ge=0, le=10_000)
    output_key: str | None = None
    callback_url: str | None = None
    priority: int = Field(0, ge=0, le=9)
    # Pronunciation lexicons, applied at submission: ``text`` is what is sent (and
    # billed); ``source_text`` the text as given, kept only when a lexicon changed it,
    # so the text can be respelled again with newer versions.  Both default empty, so
    # records stored before lexicons existed still load.
    lexicons: list[AppliedLexicon] = Field(default_factory=list)
    source_text: str | None = None
    # The tenant's voice (``/v1/voices``) the job named; its samples were copied into
    # ``references`` at submission, so the job runs as if they had been sent inline.
    voice: str | None = None
    # The voices of the text's ``<voice name="…">`` passages, by the name the tag gives.
    passage_voices: dict[str, PassageVoice] = Field(default_factory=dict)
    # Timings asked for: captions in WebVTT, SRT and JSON beside the audio.
    timestamps: TimestampLevel | None = None
    # False: a fresh take; the segment cache (worker.jobs.cache) is neither read nor written.
    cache: bool = True

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A job without lexicons or voices is written exactly as before they existed, so a worker
        # of the previous release (which refuses unknown fields) still reads it.
        data: dict[str, Any] = handler(self)
        if not self.lexicons:
            data.pop("lexicons", None)
        if self.source_text is None:
            data.pop("source_text", None)
        if self.voice is None:
            data.pop("voice", None)
        if not self.passage_voices:
            data.pop("passage_voices", None)
        if self.timestamps is None:
            data.pop("timestamps", None)
        if self.cache:
            data.pop("cache", None)
        return data


class TimestampLevel(StrEnum):
    """The timings a job asks for (``timestamps``), next to its audio."""

    SENTENCE = "sentence"  # one mark per sentence
    WORD = "word"  # a mark per word, and the sentences they make


class CaptionFormat(StrEnum):
    """A job's timings as a file; :attr:`content_type` is what it is served as."""

    VTT = "vtt"  # WebVTT, for players and the web
    SRT = "srt"  # SubRip, for video editors
    JSON = "json"  # the marks: kind, start and end (ms), text, character offsets

    @property
    def content_type(self) -> str:
        return {"vtt": "text/vtt", "srt": "application/x-subrip", "json": "application/json"}[
            self.value
        ]


class Phase(StrEnum):
    """What a running job is doing now; finished segments are encoded while later
    ones are still synthesising, so only the last stretch of encoding is a phase."""

    SYNTHESISING = "synthesising"  # segments are streaming from the provider
    ENCODING = "encoding"  # every segment is in; the encoder finishes the output file
    UPLOADING = "uploading"  # the output file is going up to storage


class Progress(BaseModel):
    phase: Phase = Phase.SYNTHESISING
    segments_done: int = 0
    segments_encoded: int = 0  # of the segments done: written into the output file so far
    segments_total: int = 0
    chars_done: int = 0
    chars_total: int = 0
    audio_seconds: float = 0.0
    # Of the segments done: served from the segment cache, and the UTF-8 bytes of text
    # served from it and sent to the provider (what the provider bills).
    segments_cached: int = 0
    utf8_bytes_cached: int = 0
    utf8_bytes_sent: int = 0


class StoredFile(BaseModel):
    """A file shoal stored in its bucket, as a record keeps it.

    The base of every output model: a job's :class:`Output`, and a batch's
    combined book and manifest (:mod:`worker.batches.model`).  Stored records
    are JSON of these fields; subclasses only add fields, so records written
    before a subclass existed still load.
    """

    url: str  # s3://bucket/key
    key: str
    bytes: int
    sha256: str  # hex digest of the bytes uploaded (worker.digest)


class StoredAudio(StoredFile):
    """An audio file shoal stored: what a player needs to know besides where it is."""

    duration_s: float
    format: str  # an OutputFormat value for a job, a CombinedFormat value for a book
    sample_rate: int
    content_type: str


class Captions(StoredFile):
    """One caption file of a job, uploaded beside its audio."""

    format: CaptionFormat
    content_type: str


class Output(StoredAudio):
    """A job's output file as uploaded (and its captions, when it asked for timings)."""

    bucket: str
    captions: list[Captions] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_no_captions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An output without captions is written exactly as before they existed.
        data: dict[str, Any] = handler(self)
        if not self.captions:
            data.pop("captions", None)
        return data

    def caption(self, fmt: CaptionFormat) -> Captions | None:
        """The caption file in ``fmt``, if the job has one."""
        return next((c for c in self.captions if c.format is fmt), None)


class JobError(BaseModel):
    code: str
    message: str
    retryable: bool = False


class Billing(BaseModel):
    utf8_bytes: int
    estimated_cost_usd: float


class CallbackAttempt(BaseModel):
    """One delivery attempt of a callback event, as recorded on the job."""

    event_id: str  # the webhook-id; the same on every attempt of one event
    type: str  # job.started, job.progress, job.succeeded, job.failed, job.canceled
    attempt: int  # 1 for the first delivery
    status_code: int | None = None  # the receiver's HTTP status; None if there was no answer
    error: str | None = None  # why the attempt did not count as delivered
    outcome: str = "delivered"  # delivered | retrying | gave_up
    at: float  # epoch seconds


class Job(BaseModel):
    """The whole record, as stored and as the API shows it."""

    id: str
    tenant: str
    status: JobStatus = JobStatus.QUEUED
    request: JobRequest
    attempts: int = 0
    progress: Progress = Field(default_factory=Progress)
    output: Output | None = None
    error: JobError | None = None
    billing: Billing
    metadata: dict[str, Any] = Field(default_factory=dict)
    batch_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    callbacks: list[CallbackAttempt] = Field(default_factory=list)  # latest delivery attempts


def new_job_id() -> str:
    """A job id: sortable by time, unguessable."""
    return f"job_{int(time.time() * 1000):012x}{uuid.uuid4().hex[:16]}"


def utf8_bytes(text: str) -> int:
    """Size of ``text`` in UTF-8 bytes: what the provider bills for.

    Lone surrogates (which cannot be sent anyway) count as three bytes each
    instead of raising, so a cost estimate never fails on odd input.
    """
    return len(text.encode("utf-8", "surrogatepass"))


def billing_for_bytes(size: int, price_per_million_bytes_usd: float) -> Billing:
    """What the provider charges for ``size`` bytes of UTF-8 text (see docs/protocol.md).

    The one place the price is applied: a job's text, a batch's items and a
    parsed book are all billed through it.
    """
    return Billing(
        utf8_bytes=size, estimated_cost_usd=round(size * price_per_million_bytes_usd / 1e6, 6)
    )


def estimate_billing(text: str, price_per_million_bytes_usd: float) -> Billing:
    """What the provider charges for ``text``: :func:`billing_for_bytes` of its UTF-8 bytes.

    Break tags are silence, never sent, so they are not counted.
    """
    return billing_for_bytes(utf8_bytes(spoken_text(text)), price_per_million_bytes_usd)
