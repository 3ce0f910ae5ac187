"""TTSRequest: the request carried by ``start`` and by ``POST /v1/tts``.

Lenient in what it accepts (docs/protocol.md, 'The start request'): missing keys, explicit
``nil`` for any field, unknown keys, ``opus_bitrate`` in kbps or bps, every
``latency`` the docs or the SDKs name.  Strict about ranges: a value outside
the documented range raises :class:`InvalidRequest` naming the field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.fish.errors import InvalidRequest


class AudioFormat(StrEnum):
    """Audio formats the provider can stream."""

    WAV = "wav"  # one RIFF header with placeholder sizes, then s16le PCM
    PCM = "pcm"  # raw s16le mono, no header
    MP3 = "mp3"  # CBR MP3 frames, mono
    OPUS = "opus"  # one Ogg Opus stream at 48 kHz


class Latency(StrEnum):
    """Latency modes; ``low`` is in the docs, not in the SDK."""

    NORMAL = "normal"  # best quality
    BALANCED = "balanced"  # the SDK's default
    LOW = "low"  # smallest chunks


#: Sample rates each format accepts (Fish's TTS reference); the first is not the default.
SAMPLE_RATES: dict[AudioFormat, tuple[int, ...]] = {
    AudioFormat.WAV: (8000, 16000, 24000, 32000, 44100),
    AudioFormat.PCM: (8000, 16000, 24000, 32000, 44100),
    AudioFormat.MP3: (32000, 44100),
    AudioFormat.OPUS: (48000,),
}
DEFAULT_SAMPLE_RATE: dict[AudioFormat, int] = {
    AudioFormat.WAV: 44100,
    AudioFormat.PCM: 44100,
    AudioFormat.MP3: 44100,
    AudioFormat.OPUS: 48000,
}
MP3_BITRATES_KBPS = (64, 128, 192)
OPUS_BITRATES_KBPS = (24, 32, 48, 64)
OPUS_BITRATE_AUTO = -1000


class Prosody(BaseModel):
    """Speaking rate and gain."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    speed: float = Field(1.0, ge=0.5, le=2.0)
    volume: float = Field(0.0, ge=-20.0, le=20.0)  # dB
    normalize_loudness: bool = True

    @model_validator(mode="before")
    @classmethod
    def _drop_nil(cls, data: Any) -> Any:
        return _without_nil(data)


class ReferenceAudio(BaseModel):
    """A voice-cloning reference: audio bytes and their transcript."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    audio: bytes
    text: str = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_nil(cls, data: Any) -> Any:
        return _without_nil(data)


class TTSRequest(BaseModel):
    """One synthesis request, as the official SDKs and third-party clients send it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: str = ""
    chunk_length: int = Field(200, ge=100, le=300)
    min_chunk_length: int = Field(50, ge=0, le=100)
    format: AudioFormat = AudioFormat.MP3
    sample_rate: int | None = None
    mp3_bitrate: int = 128
    opus_bitrate: int = 32
    references: list[ReferenceAudio] | list[list[ReferenceAudio]] = Field(default_factory=list)
    reference_id: str | list[str] | None = None
    normalize: bool = True
    latency: Latency = Latency.BALANCED
    prosody: Prosody | None = None
    top_p: float = Field(0.7, ge=0.0, le=1.0)
    temperature: float = Field(0.7, ge=0.0, le=1.0)
    max_new_tokens: int = Field(1024, ge=1)
    repetition_penalty: float = Field(1.2, gt=0.0)
    condition_on_previous_chunks: bool = True
    early_stop_threshold: float = Field(1.0, ge=0.0, le=1.0)
    features: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _drop_nil(cls, data: Any) -> Any:
        # Explicit nil means "use the default" for every field (the SDK sends
        # nil for sample_rate, reference_id and prosody when unset).
        return _without_nil(data)

    @field_validator("format", "latency", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("mp3_bitrate")
    @classmethod
    def _mp3_bitrate(cls, value: int) -> int:
        if value not in MP3_BITRATES_KBPS:
            raise ValueError(f"must be one of {', '.join(map(str, MP3_BITRATES_KBPS))} (kbps)")
        return value

    @field_validator("opus_bitrate")
    @classmethod
    def _opus_bitrate(cls, value: int) -> int:
        if value == OPUS_BITRATE_AUTO:
            return value
        kbps = value // 1000 if value >= 1000 and value % 1000 == 0 else value
        if kbps not in OPUS_BITRATES_KBPS:
            raise ValueError(
                "must be -1000 (auto) or one of "
                f"{', '.join(map(str, OPUS_BITRATES_KBPS))} kbps (or the same in bps)"
            )
        return kbps

    @model_validator(mode="after")
    def _rate_fits_format(self) -> TTSRequest:
        if self.sample_rate is not None and self.sample_rate not in SAMPLE_RATES[self.format]:
            rates = ", ".join(map(str, SAMPLE_RATES[self.format]))
            raise ValueError(
                f"sample_rate: {self.sample_rate} Hz is not supported for {self.format.value} "
                f"(supported: {rates})"
            )
        return self

    @property
    def effective_sample_rate(self) -> int:
        """The rate the audio is produced at: the requested one, else the format's default."""
        return self.sample_rate or DEFAULT_SAMPLE_RATE[self.format]

    @property
    def speed(self) -> float:
        return self.prosody.speed if self.prosody else 1.0

    @property
    def volume_db(self) -> float:
        return self.prosody.volume if self.prosody else 0.0

    @property
    def flat_references(self) -> list[ReferenceAudio]:
        """References as one list, whichever of the two shapes was sent."""
        out: list[ReferenceAudio] = []
        for item in self.references:
            if isinstance(item, list):
                out.extend(item)
            else:
                out.append(item)
        return out

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map, every field present (as the ``fishaudio`` SDK sends it)."""
        return self.model_dump(mode="python")


def parse_request(data: Any) -> TTSRequest:
    """Validate a decoded request map; raise :class:`InvalidRequest` naming the field."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"request must be a map, got {type(data).__name__}", field="request")
    try:
        return TTSRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc


def _invalid(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if not loc and ":" in msg:  # model-level check that names its own field
        field, _, _rest = msg.partition(":")
        return InvalidRequest(f"request.{msg}", field=field)
    got = err.get("input")
    shown = "" if isinstance(got, dict | list | bytes) else f" (got {got!r})"
    return InvalidRequest(f"request.{loc}: {msg}{shown}", field=loc or None)


def _without_nil(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data
