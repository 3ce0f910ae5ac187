"""What every room of the API shares: request building blocks and response schemas.

Request schemas forbid unknown fields (a typo is a 422 naming it, not a
silently ignored option) and non-finite numbers: they derive from
:class:`RequestModel`.  Checks that need settings or I/O — the text limit,
output choices, reference audio, callback addresses — live in
:mod:`api.validation`; here are only the ones a schema can state.  Response
schemas are what clients see; they never carry the text or the reference
audio back.

Each resource keeps its own schemas beside its routes (:mod:`api.jobs.schemas`,
:mod:`api.batches.schemas`, :mod:`api.books.schemas`); here are the parts they
share (the error envelope, stored files, billing, voice settings) and the
schemas of the small top-level routes (``/v1/estimate``, the probes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from worker.fish.request import Latency
from worker.lexicons.model import LEXICON_ID_PATTERN, MAX_LEXICONS_PER_JOB

#: Most metadata a job or batch may carry, as compact JSON.
MAX_METADATA_BYTES = 16 * 1024
#: Deepest nesting of objects and arrays in metadata.
MAX_METADATA_DEPTH = 16
#: Most voice-cloning reference clips per job.
MAX_REFERENCES = 4

#: ``lexicons`` of a job, batch or book: ids of the tenant's lexicons, applied in order.
LexiconIds = Annotated[
    list[Annotated[str, StringConstraints(pattern=LEXICON_ID_PATTERN)]],
    Field(
        max_length=MAX_LEXICONS_PER_JOB,
        description=f"ids of the tenant's pronunciation lexicons (at most "
        f"{MAX_LEXICONS_PER_JOB}), applied to the text in order before it is spoken; "
        "an earlier lexicon wins a tie",
    ),
]


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


def utf8(value: str) -> str:
    """``value`` if it encodes as UTF-8 (JSON may smuggle in lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def optional_utf8(value: str | None) -> str | None:
    """:func:`utf8` for an optional field."""
    return None if value is None else utf8(value)


def not_blank(value: str) -> str:
    """``value`` if it is valid Unicode and not only whitespace."""
    utf8(value)
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def small_json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is plain JSON within the metadata limits (size and depth)."""
    if _depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"nests deeper than {MAX_METADATA_DEPTH} levels")
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"must be plain JSON ({exc})") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} allowed")
    return value


def _json_kind(annotation: Any) -> str | None:
    """``"number"`` or ``"boolean"`` if ``annotation`` (less ``None``) is only that."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    kinds = {a for a in options or (annotation,) if a is not type(None)}
    if kinds == {bool}:
        return "boolean"
    if kinds and kinds <= {int, float}:
        return "number"
    return None


class RequestModel(BaseModel):
    """The base of request schemas: unknown fields and NaN/infinity are refused, and a
    number or a flag must be sent as the JSON type the schema states."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic would take true for 1.0, "2" for 2 and 1 for true; the document says
        # number or boolean, and a client sending anything else has a bug worth a 422.
        if info.field_name is None or value is None:
            return value
        kind = _json_kind(cls.model_fields[info.field_name].annotation)
        if kind == "number" and isinstance(value, (bool, str)):
            raise ValueError(f"must be a number, not {json.dumps(value)}")
        if kind == "boolean" and not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {json.dumps(value)[:40]}")
        return value


class SubmitModel(RequestModel):
    """The base of requests that make a job or batch: with a callback URL and metadata.

    Each subclass declares ``callback_url`` and ``metadata`` with its own
    descriptions; the checks of both are here.
    """

    @field_validator("callback_url", check_fields=False)
    @classmethod
    def _callback_unicode(cls, value: str | None) -> str | None:
        return optional_utf8(value)

    @field_validator("metadata", check_fields=False)
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return small_json(value)


# -- requests -------------------------------------------------------------------


class ProsodyIn(RequestModel):
    """Speaking rate and loudness."""

    speed: float = Field(1.0, ge=0.5, le=2.0, description="speaking rate, 1.0 is normal")
    volume: float = Field(0.0, ge=-20.0, le=20.0, description="gain in dB")
    normalize_loudness: bool = True


class ReferenceIn(RequestModel):
    """A voice-cloning reference: a short clip and what is said in it."""

    audio: str = Field(min_length=1, description="the clip (wav, mp3, flac, ogg…), base64-encoded")
    text: str = Field("", max_length=10_000, description="transcript of the clip")

    @field_validator("text")
    @classmethod
    def _unicode(cls, value: str) -> str:
        return utf8(value)


class EstimateRequest(RequestModel):
    """``POST /v1/estimate``: a text to price before enqueueing it."""

    text: str
    speed: float = Field(1.0, ge=0.5, le=2.0, description="the prosody speed you would ask for")
    lexicons: LexiconIds = Field(default_factory=list)
    # How the job would be spoken, as ``POST /v1/jobs`` takes it: the segment cache is
    # looked up for exactly that sound (inline reference clips are not taken here).
    reference_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    voice: str | None = Field(None, min_length=1, max_length=128, description="a tenant's voice")
    model: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    format: str = "mp3"
    sample_rate: int | None = None
    prosody: ProsodyIn | None = Field(None, description="instead of `speed`")
    latency: Latency = Latency.NORMAL
    normalize: bool = True
    temperature: float = Field(0.7, ge=0, le=1)
    top_p: float = Field(0.7, ge=0, le=1)
    repetition_penalty: float = Field(1.2, gt=0, le=10)
    cache: bool = Field(True, description="false: price a fresh take, nothing from the cache")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return not_blank(value)


# -- responses ------------------------------------------------------------------


def when(ts: float | None) -> datetime | None:
    """A record's epoch time as an aware UTC datetime."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def percent(done: float, total: float) -> float:
    """``done`` as a share of ``total``, 0–100, to two decimals (0 when there is nothing)."""
    return round(min(100.0 * done / total, 100.0), 2) if total else 0.0


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


#: What a route's ``responses=`` takes: OpenAPI documentation by status code.
Responses = dict[int | str, dict[str, Any]]


def error_responses(descriptions: dict[int, str]) -> Responses:
    """OpenAPI documentation of error answers: each status with ``ErrorOut`` as its body."""
    return {status: {"model": ErrorOut, "description": d} for status, d in descriptions.items()}


def json_error_responses(descriptions: dict[int, str]) -> Responses:
    """:func:`error_responses` for a route whose own answer is not JSON (an event stream):
    its errors still are, and the document must say so."""
    schema = {"$ref": "#/components/schemas/ErrorOut"}
    return {
        status: {"description": d, "content": {"application/json": {"schema": schema}}}
        for status, d in descriptions.items()
    }


#: The errors any ``/v1`` route may answer, by status.
V1_ERROR_DESCRIPTIONS = {
    401: "missing or unknown API key",
    422: "invalid input; `field` names it",
    429: "rate limited; see Retry-After",
}
V1_ERRORS = error_responses(V1_ERROR_DESCRIPTIONS)
#: The errors of a route that reads a JSON body (see :mod:`api.bodies`), beside the 422.
JSON_BODY_ERRORS = error_responses(
    {
        413: "the body is over the size limit",
        415: "the body was not sent as `Content-Type: application/json`",
    }
)
#: The errors of a ``POST`` that makes something, beside its own 413.
CREATE_ERRORS = error_responses(
    {
        409: "Idempotency-Key used with another body",
        503: "the queue is unreachable; nothing was made",
    }
)


class StoredFileOut(BaseModel):
    """Where a finished file is, and a presigned URL to download it.

    Each kind of file adds its own fields; each ends with ``sha256``, where the
    JSON has always had it.
    """

    url: str = Field(description="s3://bucket/key")
    key: str
    download_url: str | None = Field(description="presigned GET URL, valid until expires_at")
    download_expires_at: datetime | None
    bytes: int


class OutputOut(StoredFileOut):
    """An audio file: a job's output, a batch item's, or a batch's combined book."""

    duration_s: float
    format: str
    sample_rate: int
    content_type: str
    sha256: str


class ManifestOut(StoredFileOut):
    """A file a batch made besides its audio: its manifest (JSON), its read-along EPUB."""

    sha256: str


class JobErrorOut(BaseModel):
    code: str
    message: str
    retryable: bool


class BillingOut(BaseModel):
    utf8_bytes: int
    estimated_cost_usd: float
    sent_utf8_bytes: int | None = Field(
        None, description="of the segments done, the text sent to the provider: what it bills"
    )
    sent_cost_usd: float | None = Field(None, description="sent_utf8_bytes at the job's price")
    cached_utf8_bytes: int | None = Field(
        None, description="of the segments done, the text served from the segment cache"
    )


class EstimateOut(BaseModel):
    characters: int
    utf8_bytes: int
    estimated_cost_usd: float
    price_per_million_bytes_usd: float
    estimated_audio_seconds: float = Field(description="rough: ~15 characters a second")
    max_text_bytes: int
    within_limit: bool
    segments: int = Field(0, description="segments the text is cut into")
    segments_cached: int = Field(0, description="of them, already in the segment cache")
    cached_utf8_bytes: int = Field(0, description="text the cache would serve: not sent")
    sent_utf8_bytes: int = Field(0, description="text that would be sent: what is billed")
    sent_cost_usd: float = Field(0.0, description="sent_utf8_bytes at the price")


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
