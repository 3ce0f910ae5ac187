"""The HTTP routes of voice models and the wallet, over local_tts.models.

Routes (all need the same Bearer key as the TTS endpoints):
    GET    /model                   list: page_size, page_number, title, tag, self,
                                    author_id, language, sort_by (task_count, created_at)
    POST   /model                   create from multipart: type=tts, train_mode=fast, title,
                                    voices (files), texts, tags, visibility, description,
                                    enhance_audio_quality, cover_image
    GET    /model/{id}              one model
    PATCH  /model/{id}              title, description, visibility, tags, cover_image
    DELETE /model/{id}              delete; the id then refuses to speak
    GET    /wallet/self/api-credit  a constant, plausible balance
    GET    /wallet/self/package     likewise

Errors are JSON ``{"status", "message"}``, the shape both SDKs parse (the legacy
one takes exactly those two keys); a bad field is a 422 whose message starts
with the field's name.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import av
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from local_tts.models import (
    BUILTIN_CREATED,
    InvalidField,
    ModelError,
    ModelState,
    ModelStore,
    Visibility,
    iso,
    user_id,
)

#: Most reference files one model takes.
MAX_VOICE_FILES = 20
#: Largest upload body (all files together), in bytes.
MAX_UPLOAD_BYTES = 64 << 20
MAX_TITLE_CHARS = 256
MAX_PAGE_SIZE = 100
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class ModelRoutes:
    """The HTTP handlers; ``authorize`` returns the caller's key or raises a refusal."""

    def __init__(self, store: ModelStore, authorize: Callable[[Request], str]) -> None:
        self.store = store
        self.authorize = authorize

    async def list(self, request: Request) -> Response:
        """``GET /model``: a page of the models this key may see, filtered and sorted."""
        user = user_id(self.authorize(request))
        q = request.query_params
        size = _int(q.get("page_size", "10"), "page_size", 1, MAX_PAGE_SIZE)
        number = _int(q.get("page_number", "1"), "page_number", 1, None)
        sort_by = q.get("sort_by", "task_count")
        if sort_by not in ("task_count", "created_at"):
            raise InvalidField("sort_by: must be task_count or created_at")
        models = self.store.visible(user)
        if _bool(q.get("self", "false"), "self"):
            models = [m for m in models if m.owner == user]
        if author := q.get("author_id"):
            models = [m for m in models if (m.owner or "local_tts") == author]
        if title := q.get("title", "").strip().lower():
            models = [m for m in models if title in m.title.lower()]
        for tag in q.getlist("tag"):
            models = [m for m in models if tag in m.tags]
        if (languages := q.getlist("language")) and "en" not in languages:
            models = []  # every model here speaks English
        models.sort(key=lambda m: (m.title, m.id))
        models.sort(key=lambda m: getattr(m, sort_by), reverse=True)
        now = self.store.clock()
        page = models[(number - 1) * size : number * size]
        return JSONResponse({"total": len(models), "items": [m.to_json(now) for m in page]})

    async def get(self, request: Request) -> Response:
        """``GET /model/{id}``: one model."""
        user = user_id(self.authorize(request))
        model = self.store.get(request.path_params["model_id"], user)
        return JSONResponse(model.to_json(self.store.clock()))

    async def create(self, request: Request) -> Response:
        """``POST /model``: a new model from a multipart upload; every field checked first."""
        user = user_id(self.authorize(request))
        form = await _form(request)
        try:
            if form.get("type", "tts") != "tts":
                raise InvalidField("type: only 'tts' models can be created")
            if form.get("train_mode", "fast") != "fast":
                raise InvalidField("train_mode: only 'fast' is supported")
            _bool(_text(form, "enhance_audio_quality") or "false", "enhance_audio_quality")
            fields = _metadata(form, creating=True)
            cover = _has_cover(form)
            audios = await _voices(form)
            texts = [_field_text(v, "texts") for v in form.getlist("texts")]
            if texts and len(texts) != len(audios):
                raise InvalidField(
                    f"texts: {len(texts)} transcripts for {len(audios)} voices "
                    "(give one per voice, or none)"
                )
        finally:
            await form.close()
        model = self.store.create(user, audios, texts=texts, **fields)
        if cover:
            model.cover_image = f"coverimage/{model.id}"
        initial = ModelState.CREATED if self.store.training_seconds > 0 else None
        return JSONResponse(model.to_json(self.store.clock(), initial), status_code=201)

    async def update(self, request: Request) -> Response:
        """``PATCH /model/{id}``: change the fields given, for the owner only."""
        user = user_id(self.authorize(request))
        model = self.store.owned(request.path_params["model_id"], user)
        form = await _form(request)
        try:
            fields = _metadata(form, creating=False)
            cover = _has_cover(form)
        finally:
            await form.close()
        if cover:
            model.cover_image = f"coverimage/{model.id}"
        for name, value in fields.items():
            setattr(model, name, value)
        model.updated_at = datetime.now(UTC)
        return JSONResponse(model.to_json(self.store.clock()))

    async def delete(self, request: Request) -> Response:
        """``DELETE /model/{id}``: for the owner only; the id then refuses to speak."""
        user = user_id(self.authorize(request))
        self.store.delete(request.path_params["model_id"], user)
        return JSONResponse({"status": 200, "message": "deleted"})

    async def api_credit(self, request: Request) -> Response:
        """``GET /wallet/self/api-credit``: a constant balance for this key."""
        user = user_id(self.authorize(request))
        return JSONResponse(
            {
                "_id": user_id("credit\0" + user),
                "user_id": user,
                "credit": "1000.00",
                "created_at": iso(BUILTIN_CREATED),
                "updated_at": iso(BUILTIN_CREATED),
                "has_phone_sha256": False,
                "has_free_credit": True,
            }
        )

    async def package(self, request: Request) -> Response:
        """``GET /wallet/self/package``: a constant package for this key."""
        user = user_id(self.authorize(request))
        return JSONResponse(
            {
                "_id": user_id("package\0" + user),
                "user_id": user,
                "type": "local",
                "total": 1_000_000,
                "balance": 1_000_000,
                "created_at": iso(BUILTIN_CREATED),
                "updated_at": iso(BUILTIN_CREATED),
                # Both SDKs need a string here; a package that never runs out.
                "finished_at": "2099-12-31T00:00:00Z",
            }
        )


