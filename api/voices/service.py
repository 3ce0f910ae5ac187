"""What the voice routes do, apart from HTTP; and how a job names a voice.

Creating a voice checks every file first (:func:`worker.voices.model.inspect_sample`),
then stores the samples, then (when the settings ask) makes a private provider
model of them, then the record: a failure on the way deletes what was made, so
an upload either makes a whole voice or leaves nothing.  The model's training
is followed when the voice is shown or named by a job (:func:`follow_model`).

:func:`with_voice` turns the voice a job names into the job's reference clips,
or its provider model's id once that is trained, at submission; an unknown
voice is refused with ``voice`` named, a failed one with ``voice_failed``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.deps import ApiContext
from api.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, Unavailable
from api.schemas import when
from api.voices.schemas import VoiceLinks, VoiceOut, VoiceSampleOut, VoiceSummaryOut
from worker.jobs.markup import MarkupError, passage_voices
from worker.jobs.model import JobRequest, PassageVoice, ReferenceClip
from worker.storage.client import StorageError
from worker.voices.model import (
    MAX_SAMPLES,
    MAX_UPLOAD_BYTES,
    BadSample,
    Voice,
    VoiceSample,
    VoiceState,
    inspect_sample,
    new_voice_id,
    sample_key,
)
from worker.voices.provider import (
    ModelCallError,
    ModelClient,
    ModelRefused,
    ModelState,
    ModelUnreachable,
    SampleFile,
    provider_models_enabled,
)
from worker.voices.store import MAX_VOICES_PER_TENANT, VoiceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleUpload:
    """One uploaded file, read."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class VoiceUpload:
    """What ``POST /v1/voices`` was sent, read but not yet checked."""

    files: list[SampleUpload]
    texts: list[str]
    title: str
    description: str
    tags: list[str]
    language: str | None
    enhance_audio_quality: bool = False  # asked of the provider when it makes a model


def voice_store(ctx: ApiContext) -> VoiceStore:
    """The voice store on the app's Redis client (cheap: it holds no connection)."""
    return VoiceStore(ctx.redis, ctx.keys)


def _summary_fields(voice: Voice) -> dict[str, Any]:
    return {
        "id": voice.id,
        "title": voice.title,
        "description": voice.description,
        "tags": voice.tags,
        "language": voice.language,
        "state": voice.state,
        "state_message": voice.state_message,
        "provider_model_id": voice.provider_model_id,
        "sample_count": len(voice.samples),
        "seconds": voice.seconds,
        "created_at": when(voice.created_at) or datetime.now(UTC),
        "updated_at": when(voice.updated_at) or datetime.now(UTC),
        "links": VoiceLinks(self=f"/v1/voices/{voice.id}"),
    }


def voice_summary(voice: Voice) -> VoiceSummaryOut:
    """A voice as listed: without its samples."""
    return VoiceSummaryOut.model_validate(_summary_fields(voice))


def voice_view(ctx: ApiContext, voice: Voice) -> VoiceOut:
    """A voice with its samples, each with a presigned URL (None if storage cannot sign now)."""
    samples = []
    for s in voice.samples:
        try:
            url: str | None = ctx.storage.presign_get(s.key, filename=s.filename)
        except StorageError as exc:
            log.warning("voice %s: cannot presign %s: %s", voice.id, s.key, exc)
            url = None
        samples.append(
            VoiceSampleOut(
                filename=s.filename, bytes=s.bytes, seconds=s.seconds, text=s.text, download_url=url
            )
        )
    return VoiceOut.model_validate(_summary_fields(voice) | {"samples": samples})


def check_upload(upload: VoiceUpload) -> list[float]:
    """The length of each file in seconds; :class:`InvalidInput` or
    :class:`PayloadTooLarge` naming the field at fault.  Stores nothing."""
    if not 1 <= len(upload.files) <= MAX_SAMPLES:
        raise InvalidInput(f"files: send 1 to {MAX_SAMPLES} audio files", field="files")
    if upload.texts and len(upload.texts) != len(upload.files):
        raise InvalidInput(
            f"texts: {len(upload.texts)} transcripts for {len(upload.files)} files; "
            "give one per file, in the same order, or none",
            field="texts",
        )
    total = sum(len(f.data) for f in upload.files)
    if total > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"files: {total} bytes together is over the limit of {MAX_UPLOAD_BYTES}",
            field="files",
            code="upload_too_large",
        )
    if not upload.title.strip():
        raise InvalidInput("title: must not be empty or only whitespace", field="title")
    try:
        return [inspect_sample(f.data, f"files.{i}") for i, f in enumerate(upload.files)]
    except BadSample as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc


