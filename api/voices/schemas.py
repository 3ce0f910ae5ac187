"""What the voice routes take and answer: ``VoicePatch`` in, ``VoiceOut`` and ``VoiceList`` out.

``POST /v1/voices`` is a multipart form; its fields are declared on the route.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from api.schemas import RequestModel, not_blank, optional_utf8, utf8
from worker.audio import OutputFormat
from worker.voices.model import VoiceState

#: What a preview says when no text is given.
PREVIEW_TEXT = (
    "Hello. This is a short sample of this voice, read by shoal, "
    "so you can hear how it sounds before it narrates a whole book."
)


class VoicePatch(RequestModel):
    """``PATCH /v1/voices/{id}``: what to change; fields left out stay."""

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    tags: list[str] | None = Field(None, max_length=20)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return None if value is None else not_blank(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return optional_utf8(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return clean_tags(value)


class VoicePreviewIn(RequestModel):
    """``POST /v1/voices/{id}/preview``: what to say; everything may be left out."""

    text: str = Field(PREVIEW_TEXT, min_length=1, max_length=500)
    format: OutputFormat = OutputFormat.MP3

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return not_blank(value)


def clean_tags(tags: list[str]) -> list[str]:
    """Tags stripped, empty ones dropped, each once, in order; ValueError if one is too long."""
    out: list[str] = []
    for tag in (utf8(t).strip() for t in tags):
        if len(tag) > 64 or "," in tag:
            raise ValueError(f"tag {tag[:20]!r}…: at most 64 characters, no commas")
        if tag and tag not in out:
            out.append(tag)
    return out


class VoiceSampleOut(BaseModel):
    """One recording of the voice."""

    filename: str
    bytes: int
    seconds: float
    text: str = Field(description="its transcript, if one was given")
    download_url: str | None = Field(description="presigned; None if storage cannot sign now")


class VoiceLinks(BaseModel):
    self: str


class VoiceSummaryOut(BaseModel):
    """A voice as listed."""

    id: str
    title: str
    description: str
    tags: list[str]
    language: str | None
    state: VoiceState = Field(
        description="ready (references), created/training (a provider model on its way; "
        "references meanwhile), trained (its model id is sent), failed"
    )
    state_message: str | None = Field(description="why it failed, as the provider said")
    provider_model_id: str | None = Field(description="the private provider model, if any")
    sample_count: int
    seconds: float = Field(description="all samples together")
    created_at: datetime
    updated_at: datetime
    links: VoiceLinks


class VoiceOut(VoiceSummaryOut):
    """A voice with its samples."""

    samples: list[VoiceSampleOut]


class VoiceList(BaseModel):
    """One page of voices, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[VoiceSummaryOut]
    next_cursor: str | None
