"""A voice: reference recordings a tenant uploaded once and names by id in jobs.

Its samples live in the bucket under the tenant's prefix
(:func:`sample_key`); the record, in Redis (:mod:`worker.voices.store`).

Exceptions::

    VoiceError              root of this package
    └── BadSample           an uploaded file is not a usable recording (``field`` names it)
"""

from __future__ import annotations

import io
import time
import uuid
from enum import StrEnum

import av
import numpy as np
from pydantic import BaseModel, Field

#: Limits of one upload, stated in the README ("Voices").
MAX_SAMPLES = 20
MIN_SAMPLE_SECONDS = 3.0
MAX_SAMPLE_SECONDS = 60.0
MAX_UPLOAD_BYTES = 50 << 20  # all files of one upload together
#: A sample whose loudest point is below this (of full scale, about -50 dBFS) is silence.
SILENCE_PEAK = 0.003


class VoiceError(Exception):
    """Root of the voice errors."""


class BadSample(VoiceError):
    """An uploaded file is not a usable recording; ``field`` names it (``files.1``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class VoiceState(StrEnum):
    """Whether a voice can be used, and how jobs send it."""

    READY = "ready"  # samples stored, no provider model: jobs send them as references
    CREATED = "created"  # provider model accepted, not trained yet: jobs send references
    TRAINING = "training"  # provider model training: jobs send references meanwhile
    TRAINED = "trained"  # provider model usable: jobs send its id as reference_id
    FAILED = "failed"  # provider model failed to train: jobs naming the voice are refused

    @property
    def settled(self) -> bool:
        """True once the state will not change by itself (nothing left to follow)."""
        return self in (VoiceState.READY, VoiceState.TRAINED, VoiceState.FAILED)


class VoiceSample(BaseModel):
    """One stored recording of a voice."""

    key: str  # object key in the bucket
    filename: str  # as uploaded, for people
    bytes: int
    seconds: float
    text: str = ""  # its transcript, if given


class Voice(BaseModel):
    """The whole record, as stored."""

    id: str
    tenant: str
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    state: VoiceState = VoiceState.READY
    provider_model_id: str | None = None  # the private provider model made from the samples
    state_message: str | None = None  # why it failed, as the provider said
    samples: list[VoiceSample]
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def seconds(self) -> float:
        """Length of all samples together."""
        return round(sum(s.seconds for s in self.samples), 3)


def new_voice_id() -> str:
    """A voice id: sortable by time, unguessable."""
    return f"voice_{int(time.time() * 1000):012x}{uuid.uuid4().hex[:16]}"


def sample_key(tenant: str, voice_id: str, index: int) -> str:
    """Where sample ``index`` of a voice is stored: under the tenant's own prefix."""
    return f"{tenant}/voices/{voice_id}/{index:02d}"


def inspect_sample(data: bytes, field: str) -> float:
    """Decode ``data`` fully; its length in seconds, or :class:`BadSample` naming ``field``.

    Refused: what does not decode as audio, silence, and lengths outside
    :data:`MIN_SAMPLE_SECONDS` to :data:`MAX_SAMPLE_SECONDS`.
    """
    if not data:
        raise BadSample(f"{field}: the file is empty", field)
    samples, rate, peak = 0, 0, 0.0
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise BadSample(f"{field}: the file has no audio stream", field)
            for frame in container.decode(container.streams.audio[0]):
                samples += frame.samples
                rate = frame.sample_rate or rate
                peak = max(peak, _peak(frame))
                if rate and samples / rate > MAX_SAMPLE_SECONDS:
                    raise BadSample(
                        f"{field}: longer than {MAX_SAMPLE_SECONDS:g} seconds; cut it", field
                    )
    except BadSample:
        raise
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise BadSample(f"{field}: not a readable audio file ({exc})", field) from exc
    seconds = samples / rate if rate else 0.0
    if seconds < MIN_SAMPLE_SECONDS:
        raise BadSample(
            f"{field}: {seconds:.2f} s is shorter than {MIN_SAMPLE_SECONDS:g} seconds", field
        )
    if peak < SILENCE_PEAK:
        raise BadSample(f"{field}: the recording is silent", field)
    return round(seconds, 3)


def _peak(frame: av.AudioFrame) -> float:
    """The loudest sample of ``frame``, as a share of full scale."""
    pcm = frame.to_ndarray()
    if pcm.size == 0:
        return 0.0
    samples = pcm.astype(np.float64)
    if not np.issubdtype(pcm.dtype, np.integer):
        return float(np.max(np.abs(samples)))  # float PCM: full scale is 1.0
    half = float(2 ** (8 * pcm.dtype.itemsize - 1))
    if np.issubdtype(pcm.dtype, np.unsignedinteger):
        samples -= half  # unsigned PCM (u8) is centred on half its range
    return float(np.max(np.abs(samples))) / half
