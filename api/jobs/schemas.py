"""What the job routes take and answer: ``JobCreate`` in, ``JobOut`` and ``JobList`` out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.lexicons.schemas import AppliedLexiconOut
from api.schemas import (
    MAX_REFERENCES,
    BillingOut,
    JobErrorOut,
    LexiconIds,
    OutputOut,
    ProsodyIn,
    ReferenceIn,
    StoredFileOut,
    SubmitModel,
    not_blank,
    optional_utf8,
)
from worker.audio import OutputFormat
from worker.fish.request import Latency
from worker.jobs.model import CaptionFormat, JobStatus, Phase, TimestampLevel

# -- requests -------------------------------------------------------------------


class JobCreate(SubmitModel):
    """``POST /v1/jobs``: one text to narrate, and how."""

    text: str = Field(description="what to say; at most SHOAL_MAX_TEXT_BYTES in UTF-8")
    reference_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="a voice model id of the provider; or give `references` to clone a voice",
    )
    references: list[ReferenceIn] = Field(default_factory=list, max_length=MAX_REFERENCES)
    voice: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="a voice of the tenant (`/v1/voices`); instead of `references` or "
        "`reference_id`",
    )
    model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="provider model (the `model` header); default: SHOAL_FISH_MODEL",
    )
    format: OutputFormat = OutputFormat.MP3
    sample_rate: int | None = Field(None, description="Hz; default: the format's default")
    bitrate_kbps: int | None = Field(None, description="lossy formats only; default per format")
    prosody: ProsodyIn | None = None
    latency: Latency = Latency.NORMAL
    normalize: bool = Field(True, description="normalise numbers and the like before speaking")
    temperature: float = Field(0.7, ge=0, le=1)
    top_p: float = Field(0.7, ge=0, le=1)
    repetition_penalty: float = Field(1.2, gt=0, le=10)
    paragraph_silence_ms: int | None = Field(None, ge=0, le=10_000)
    output_key: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="object key for the output, under the tenant's own prefix "
        "(`<tenant>/<output_key>`); default: SHOAL_S3_KEY_TEMPLATE",
    )
    callback_url: str | None = Field(
        None, min_length=1, max_length=2048, description="http(s) URL that receives job events"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="any JSON object, echoed back (at most 16 KiB)"
    )
    priority: int = Field(0, ge=0, le=9, description="higher goes first for provider slots")
    lexicons: LexiconIds = Field(default_factory=list)
    timestamps: TimestampLevel | None = Field(
        None,
        description="also make captions: `sentence` or `word` timings, as WebVTT, SRT and "
        "JSON marks (`GET /v1/jobs/{id}/captions`), in the final file's time",
    )
    cache: bool = Field(
        True,
        description="use the tenant's segment cache: a segment already spoken the same way is "
        "not sent again; false for a fresh take (nothing read from or added to the cache)",
    )

    @field_validator("output_key")
    @classmethod
    def _unicode(cls, value: str | None) -> str | None:
        return optional_utf8(value)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return not_blank(value)


# -- responses ------------------------------------------------------------------


class ProgressOut(BaseModel):
    phase: Phase = Field(
        Phase.SYNTHESISING,
        description=(
            "what a running job is doing: `synthesising` (segments streaming from the "
            "provider; finished ones are encoded meanwhile), `encoding` (every segment is "
            "in; the output file is being finished), `uploading` (the file is going up)"
        ),
    )
    segments_done: int
    segments_encoded: int = Field(0, description="segments written into the output file so far")
    segments_total: int
    chars_done: int
    chars_total: int
    audio_seconds: float
    percent: float = Field(description="characters done as a share of all, 0–100")
    segments_cached: int = Field(0, description="segments served from the segment cache")


class JobSettingsOut(BaseModel):
    """The job's request as accepted, without the text and reference audio."""

    characters: int
    reference_id: str | None
    references: int = Field(description="number of voice-cloning reference clips")
    voice: str | None = Field(
        None, description="the voice named; its samples were sent as the references"
    )
    model: str | None
    format: str
    sample_rate: int | None
    bitrate_kbps: int | None
    prosody: ProsodyIn | None
    latency: Latency
    normalize: bool
    temperature: float
    top_p: float
    repetition_penalty: float
    paragraph_silence_ms: int | None
    output_key: str | None
    callback_url: str | None
    priority: int
    lexicons: list[AppliedLexiconOut] = Field(
        default_factory=list,
        description="the lexicon versions applied to the text (before it was segmented)",
    )
    cache: bool = Field(True, description="whether the job uses the segment cache")
    timestamps: TimestampLevel | None = Field(None, description="the timings asked for")
    passage_voices: list[str] = Field(
        default_factory=list, description='the voices its `<voice name="…">` passages name'
    )


class JobLinks(BaseModel):
    self: str
    cancel: str
    audio: str
    events: str
    captions: str | None = Field(None, description="the captions, when the job asked for them")


class CaptionsOut(StoredFileOut):
    """One caption file of a job."""

    format: CaptionFormat
    content_type: str
    sha256: str


class JobOut(BaseModel):
    """A job as its tenant sees it."""

    id: str
    status: JobStatus
    batch_id: str | None
    attempts: int
    progress: ProgressOut
    output: OutputOut | None
    captions: list[CaptionsOut] = Field(
        default_factory=list, description="WebVTT, SRT and JSON timings, once it succeeded"
    )
    error: JobErrorOut | None
    billing: BillingOut
    request: JobSettingsOut
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class JobList(BaseModel):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[JobOut]
    next_cursor: str | None
