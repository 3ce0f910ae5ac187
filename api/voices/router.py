"""``/v1/voices``: upload, list, show, change and delete a tenant's voices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from api.bodies import BodyRoute
from api.deps import Ctx, Tenant
from api.errors import InvalidInput
from api.jobs.schemas import JobCreate, JobOut
from api.jobs.service import job_view, submit_job
from api.schemas import JSON_BODY_ERRORS, V1_ERRORS, error_responses, utf8
from api.voices.schemas import (
    VoiceList,
    VoiceOut,
    VoicePatch,
    VoicePreviewIn,
    VoiceSummaryOut,
    clean_tags,
)
from api.voices.service import (
    SampleUpload,
    VoiceUpload,
    create_voice,
    delete_voice,
    list_voices,
    owned_voice,
    shown_voice,
    update_voice,
    voice_summary,
    voice_view,
)
from worker.voices.model import MAX_SAMPLES, MAX_UPLOAD_BYTES

router = APIRouter(prefix="/voices", tags=["voices"], responses=V1_ERRORS, route_class=BodyRoute)

VoiceId = Annotated[str, Path(min_length=1, max_length=128, description="a voice id, `voice_…`")]
_NOT_FOUND = error_responses({404: "no such voice for this tenant"})


async def _read(files: list[UploadFile]) -> list[SampleUpload]:
    """Read the uploaded files, stopping once they pass the upload limit."""
    read: list[SampleUpload] = []
    total = 0
    for i, f in enumerate(files):
        data = await f.read(MAX_UPLOAD_BYTES + 1 - total)
        total += len(data)
        # Kept only to show and to name downloads: made printable, valid Unicode.
        raw = (f.filename or "").rsplit("/", 1)[-1][:200]
        name = "".join(c for c in raw if c.isprintable()).encode(errors="replace").decode()
        name = name.strip() or f"sample-{i}"
        read.append(SampleUpload(name, f.content_type or "application/octet-stream", data))
    return read


@router.post(
    "",
    status_code=201,
    response_model=VoiceSummaryOut,
    summary="Create a voice",
    responses=error_responses(
        {
            409: "the tenant has too many voices",
            413: f"the files are over {MAX_UPLOAD_BYTES} bytes together",
        }
    ),
)
async def create(
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    files: Annotated[
        list[UploadFile],
        File(description=f"1 to {MAX_SAMPLES} recordings of one speaker, 3–60 s each"),
    ],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    texts: Annotated[
        list[str] | None, Form(description="the transcript of each file, in the same order")
    ] = None,
    description: Annotated[str, Form(max_length=2000)] = "",
    tags: Annotated[str, Form(max_length=2000, description="comma-separated")] = "",
    language: Annotated[
        str | None, Form(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="BCP 47")
    ] = None,
    enhance_audio_quality: Annotated[
        bool, Form(description="ask the provider to clean the audio when it makes a model")
    ] = False,
) -> VoiceSummaryOut:
    """Check each recording (it decodes, is not silence, is 3–60 s long) and store the voice;
    with ``SHOAL_VOICE_MODELS`` also make it a private provider model.

    Nothing is stored, and no model made, unless every file passes.
    """
    fields = {"title": [title], "description": [description], "tags": [tags], "texts": texts}
    for name, values in fields.items():
        for value in values or []:
            try:
                utf8(value)
            except ValueError as exc:
                raise InvalidInput(f"{name}: {exc}", field=name) from exc
    try:
        tag_list = clean_tags(tags.split(","))
    except ValueError as exc:
        raise InvalidInput(f"tags: {exc}", field="tags") from exc
    upload = VoiceUpload(
        files=await _read(files),
        texts=list(texts or []),
        title=title,
        description=description,
        tags=tag_list,
        language=language,
        enhance_audio_quality=enhance_audio_quality,
    )
    voice = await run_in_threadpool(create_voice, ctx, tenant.id, upload)
    response.headers["Location"] = f"/v1/voices/{voice.id}"
    return voice_summary(voice)


@router.get("", response_model=VoiceList, summary="List voices")
def list_(
    tenant: Tenant,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    tag: Annotated[str | None, Query(max_length=64, description="voices with this tag")] = None,
    title: Annotated[
        str | None, Query(max_length=200, description="voices whose title contains this")
    ] = None,
) -> VoiceList:
    """The tenant's voices, newest first, without their samples."""
    page, next_cursor = list_voices(
        ctx, tenant.id, limit=limit, cursor=cursor, tag=tag, title=title
    )
    return VoiceList(data=[voice_summary(v) for v in page], next_cursor=next_cursor)


@router.get("/{voice_id}", response_model=VoiceOut, summary="Show a voice", responses=_NOT_FOUND)
def show(voice_id: VoiceId, tenant: Tenant, ctx: Ctx) -> VoiceOut:
    """The voice with its samples, each with a presigned download URL."""
    return voice_view(ctx, shown_voice(ctx, tenant.id, voice_id))


@router.patch(
    "/{voice_id}",
    response_model=VoiceOut,
    summary="Change a voice",
    responses={**_NOT_FOUND, **JSON_BODY_ERRORS},
)
def patch(voice_id: VoiceId, body: VoicePatch, tenant: Tenant, ctx: Ctx) -> VoiceOut:
    """Change the title, description or tags; the samples stay."""
    changes = body.model_dump(exclude_none=True)
    return voice_view(ctx, update_voice(ctx, tenant.id, voice_id, changes))


@router.delete(
    "/{voice_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Delete a voice",
    responses=_NOT_FOUND,
)
def delete(voice_id: VoiceId, tenant: Tenant, ctx: Ctx) -> Response:
    """Delete the voice and its samples; jobs already done keep their audio."""
    delete_voice(ctx, tenant.id, voice_id)
    return Response(status_code=204)


@router.post(
    "/{voice_id}/preview",
    status_code=202,
    response_model=JobOut,
    summary="Preview a voice",
    responses={**_NOT_FOUND, **JSON_BODY_ERRORS},
)
def preview(
    voice_id: VoiceId,
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    body: VoicePreviewIn | None = None,
) -> JobOut:
    """Queue a short sample in this voice: a job like any other (``GET /v1/jobs/{id}``,
    then its audio), billed as one."""
    owned_voice(ctx, tenant.id, voice_id)  # another tenant's voice is 404 here too
    choice = body or VoicePreviewIn()
    job = JobCreate(text=choice.text, format=choice.format, voice=voice_id)
    made = submit_job(ctx, tenant, job, None).value
    response.headers["Location"] = f"/v1/jobs/{made.id}"
    return job_view(made, ctx.storage)
