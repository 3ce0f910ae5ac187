"""``/v1/batches``: submit many texts at once, list and follow them, cancel them, retry one item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.batches import service
from api.batches.actions import cancel_batch, rerender, retry_item
from api.batches.listing import BatchFilter, list_batches
from api.batches.schemas import BatchCreate, BatchKind, BatchList, BatchOut, ItemRetryIn, RerenderIn
from api.batches.views import batch_out, current_view
from api.bodies import BodyRoute
from api.deps import Ctx, Tenant
from api.errors import NotFound
from api.idempotency import IdempotencyKey, answer_created
from api.schemas import CREATE_ERRORS, V1_ERRORS, error_responses
from worker.batches.model import Batch, BatchStatus

router = APIRouter(prefix="/batches", tags=["batches"], responses=V1_ERRORS, route_class=BodyRoute)

_NOT_FOUND = error_responses({404: "no such batch for this tenant"})

BatchId = Annotated[str, Path(min_length=1, max_length=128, description="a batch id, `bat_…`")]


def owned_batch(batch_id: BatchId, tenant: Tenant, ctx: Ctx) -> Batch:
    """The batch in the path if it is the tenant's; 404 otherwise (ids do not leak)."""
    batch = service.batches_of(ctx).get_for_tenant(batch_id, tenant.id)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}", field="batch_id")
    return batch


OwnedBatch = Annotated[Batch, Depends(owned_batch)]


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    summary="Submit a batch",
    responses={
        200: {
            "model": BatchOut,
            "description": "the batch an earlier request with this Idempotency-Key created",
        },
        **CREATE_ERRORS,
        **error_responses({413: "an item, all of them, or the whole body over the limit"}),
    },
)
def create_batch(
    body: BatchCreate,
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BatchOut:
    """Queue every item as a job of its own (on the bulk queue, behind narration jobs);
    once all have ended, the combined book and the manifest are built."""
    submission = service.create_batch(ctx, tenant, body, idempotency_key)
    batch = submission.value
    answer_created(response, f"/v1/batches/{batch.id}", submission.created)
    return batch_out(current_view(ctx, batch), ctx.storage)


@router.get("", response_model=BatchList, summary="List batches")
def list_all(
    tenant: Tenant,
    ctx: Ctx,
    status: BatchStatus | None = None,
    kind: Annotated[
        BatchKind | None, Query(description="`book`: made by POST /v1/books; `batch`: the others")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> BatchList:
    """The tenant's batches and books, newest first, one page at a time: each one's
    status, title, kind and item counts (``GET /v1/batches/{id}`` shows the rest)."""
    return list_batches(ctx, tenant.id, BatchFilter(status=status, kind=kind), limit, cursor)


@router.get("/{batch_id}", response_model=BatchOut, summary="Show a batch", responses=_NOT_FOUND)
def get_batch(batch: OwnedBatch, ctx: Ctx) -> BatchOut:
    """Status, counts, progress, billing, every item, and the outputs with presigned URLs."""
    return batch_out(current_view(ctx, batch), ctx.storage)


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchOut,
    summary="Cancel a batch",
    responses={**_NOT_FOUND, **error_responses({409: "the batch has already finished"})},
)
def cancel(batch: OwnedBatch, ctx: Ctx) -> BatchOut:
    """Cancel every item not yet finished; the finished ones keep their files."""
    return batch_out(cancel_batch(ctx, batch), ctx.storage)


@router.post(
    "/{batch_id}/items/{n}/retry",
    status_code=202,
    response_model=BatchOut,
    summary="Render one item again",
    responses={
        **_NOT_FOUND,
        **error_responses({409: "the item is still running, or the batch was canceled"}),
    },
)
def retry(
    batch: OwnedBatch,
    ctx: Ctx,
    n: Annotated[int, Path(ge=0, description="the item's index, from 0")],
    body: ItemRetryIn | None = None,
) -> BatchOut:
    """A new job renders item ``n`` (with the changes in the body, if any) and replaces the
    old one; the combined outputs are rebuilt, changing only that item's part."""
    return batch_out(retry_item(ctx, batch, n, body), ctx.storage)


@router.post(
    "/{batch_id}/rerender",
    status_code=202,
    response_model=BatchOut,
    summary="Render again what the lexicons change",
    responses={
        **_NOT_FOUND,
        **error_responses({409: "an item is still running, or the batch was canceled"}),
    },
)
def rerender_batch(batch: OwnedBatch, ctx: Ctx, body: RerenderIn | None = None) -> BatchOut:
    """After a lexicon changed: every item whose text its lexicons now respell otherwise
    is rendered again (as by its retry), and the combined outputs are rebuilt."""
    return batch_out(rerender(ctx, batch, body or RerenderIn()), ctx.storage)
