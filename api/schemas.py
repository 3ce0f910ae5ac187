"""What the API takes and what it answers: request and response schemas, kept apart.

Request schemas forbid unknown fields (a typo is a 422 naming it, not a
silently ignored option) and non-finite numbers.  Checks that need settings or
I/O — the text limit, output choices, reference audio, callback addresses —
live in :mod:`api.validation`; here are only the ones a schema can state.
Response schemas are what clients see; they never carry the text or the
reference audio back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.audio import OutputFormat
from worker.fish.request import Latency
from worker.jobs.model import JobStatus

#: Most metadata a job may carry, as compact JSON.
MAX_METADATA_BYTES = 16 * 1024
#: Deepest nesting of objects and arrays in metadata.
MAX_METADATA_DEPTH = 16
#: Most voice-cloning reference clips per job.
MAX_REFERENCES = 4


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts (0 for a scalar); iterative, so any depth."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def _utf8(value: str) -> str:
    """``value`` if it encodes as UTF-8 (JSON may smuggle in lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- requests -------------------------------------------------------------------


class ProsodyIn(_Request):
    """Speaking rate and loudness."""

    speed: float = Field(1.0, ge=0.5, le=2.0, description="speaking rate, 1.0 is normal")
    volume: float = Field(0.0, ge=-20.0, le=20.0, description="gain in dB")
    normalize_loudness: bool = True


class ReferenceIn(_Request):
    """A voice-cloning reference: a short clip and what is said in it."""

    audio: str = Field(min_length=1, description="the clip (wav, mp3, flac, ogg…), base64-encoded")
    text: str = Field("", max_length=10_000, description="transcript of the clip")

    @field_validator("text")
    @classmethod
    def _unicode(cls, value: str) -> str:
        return _utf8(value)


class JobCreate(_Request):
    """``POST /v1/jobs``: one text to narrate, and how."""

    text: str = Field(description="what to say; at most SHOAL_MAX_TEXT_BYTES in UTF-8")
    reference_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="a voice model id of the provider; or give `references` to clone a voice",
    )
    references: list[ReferenceIn] = Field(default_factory=list, max_length=MAX_REFERENCES)
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

    @field_validator("output_key", "callback_url")
    @classmethod
    def _unicode(cls, value: str | None) -> str | None:
        return None if value is None else _utf8(value)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        _utf8(value)
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_METADATA_DEPTH:
            raise ValueError(f"nests deeper than {MAX_METADATA_DEPTH} levels")
        try:
            size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"must be plain JSON ({exc})") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} allowed")
        return value


class EstimateRequest(_Request):
    """``POST /v1/estimate``: a text to price before enqueueing it."""

    text: str
    speed: float = Field(1.0, ge=0.5, le=2.0, description="the prosody speed you would ask for")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        _utf8(value)
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value


# -- responses ------------------------------------------------------------------


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


class ProgressOut(BaseModel):
    segments_done: int
    segments_total: int
    chars_done: int
    chars_total: int
    audio_seconds: float
    percent: float = Field(description="characters done as a share of all, 0–100")


class OutputOut(BaseModel):
    url: str = Field(description="s3://bucket/key")
    key: str
    download_url: str | None = Field(description="presigned GET URL, valid until expires_at")
    download_expires_at: datetime | None
    bytes: int
    duration_s: float
    format: str
    sample_rate: int
    content_type: str
    sha256: str


class JobErrorOut(BaseModel):
    code: str
    message: str
    retryable: bool


class BillingOut(BaseModel):
    utf8_bytes: int
    estimated_cost_usd: float


class JobSettingsOut(BaseModel):
    """The job's request as accepted, without the text and reference audio."""

    characters: int
    reference_id: str | None
    references: int = Field(description="number of voice-cloning reference clips")
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


class JobLinks(BaseModel):
    self: str
    cancel: str
    audio: str
    events: str


class JobOut(BaseModel):
    """A job as its tenant sees it."""

    id: str
    status: JobStatus
    batch_id: str | None
    attempts: int
    progress: ProgressOut
    output: OutputOut | None
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


class EstimateOut(BaseModel):
    characters: int
    utf8_bytes: int
    estimated_cost_usd: float
    price_per_million_bytes_usd: float
    estimated_audio_seconds: float = Field(description="rough: ~15 characters a second")
    max_text_bytes: int
    within_limit: bool


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class CheckOut(BaseModel):
    ok: bool
    detail: str | None = None


class ReadyOut(BaseModel):
    """Whether the API can serve: every dependency reachable."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckOut]
    down: list[str] = Field(description="names of the checks that failed")