def create_voice(ctx: ApiContext, tenant: str, upload: VoiceUpload) -> Voice:
    """Check the upload, store its samples, then the record; nothing is left if any fails."""
    seconds = check_upload(upload)
    store = voice_store(ctx)
    if store.count(tenant) >= MAX_VOICES_PER_TENANT:
        raise Conflict(
            f"a tenant may keep {MAX_VOICES_PER_TENANT} voices; delete one first",
            code="too_many_voices",
        )
    voice_id = new_voice_id()
    texts = upload.texts or [""] * len(upload.files)
    samples: list[VoiceSample] = []
    try:
        for i, (f, secs, text) in enumerate(zip(upload.files, seconds, texts, strict=True)):
            key = sample_key(tenant, voice_id, i)
            ctx.storage.put_bytes(key, f.data, content_type=f.content_type)
            sample = VoiceSample(
                key=key, filename=f.filename, bytes=len(f.data), seconds=secs, text=text
            )
            samples.append(sample)
        voice = Voice(
            id=voice_id,
            tenant=tenant,
            title=upload.title.strip(),
            description=upload.description,
            tags=upload.tags,
            language=upload.language,
            samples=samples,
        )
        voice = _with_model(ctx, voice, upload)
    except BaseException:
        _delete_samples(ctx, voice_id, [s.key for s in samples])
        raise
    try:
        return store.create(voice)
    except BaseException:
        _delete_samples(ctx, voice_id, [s.key for s in samples])
        if voice.provider_model_id is not None:
            _delete_model_quietly(ctx, voice)
        raise


def _with_model(ctx: ApiContext, voice: Voice, upload: VoiceUpload) -> Voice:
    """``voice`` with a private provider model made from its samples, when the settings
    ask for one (:func:`~worker.voices.provider.provider_models_enabled`)."""
    if not provider_models_enabled(ctx.settings):
        return voice
    files = [
        SampleFile(f.filename, f.data, f.content_type, s.text)
        for f, s in zip(upload.files, voice.samples, strict=True)
    ]
    try:
        with closing(ModelClient(ctx.settings)) as client:
            model = client.create(
                voice.title,
                files,
                description=voice.description,
                tags=voice.tags,
                enhance_audio_quality=upload.enhance_audio_quality,
            )
    except ModelRefused as exc:
        raise InvalidInput(
            f"files: the provider refused the voice: {exc.message}",
            field="files",
            code="voice_refused",
        ) from exc
    except ModelCallError as exc:
        raise Unavailable(f"the provider cannot make the voice now ({exc.message})") from exc
    log.info("voice %s: provider model %s (%s)", voice.id, model.id, model.state.value)
    return voice.model_copy(update={"provider_model_id": model.id, **_state_fields(model.state)})


def _state_fields(state: ModelState) -> dict[str, Any]:
    message = "the provider's model failed to train" if state is ModelState.FAILED else None
    return {"state": VoiceState(state.value), "state_message": message}


def follow_model(ctx: ApiContext, voice: Voice) -> Voice:
    """``voice`` with its provider model's state as the provider tells it now, stored.

    Only a voice whose model is on its way is asked after; a provider that
    cannot answer now leaves the state as it was.
    """
    if voice.provider_model_id is None or voice.state.settled:
        return voice
    try:
        with closing(ModelClient(ctx.settings)) as client:
            model = client.get(voice.provider_model_id)
    except ModelCallError as exc:
        log.warning("voice %s: state of model %s unknown: %s", voice.id, model_id(voice), exc)
        return voice
    fields = _state_fields(model.state)
    if fields["state"] is voice.state:
        return voice
    log.info("voice %s: model %s is %s", voice.id, model.id, model.state.value)
    return voice_store(ctx).update(voice.tenant, voice.id, fields) or voice


