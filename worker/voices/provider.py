"""The provider's voice-model calls over HTTP: create, read and delete a private model.

Fish Audio and local_tts answer the same routes (``POST /model``,
``GET /model/{id}``, ``DELETE /model/{id}``; see docs/protocol.md, "Voice
models and the wallet") under the provider's base URL
(:attr:`worker.settings.Settings.provider_url`), so one client serves both.

Exceptions::

    ModelCallError          root: a call did not do what was asked
    ├── ModelRefused        the provider refused the request (4xx); ``message`` says why
    └── ModelUnreachable    no answer, or the provider's own trouble (5xx)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from worker.settings import Settings

log = logging.getLogger(__name__)


class ModelCallError(Exception):
    """Root of the model-call errors."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ModelRefused(ModelCallError):
    """The provider refused the request (a 4xx)."""


class ModelUnreachable(ModelCallError):
    """The provider did not answer, or answered with its own trouble (a 5xx)."""


class ModelState(StrEnum):
    """A provider model's training state, as the provider names it."""

    CREATED = "created"  # accepted, not yet training
    TRAINING = "training"  # being trained; not usable yet
    TRAINED = "trained"  # usable as a reference_id
    FAILED = "failed"  # training failed; never usable


@dataclass(frozen=True, slots=True)
class ProviderModel:
    """What shoal keeps of a provider model."""

    id: str
    state: ModelState


@dataclass(frozen=True, slots=True)
class SampleFile:
    """One recording sent to the provider."""

    filename: str
    data: bytes
    content_type: str
    text: str = ""


def provider_models_enabled(settings: Settings) -> bool:
    """Whether voices are also made provider models: ``SHOAL_VOICE_MODELS``, else with a key."""
    if settings.voice_models is not None:
        return settings.voice_models
    return settings.fish_api_key is not None


class ModelClient:
    """Synchronous calls to the provider's ``/model`` routes (the API runs them in threads)."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"User-Agent": "shoal/0.1 (+fish-model)"}
        if settings.fish_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.fish_api_key.get_secret_value()}"
        self._http = httpx.Client(
            base_url=settings.provider_url,
            headers=headers,
            timeout=httpx.Timeout(settings.voice_model_timeout, connect=settings.connect_timeout),
            transport=transport,
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def create(
        self,
        title: str,
        samples: Sequence[SampleFile],
        *,
        description: str = "",
        tags: Sequence[str] = (),
        enhance_audio_quality: bool = False,
    ) -> ProviderModel:
        """A new private model trained from ``samples`` (``train_mode=fast``)."""
        data: dict[str, Any] = {
            "type": "tts",
            "train_mode": "fast",
            "visibility": "private",
            "title": title,
            "description": description,
            "enhance_audio_quality": "true" if enhance_audio_quality else "false",
        }
        if tags:
            data["tags"] = list(tags)
        if any(s.text for s in samples):
            data["texts"] = [s.text for s in samples]
        files = [("voices", (s.filename, s.data, s.content_type)) for s in samples]
        return _model(self._call("POST", "/model", data=data, files=files))

    def get(self, model_id: str) -> ProviderModel:
        """The model's current state."""
        return _model(self._call("GET", f"/model/{model_id}"))

    def delete(self, model_id: str) -> None:
        """Delete the model; one the provider no longer has counts as deleted."""
        try:
            self._call("DELETE", f"/model/{model_id}")
        except ModelRefused as exc:
            if exc.status != 404:
                raise

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ModelUnreachable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            raise ModelUnreachable(f"{method} {path}: HTTP {response.status_code}", 503)
        if response.status_code >= 400:
            raise ModelRefused(_message(response), response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise ModelUnreachable(f"{method} {path}: the answer is not JSON") from exc
        return body if isinstance(body, dict) else {}


def _message(response: httpx.Response) -> str:
    """The provider's reason for a refusal, as readable as it gave it."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return f"HTTP {response.status_code}: {str(body)[:300]}"


def _model(body: dict[str, Any]) -> ProviderModel:
    model_id = body.get("_id") or body.get("id")
    if not isinstance(model_id, str) or not model_id:
        raise ModelUnreachable("the provider's answer names no model id")
    try:
        state = ModelState(str(body.get("state", "created")))
    except ValueError:
        state = ModelState.TRAINING  # a state shoal does not know: not usable yet
    return ProviderModel(model_id, state)
