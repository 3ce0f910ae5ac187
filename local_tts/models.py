"""Voice models ("models" in Fish Audio's API): the in-memory store.

Served by local_tts.model_routes (``/model``, ``/model/{id}``, ``/wallet/self/...``).

Built-in models, one per engine voice (local_tts.voices), are public and owned
by no key.  A created model's voice is derived from its reference audio
(:func:`local_tts.voices.voice_for_audio`) and its id is chosen to map to that
voice, so the same references always sound the same, and the same as sending
them inline.  Models are owned per Bearer key and live in memory, per server
process; ``/_admin/reset`` clears them.

Exceptions (each carries the HTTP status it is answered with)::

    ModelError            any refusal
    ├── Unauthorized      401: no key, or a key the server does not accept
    ├── ModelNotFound     404: unknown, deleted, or another key's private model
    ├── ModelForbidden    403: a model this key does not own
    ├── ModelNotReady     409: still training, or failed, when asked to speak
    └── InvalidField      422: a field of the request is wrong
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from local_tts.stats import SessionRecord
from local_tts.voices import VOICES, Voice, id_for_voice, pick_voice, voice_for_audio
from worker.fish.request import TTSRequest

log = logging.getLogger(__name__)

#: Creation time shown for built-in models (they exist before any server starts).
BUILTIN_CREATED = datetime(2026, 1, 1, tzinfo=UTC)


class ModelState(StrEnum):
    CREATED = "created"  # just made (answered by POST when training takes time)
    TRAINING = "training"  # within the configured training delay
    TRAINED = "trained"  # usable as reference_id
    FAILED = "failed"  # training failed (--model-training-fails); never usable


class Visibility(StrEnum):
    PUBLIC = "public"  # listed for every key
    UNLIST = "unlist"  # readable by id for every key, listed only for its owner
    PRIVATE = "private"  # its owner only


class ModelError(Exception):
    """A model request refused; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(ModelError):
    status = 401


class ModelNotFound(ModelError):
    status = 404


class ModelForbidden(ModelError):
    status = 403


class ModelNotReady(ModelError):
    status = 409


class InvalidField(ModelError):
    status = 422


@dataclass(slots=True)
class VoiceModel:
    """One model: what ``GET /model/{id}`` shows, and the voice it speaks with."""

    id: str
    owner: str  # user id of the key that made it; "" for built-ins
    title: str
    voice: Voice
    visibility: Visibility = Visibility.PUBLIC
    description: str = ""
    tags: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    created_at: datetime = BUILTIN_CREATED
    updated_at: datetime = BUILTIN_CREATED
    ready_at: float = 0.0  # monotonic time training ends
    fails: bool = False  # training ends in FAILED
    cover_image: str = ""
    task_count: int = 0

    def state(self, now: float) -> ModelState:
        if now < self.ready_at:
            return ModelState.TRAINING
        return ModelState.FAILED if self.fails else ModelState.TRAINED

    def to_json(self, now: float, state: ModelState | None = None) -> dict[str, Any]:
        """The model entity both SDKs validate (``fishaudio.Voice``, ``ModelEntity``)."""
        return {
            "_id": self.id,
            "type": "tts",
            "title": self.title,
            "description": self.description,
            "cover_image": self.cover_image,
            "train_mode": "fast",
            "state": (state or self.state(now)).value,
            "tags": list(self.tags),
            "samples": [],
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "languages": ["en"],
            "visibility": self.visibility.value,
            "lock_visibility": False,
            "like_count": 0,
            "mark_count": 0,
            "shared_count": 0,
            "task_count": self.task_count,
            "liked": False,
            "marked": False,
            "author": {
                "_id": self.owner or "local_tts",
                "nickname": "local_tts" if not self.owner else f"user-{self.owner[:8]}",
                "avatar": "",
            },
        }


def user_id(key: str) -> str:
    """The user id a Bearer key stands for (models are owned per key)."""
    return hashlib.sha256(b"user\0" + key.encode("utf-8")).hexdigest()[:32]