def model_id(voice: Voice) -> str:
    """The voice's provider model id, for logs."""
    return voice.provider_model_id or "-"


def _delete_model_quietly(ctx: ApiContext, voice: Voice) -> None:
    try:
        with closing(ModelClient(ctx.settings)) as client:
            client.delete(model_id(voice))
    except ModelCallError as exc:
        log.warning("voice %s: provider model %s left behind: %s", voice.id, model_id(voice), exc)


def _delete_samples(ctx: ApiContext, voice_id: str, keys: Sequence[str]) -> None:
    """Delete stored samples, logging (not raising) what cannot be deleted now."""
    for key in keys:
        try:
            ctx.storage.delete(key)
        except StorageError as exc:
            log.warning("voice %s: sample %s left behind: %s", voice_id, key, exc)


def owned_voice(ctx: ApiContext, tenant: str, voice_id: str) -> Voice:
    """The tenant's voice ``voice_id``; 404 if it has none (another's is none too)."""
    voice = voice_store(ctx).get(tenant, voice_id)
    if voice is None:
        raise NotFound(f"no voice {voice_id!r}", field="voice_id")
    return voice


def shown_voice(ctx: ApiContext, tenant: str, voice_id: str) -> Voice:
    """:func:`owned_voice` with its provider model's state followed."""
    return follow_model(ctx, owned_voice(ctx, tenant, voice_id))


def list_voices(
    ctx: ApiContext,
    tenant: str,
    *,
    limit: int,
    cursor: str | None,
    tag: str | None,
    title: str | None,
) -> tuple[list[Voice], str | None]:
    """A page of the tenant's voices, newest first, and the cursor of the next page.

    ``tag`` matches a tag exactly; ``title`` a part of the title, ignoring case.
    The cursor is the id of the last voice of the page.
    """
    voices = voice_store(ctx).all(tenant)
    if tag is not None:
        voices = [v for v in voices if tag in v.tags]
    if title is not None:
        voices = [v for v in voices if title.casefold() in v.title.casefold()]
    if cursor is not None:
        ids = [v.id for v in voices]
        if cursor not in ids:
            raise InvalidInput("cursor: not a cursor of this listing", field="cursor")
        voices = voices[ids.index(cursor) + 1 :]
    page = voices[:limit]
    more = len(voices) > limit
    return page, (page[-1].id if more and page else None)


def update_voice(ctx: ApiContext, tenant: str, voice_id: str, changes: dict[str, Any]) -> Voice:
    """Change the voice's title, description or tags."""
    updated = voice_store(ctx).update(tenant, voice_id, changes)
    if updated is None:
        raise NotFound(f"no voice {voice_id!r}", field="voice_id")
    return updated


def delete_voice(ctx: ApiContext, tenant: str, voice_id: str) -> None:
    """Delete the voice's provider model, its record, then its samples; jobs already done
    keep their audio.  A provider that cannot be reached now leaves the voice whole (503)."""
    voice = owned_voice(ctx, tenant, voice_id)
    if voice.provider_model_id is not None:
        try:
            with closing(ModelClient(ctx.settings)) as client:
                client.delete(voice.provider_model_id)
        except ModelUnreachable as exc:
            raise Unavailable(f"the provider cannot delete the voice now ({exc.message})") from exc
        except ModelRefused as exc:  # nothing shoal can do about it: say so and go on
            log.warning("voice %s: provider kept model %s: %s", voice_id, model_id(voice), exc)
    if not voice_store(ctx).delete(tenant, voice_id):
        raise NotFound(f"no voice {voice_id!r}", field="voice_id")
    _delete_samples(ctx, voice_id, [s.key for s in voice.samples])
    log.info("voice %s: deleted", voice_id)


def with_voice(ctx: ApiContext, tenant: str, request: JobRequest) -> JobRequest:
    """``request`` with the voice it names resolved (as is if it names none).

    :class:`InvalidInput` naming ``voice`` if the request also gives
    ``references`` or ``reference_id``; see :func:`voice_fields` for the rest.
    """
    named = passage_voices(request.source_text or request.text)
    if named:
        found = resolve_passage_voices(ctx, tenant, [(request.text, "text")])
        request = request.model_copy(update=passage_fields(named, found))
    if request.voice is None:
        return request
    check_one_voice(request.voice, request.reference_id, bool(request.references))
    return request.model_copy(update=voice_fields(ctx, tenant, request.voice))