def model_error_response(request: Request, exc: Exception) -> Response:
    """Exception handler: a :class:`ModelError` as Fish's ``{"status", "message"}``."""
    assert isinstance(exc, ModelError)
    return JSONResponse({"status": exc.status, "message": exc.message}, status_code=exc.status)


# -- form fields -----------------------------------------------------------------


async def _form(request: Request) -> FormData:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_UPLOAD_BYTES:
        raise InvalidField(f"voices: the upload exceeds {MAX_UPLOAD_BYTES >> 20} MiB")
    try:
        return await request.form(max_files=MAX_VOICE_FILES + 1, max_fields=1000)
    except MultiPartException as exc:
        field_name = "voices" if "files" in str(exc).lower() else "body"
        raise InvalidField(f"{field_name}: {exc}") from exc


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return None if value is None else _field_text(value, name)


def _field_text(value: str | UploadFile, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidField(f"{name}: must be a text field, not a file")
    return value


def _metadata(form: FormData, *, creating: bool) -> dict[str, Any]:
    """Title, description, visibility and tags from a form (all of them when creating)."""
    out: dict[str, Any] = {}
    title = _text(form, "title")
    if title is not None or creating:
        title = (title or "").strip()
        if not title:
            raise InvalidField("title: must not be empty")
        if len(title) > MAX_TITLE_CHARS:
            raise InvalidField(f"title: longer than {MAX_TITLE_CHARS} characters")
        out["title"] = title
    if (description := _text(form, "description")) is not None:
        out["description"] = description
    visibility = _text(form, "visibility")
    if visibility is not None or creating:
        try:
            out["visibility"] = Visibility(visibility or "public")
        except ValueError:
            raise InvalidField("visibility: must be public, unlist or private") from None
    tags = [_field_text(t, "tags") for t in form.getlist("tags")]
    if tags or creating:
        out["tags"] = tags
    return out


def _has_cover(form: FormData) -> bool:
    """Whether a cover image came (it is checked, not kept)."""
    cover = form.get("cover_image")
    if cover is None:
        return False
    if isinstance(cover, str) or not cover.size:
        raise InvalidField("cover_image: must be a non-empty file")
    return True


async def _voices(form: FormData) -> list[bytes]:
    """The reference audio files, each checked to decode as audio."""
    parts = form.getlist("voices")
    if not parts:
        raise InvalidField("voices: at least one audio file is required")
    if len(parts) > MAX_VOICE_FILES:
        raise InvalidField(f"voices: {len(parts)} files, at most {MAX_VOICE_FILES}")
    audios = []
    for n, part in enumerate(parts):
        if isinstance(part, str):
            raise InvalidField(f"voices[{n}]: must be a file, not a text field")
        data = await part.read()
        if not data:
            raise InvalidField(f"voices[{n}]: the file is empty")
        seconds = await asyncio.to_thread(audio_seconds, data)
        if seconds <= 0:
            raise InvalidField(f"voices[{n}]: not audio (no decodable audio stream)")
        audios.append(data)
    return audios


def audio_seconds(data: bytes) -> float:
    """Seconds of audio ``data`` decodes to; 0 when it is not audio at all."""
    samples = rate = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return 0.0
            for frame in container.decode(audio=0):
                samples += frame.samples
                rate = frame.sample_rate
    except (av.FFmpegError, ValueError, UnicodeDecodeError):
        return 0.0
    return samples / rate if rate else 0.0


def _int(raw: str, name: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(f"{name}: not an integer: {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidField(f"{name}: must be {bound}, got {value}")
    return value


def _bool(raw: str, name: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidField(f"{name}: not a boolean: {raw!r}")
