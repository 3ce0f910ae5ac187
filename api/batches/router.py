"""``/v1/batches``: submit many texts at once, follow them, cancel them, retry one item."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response

from api.batches.actions import cancel_batch, retry_item
from api.batches.schemas import BatchCreate, BatchOut, ItemRetryIn
from api.batches.service import PlannedItem, batches_of, submit_batch
from api.batches.views import batch_out, current_view
from api.deps import Ctx, Tenant
from api.errors import NotFound
from api.jobs.service import check_idempotency_key
from api.schemas import ErrorOut
from worker.batches.model import Batch, BookInfo

router = APIRouter(
    prefix="/batches",
    tags=["batches"],
    responses={
        401: {"model": ErrorOut, "description": "missing or unknown API key"},
        422: {"model": ErrorOut, "description": "invalid input; `field` names it"},
        429: {"model": ErrorOut, "description": "rate limited; see Retry-After"},
    },
)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such batch for this tenant"}
}

BatchId = Annotated[str, Path(min_length=1, max_length=128, description="a batch id, `bat_…`")]


def owned_batch(batch_id: BatchId, tenant: Tenant, ctx: Ctx) -> Batch:
    """The batch in the path if it is the tenant's; 404 otherwise (ids do not leak)."""
    batch = batches_of(ctx).get_for_tenant(batch_id, tenant.id)
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
        409: {"model": ErrorOut, "description": "Idempotency-Key used with another body"},
        413: {"model": ErrorOut, "description": "an item, or all of them, over the limit"},
        503: {"model": ErrorOut, "description": "the queue is unreachable; nothing was made"},
    },
)
def create_batch(
    body: BatchCreate,
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="retries with the same key and body return the same batch",
        ),
    ] = None,
) -> BatchOut:
    """Queue every item as a job of its own (on the bulk queue, behind narration jobs);
    once all have ended, the combined book and the manifest are built."""
    key = check_idempotency_key(idempotency_key)
    items = [
        PlannedItem(title=item.title, text=item.text, voice=item, field=f"items.{i}")
        for i, item in enumerate(body.items)
    ]
    submission = submit_batch(
        ctx,
        tenant,
        items=items,
        options=body,
        book=BookInfo(title=(body.title or "").strip() or "Untitled", author=body.author),
        cover=None,
        idempotency=("batches", key) if key else None,
        request_fingerprint=body.model_dump(mode="json"),
    )
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    if not submission.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return batch_out(current_view(ctx, submission.batch), ctx.storage)


@router.get("/{batch_id}", response_model=BatchOut, summary="Show a batch", responses=_NOT_FOUND)
def get_batch(batch: OwnedBatch, ctx: Ctx) -> BatchOut:
    """Status, counts, progress, billing, every item, and the outputs with presigned URLs."""
    return batch_out(current_view(ctx, batch), ctx.storage)


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchOut,
    summary="Cancel a batch",
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "the batch has already finished"},
    },
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
        409: {
            "model": ErrorOut,
            "description": "the item is still running, or the batch was canceled",
        },
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