def _builtins() -> dict[str, VoiceModel]:
    models = {}
    for voice in VOICES:
        variant = voice.variant.lstrip("+")
        gender = "female" if variant.startswith("f") else "male"
        model = VoiceModel(
            id=id_for_voice(voice, b"builtin\0" + voice.key.encode()),
            owner="",
            title=f"Local {gender} {variant}, pitch {voice.pitch}",
            voice=voice,
            description=f"espeak-ng {voice.espeak_name} at pitch {voice.pitch}",
            tags=[gender, "english", "local"],
        )
        models[model.id] = model
    return models


class ModelStore:
    """Every model of one server process.

    ``training_seconds`` is how long a new model trains before it can speak;
    with ``fail_training`` it then fails instead.  ``clock`` is monotonic.
    """

    def __init__(
        self,
        training_seconds: float = 0.0,
        fail_training: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.training_seconds = training_seconds
        self.fail_training = fail_training
        self.clock = clock
        self._builtins = _builtins()
        self._models: dict[str, VoiceModel] = {}
        self._deleted: set[str] = set()

    def reset(self) -> None:
        """Forget every created and deleted model (built-ins stay)."""
        self._models.clear()
        self._deleted.clear()
        for model in self._builtins.values():
            model.task_count = 0

    def _find(self, model_id: str) -> VoiceModel | None:
        return self._models.get(model_id) or self._builtins.get(model_id)

    def get(self, model_id: str, user: str) -> VoiceModel:
        """The model ``user`` may read; another key's private model is not found."""
        model = self._find(model_id)
        if model is None or (model.visibility is Visibility.PRIVATE and model.owner != user):
            raise ModelNotFound(f"Model {model_id} not found")
        return model

    def owned(self, model_id: str, user: str) -> VoiceModel:
        """The model ``user`` may change."""
        model = self.get(model_id, user)
        if model.owner != user:
            raise ModelForbidden(f"Model {model_id} does not belong to this key")
        return model

    def create(self, user: str, audios: list[bytes], **fields: Any) -> VoiceModel:
        """A new model speaking with the voice its reference audio derives."""
        voice = voice_for_audio(audios)
        now = datetime.now(UTC)
        model = VoiceModel(
            id=id_for_voice(voice, b"model\0" + uuid.uuid4().bytes),
            owner=user,
            voice=voice,
            created_at=now,
            updated_at=now,
            ready_at=self.clock() + self.training_seconds,
            fails=self.fail_training,
            **fields,
        )
        self._models[model.id] = model
        log.info("model %s created: %d references, voice %s", model.id, len(audios), voice.key)
        return model

    def delete(self, model_id: str, user: str) -> None:
        """Delete ``user``'s model; its id is remembered so that it refuses to speak."""
        self.owned(model_id, user)
        del self._models[model_id]
        self._deleted.add(model_id)

    def visible(self, user: str) -> list[VoiceModel]:
        """Every model the list shows ``user``: public ones and its own."""
        every = [*self._builtins.values(), *self._models.values()]
        return [m for m in every if m.visibility is Visibility.PUBLIC or m.owner == user]

    def voice_for(self, request: TTSRequest, record: SessionRecord | None = None) -> Voice:
        """The voice a TTS request speaks with; notes on ``record`` what it named.

        A model this server deleted, or one still training or failed, refuses
        to speak.  An id it never made keeps the voice :func:`pick_voice` gives
        it, as before models existed (Fish's public voices are not known here).
        """
        if record is not None:
            record.reference_id = request.reference_id
            record.references = [
                {"sha256": _sha256(r.audio), "bytes": len(r.audio), "text": r.text}
                for r in request.flat_references
            ]
        ref_id = request.reference_id
        if isinstance(ref_id, list):
            ref_id = ref_id[0] if ref_id else None
        if ref_id:
            if ref_id in self._deleted:
                raise ModelNotFound(f"reference_id: model {ref_id} not found (deleted)")
            model = self._find(ref_id)
            if model is not None:
                state = model.state(self.clock())
                if state is not ModelState.TRAINED:
                    raise ModelNotReady(f"reference_id: model {ref_id} is {state.value}")
                model.task_count += 1
                return model.voice
        return pick_voice(request)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(moment: datetime) -> str:
    """A time as Fish writes it (UTC, microseconds, ``Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