def resolve_passage_voices(
    ctx: ApiContext,
    tenant: str,
    texts: Iterable[tuple[str, str]],
    found: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``found`` (by id) with the :func:`voice_fields` of every voice of the tenant that
    the ``<voice>`` tags of ``texts`` ((text, field) pairs) name.  Names the tenant has
    no voice for are left out: :func:`passage_fields` says where their tag is."""
    found = dict(found or {})
    store = voice_store(ctx)
    for text, field in texts:
        try:
            named = passage_voices(text)
        except MarkupError:  # refused with its position where the text is checked
            continue
        for name in named:
            if name not in found and store.exists(tenant, name):
                found[name] = voice_fields(ctx, tenant, name, field)
    return found


def passage_fields(
    named: Mapping[str, int], found: Mapping[str, Mapping[str, Any]], field: str = "text"
) -> dict[str, Any]:
    """The ``passage_voices`` of a :class:`JobRequest` whose text's ``<voice>`` tags
    name ``named`` (name → offset of its first tag), from ``found`` (the
    :func:`voice_fields` of each voice, by id).  :class:`InvalidInput` naming
    ``field`` and the tag's position for a voice the tenant does not have."""
    passages = {}
    for name, position in named.items():
        if name not in found:
            message = (
                f"{field}: the voice tag at character {position} names no voice "
                f"{name!r} of this tenant (see /v1/voices)"
            )
            raise InvalidInput(message, field=field)
        voice = found[name]
        passages[name] = PassageVoice(
            reference_id=voice["reference_id"], references=voice["references"]
        )
    return {"passage_voices": passages} if passages else {}


def check_one_voice(
    voice: str | None, reference_id: str | None, references: bool, field: str = "voice"
) -> None:
    """:class:`InvalidInput` naming ``field`` if a voice is named beside another choice."""
    if voice is not None and (reference_id is not None or references):
        raise InvalidInput(
            f"{field}: give voice, references or reference_id, only one of them", field=field
        )


def voice_fields(
    ctx: ApiContext, tenant: str, voice_id: str, field: str = "voice"
) -> dict[str, Any]:
    """Keyword arguments of :class:`JobRequest` for the tenant's voice ``voice_id``: the
    voice's id, and its provider model's id once that is trained, else its samples.

    :class:`InvalidInput` naming ``field`` if the tenant has no such voice, or
    (code ``voice_failed``) if its provider model failed to train.
    """
    voice = voice_store(ctx).get(tenant, voice_id)
    if voice is None:
        raise InvalidInput(f"{field}: no voice {voice_id!r} for this tenant", field=field)
    voice = follow_model(ctx, voice)
    if voice.state is VoiceState.FAILED:
        raise InvalidInput(
            f"{field}: {voice.id} cannot speak: {voice.state_message}",
            field=field,
            code="voice_failed",
        )
    if voice.state is VoiceState.TRAINED:
        return {"voice": voice.id, "reference_id": voice.provider_model_id, "references": []}
    return {"voice": voice.id, "reference_id": None, "references": sample_clips(ctx, voice)}


def resolve_voices(
    ctx: ApiContext, tenant: str, asked: Iterable[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """:func:`voice_fields` of each voice ``asked`` as (id, field), once per voice, by id."""
    found: dict[str, dict[str, Any]] = {}
    for voice_id, field in asked:
        if voice_id not in found:
            found[voice_id] = voice_fields(ctx, tenant, voice_id, field)
    return found


def sample_clips(ctx: ApiContext, voice: Voice) -> list[ReferenceClip]:
    """The voice's samples as reference clips, read from storage."""
    clips = []
    with tempfile.TemporaryDirectory(prefix="shoal-voice-") as tmp:
        for i, sample in enumerate(voice.samples):
            path = Path(tmp) / str(i)
            try:
                ctx.storage.download_file(sample.key, path)
            except StorageError as exc:
                raise Unavailable("voice: the voice's samples cannot be read now") from exc
            clips.append(ReferenceClip(audio=path.read_bytes(), text=sample.text))
    return clips
