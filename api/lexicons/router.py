"""``/v1/lexicons``: create, list, show, export, replace and delete pronunciation lexicons."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.bodies import BodyRoute
from api.deps import Ctx, Tenant
from api.errors import InvalidInput, UnsupportedMediaType
from api.lexicons.schemas import LexiconIn, LexiconList, LexiconOut
from api.lexicons.service import (
    create_lexicon,
    delete_lexicon,
    export_lexicon,
    lexicon_store,
    lexicon_summary,
    lexicon_view,
    owned_lexicon,
    read_pls,
    replace_lexicon,
    store_new,
)
from api.schemas import JSON_BODY_ERRORS, V1_ERRORS, error_responses

router = APIRouter(
    prefix="/lexicons", tags=["lexicons"], responses=V1_ERRORS, route_class=BodyRoute
)

LexiconId = Annotated[str, Path(min_length=1, max_length=128, description="a lexicon id, `lex_…`")]
_NOT_FOUND = error_responses({404: "no such lexicon for this tenant"})
#: The media type of PLS documents (RFC 4267).
PLS_MEDIA_TYPE = "application/pls+xml"
#: Media types a PLS upload may be sent as.
XML_MEDIA_TYPES = frozenset({PLS_MEDIA_TYPE, "application/xml", "text/xml"})


@router.post(
    "",
    status_code=201,
    response_model=LexiconOut,
    summary="Create a lexicon",
    responses={**JSON_BODY_ERRORS, **error_responses({409: "the tenant has too many lexicons"})},
)
def create(body: LexiconIn, tenant: Tenant, ctx: Ctx, response: Response) -> LexiconOut:
    """Store a lexicon from ``rules`` or from a PLS document; it starts at version 1."""
    lexicon = create_lexicon(ctx, tenant.id, body)
    response.headers["Location"] = f"/v1/lexicons/{lexicon.id}"
    return lexicon_view(lexicon)


@router.post(
    "/pls",
    status_code=201,
    response_model=LexiconOut,
    summary="Import a PLS file",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in sorted(XML_MEDIA_TYPES)},
        }
    },
    responses=error_responses(
        {
            409: "the tenant has too many lexicons",
            413: "the body is over the size limit",
            415: "not sent as `application/pls+xml` (or XML)",
        }
    ),
)
async def import_pls(
    request: Request,
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    name: Annotated[str, Query(min_length=1, max_length=128, description="for people")],
    case_sensitive: Annotated[
        bool, Query(description="whether the graphemes match case-sensitively (as in PLS)")
    ] = True,
) -> LexiconOut:
    """Store a W3C PLS file, sent as the body, as a new lexicon (``shoal lexicons add --pls``
    sends it inside JSON to ``POST /v1/lexicons`` instead)."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in XML_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"body: send the PLS file as `Content-Type: {PLS_MEDIA_TYPE}`", field="body"
        )
    if not name.strip():
        raise InvalidInput("name: must not be empty or only whitespace", field="name")
    doc = read_pls(await request.body(), case_sensitive, field="body")
    lexicon = await run_in_threadpool(
        store_new, ctx, tenant.id, name, doc.language, doc.alphabet, doc.rules
    )
    response.headers["Location"] = f"/v1/lexicons/{lexicon.id}"
    return lexicon_view(lexicon)


@router.get("", response_model=LexiconList, summary="List lexicons")
def list_lexicons(tenant: Tenant, ctx: Ctx) -> LexiconList:
    """The tenant's lexicons, oldest first, without their rules."""
    return LexiconList(data=[lexicon_summary(x) for x in lexicon_store(ctx).all(tenant.id)])


@router.get(
    "/{lexicon_id}", response_model=LexiconOut, summary="Show a lexicon", responses=_NOT_FOUND
)
def show(lexicon_id: LexiconId, tenant: Tenant, ctx: Ctx) -> LexiconOut:
    """The lexicon with its rules."""
    return lexicon_view(owned_lexicon(ctx, tenant.id, lexicon_id))


@router.get(
    "/{lexicon_id}/export",
    response_class=Response,
    response_model=None,
    summary="Export a lexicon as PLS",
    responses={**_NOT_FOUND, 200: {"content": {PLS_MEDIA_TYPE: {}}, "description": "PLS 1.0"}},
)
def export(lexicon_id: LexiconId, tenant: Tenant, ctx: Ctx) -> Response:
    """The lexicon as a W3C PLS 1.0 document, for Polly, Azure, ElevenLabs or shoal again."""
    lexicon = owned_lexicon(ctx, tenant.id, lexicon_id)
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", lexicon.name).strip("_") or lexicon.id
    return Response(
        export_lexicon(lexicon),
        media_type=PLS_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}.pls"'},
    )


@router.put(
    "/{lexicon_id}",
    response_model=LexiconOut,
    summary="Replace a lexicon",
    responses={**_NOT_FOUND, **JSON_BODY_ERRORS},
)
def replace(lexicon_id: LexiconId, body: LexiconIn, tenant: Tenant, ctx: Ctx) -> LexiconOut:
    """Replace the lexicon's name and rules; its version goes up by one.

    Jobs already submitted keep the text the old version gave them.
    """
    return lexicon_view(replace_lexicon(ctx, tenant.id, lexicon_id, body))


@router.delete(
    "/{lexicon_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Delete a lexicon",
    responses=_NOT_FOUND,
)
def delete(lexicon_id: LexiconId, tenant: Tenant, ctx: Ctx) -> Response:
    """Delete the lexicon; jobs that used it keep their text."""
    delete_lexicon(ctx, tenant.id, lexicon_id)
    return Response(status_code=204)
