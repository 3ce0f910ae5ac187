"""What ``GET /v1/batches`` shows: a tenant's batches, newest first, a page at a time.

The tenant's index (``Keys.batches_by_tenant``, scored by creation time) is
walked newest first in chunks (:meth:`worker.batches.store.BatchStore.newest`);
each chunk's batches get their status from their items' job statuses, read in
one round trip, and are kept if they pass the :class:`BatchFilter`.  Showing
only reads: index entries of expired records are pruned, as job listings do,
and nothing else is written.

The cursor is the last entry of a page (score and member), as for jobs
(:class:`worker.jobs.listing.Position`): the next page starts strictly after
it, so batches created after the first page never shift later pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from api.batches.schemas import BatchKind, BatchList, BatchSummaryLinks, BatchSummaryOut
from api.batches.service import UNTITLED, batches_of
from api.deps import ApiContext
from api.errors import InvalidInput
from api.schemas import when
from worker.batches.model import Batch, BatchStatus, derive_status
from worker.jobs.listing import Position
from worker.jobs.model import JobStatus

#: Most index entries read in one round trip.
MAX_CHUNK = 512


@dataclass(frozen=True, slots=True)
class BatchFilter:
    """What a listing keeps: every field that is not ``None`` must match."""

    status: BatchStatus | None = None
    kind: BatchKind | None = None

    def matches(self, summary: BatchSummaryOut) -> bool:
        """Whether ``summary`` passes every filter given."""
        return (self.status is None or summary.status == self.status) and (
            self.kind is None or summary.kind == self.kind
        )


def kind_of(batch: Batch) -> BatchKind:
    """A book if it was made from an uploaded file (its book has a kind), else a batch."""
    return BatchKind.BOOK if batch.book.kind is not None else BatchKind.BATCH


def title_of(batch: Batch) -> str:
    """The book's title; for a batch sent without one, its first item's title."""
    if batch.book.kind is None and batch.book.title == UNTITLED and batch.items:
        return batch.items[0].title
    return batch.book.title


def summarize(batch: Batch, statuses: list[JobStatus | None]) -> BatchSummaryOut:
    """The listing's view of ``batch``, given its items' job statuses (None: gone)."""
    status = derive_status(batch, statuses)
    done = sum(s is JobStatus.SUCCEEDED for s in statuses)
    # A gone job counts as failed, as on the batch's own page.
    failed = sum(s is None or s in (JobStatus.FAILED, JobStatus.CANCELED) for s in statuses)
    base = f"/v1/batches/{batch.id}"
    return BatchSummaryOut(
        id=batch.id,
        status=status,
        kind=kind_of(batch),
        title=title_of(batch),
        author=batch.book.author,
        file_kind=batch.book.kind,
        items_total=len(batch.items),
        items_done=done,
        items_failed=failed,
        created_at=datetime.fromtimestamp(batch.created_at, UTC),
        finished_at=when(batch.finished_at) if status.terminal else None,
        links=BatchSummaryLinks(self=base, jobs=f"/v1/jobs?batch_id={batch.id}"),
    )


def parse_cursor(cursor: str | None) -> Position | None:
    """The entry a cursor names; 422 naming ``cursor`` for one this API did not hand out."""
    if cursor is None:
        return None
    try:
        anchor = Position.decode(cursor)
    except ValueError as exc:
        raise InvalidInput("cursor: not a cursor this API handed out", field="cursor") from exc
    if not math.isfinite(anchor.score) or not anchor.member:
        raise InvalidInput("cursor: not a cursor this API handed out", field="cursor")
    return anchor


def list_batches(
    ctx: ApiContext, tenant: str, want: BatchFilter, limit: int, cursor: str | None
) -> BatchList:
    """One page of the tenant's batches that ``want`` keeps, and the next page's cursor."""
    store = batches_of(ctx)
    anchor = parse_cursor(cursor)
    chunk = min(max(2 * (limit + 1), 32), MAX_CHUNK)
    found: list[tuple[BatchSummaryOut, Position]] = []
    while len(found) <= limit:
        run, go_on = store.newest(tenant, anchor, chunk)
        # Every item's status of the whole chunk in one round trip, then split per batch.
        statuses = store.statuses([job_id for batch, _ in run for job_id in batch.job_ids])
        start = 0
        for batch, entry in run:
            end = start + len(batch.items)
            summary = summarize(batch, statuses[start:end])
            start = end
            if want.matches(summary):
                found.append((summary, entry))
        if go_on is None:
            break
        anchor = go_on
    page = found[:limit]
    more = len(found) > limit
    return BatchList(
        data=[summary for summary, _ in page],
        next_cursor=page[-1][1].encode() if more else None,
    )
