"""Pages of jobs: which index to walk, what to keep, and the cursor between pages.

The job store indexes every job in sorted sets (:mod:`worker.jobs.store`): all
jobs, by tenant and by status, scored by creation time in ms, and a batch's
jobs scored by item number.  A listing walks one of them in chunks — the
batch's index when there is a batch filter (it gives the order), else the
smallest that applies — and checks every record against the whole
:class:`JobFilter`, so loose score bounds and index entries of records that
changed since never leak into a page.

The cursor is the last entry of a page (score and member) in URL-safe base64;
the next page starts strictly after it, so jobs created after the first page
never shift later pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker.jobs.model import Job, JobStatus
from worker.keys import Keys, decoded

#: Records for a run of index entries, in order (the store prunes entries of gone records).
Loader = Callable[[list["Position"]], list[tuple[Job, "Position"]]]


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a listing keeps: every field that is not ``None`` must match."""

    tenant: str | None = None
    status: JobStatus | None = None
    batch_id: str | None = None
    created_after: float | None = None  # epoch seconds, exclusive
    created_before: float | None = None  # epoch seconds, exclusive

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes every filter given."""
        return (
            (self.tenant is None or job.tenant == self.tenant)
            and (self.status is None or job.status == self.status)
            and (self.batch_id is None or job.batch_id == self.batch_id)
            and (self.created_after is None or job.created_at > self.created_after)
            and (self.created_before is None or job.created_at < self.created_before)
        )


@dataclass(frozen=True, slots=True)
class Position:
    """Where a listing stands in its index: an entry's score and member."""

    score: float
    member: str

    def encode(self) -> str:
        """The opaque cursor that resumes a listing after this entry."""
        raw = json.dumps([self.score, self.member], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The entry a cursor names; ``ValueError`` for one :meth:`encode` did not make."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            score, member = json.loads(raw)
            return cls(float(score), str(member))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise ValueError(f"invalid cursor {cursor!r}") from exc

    def before(self, other: Position, ascending: bool) -> bool:
        """True if ``self`` comes strictly before ``other`` in the walk's order."""
        # Redis orders equal scores by member bytes; job ids are ASCII, so str order matches.
        mine, theirs = (self.score, self.member), (other.score, other.member)
        return mine < theirs if ascending else mine > theirs


@dataclass(frozen=True, slots=True)
class Walk:
    """One index, walked in one direction between two score bounds (Redis syntax)."""

    index: str
    ascending: bool
    low: str
    high: str
    filters: tuple[str, ...]  # every index the filter implies; pruned with the walked one


def plan_walk(client: redis.Redis, keys: Keys, want: JobFilter) -> Walk:
    """The cheapest walk that finds every job ``want`` keeps, in listing order.

    Newest first; a batch's jobs in item order instead (a book's chapters read
    front to back).
    """
    filters = [keys.jobs_by_tenant(want.tenant)] if want.tenant is not None else []
    if want.status is not None:
        filters.append(keys.jobs_by_status(want.status))
    if want.batch_id is not None:
        # The batch index is scored by item number, so it must lead the walk.
        index = keys.jobs_by_batch(want.batch_id)
        return Walk(index, True, "-inf", "+inf", (*filters, index))
    index = _smallest(client, filters or [keys.jobs_all()])
    # Index scores are ms floats: bound loosely, then filter exactly on the record.
    after, before = want.created_after, want.created_before
    low = repr(after * 1000 - 1) if after is not None else "-inf"
    high = repr(before * 1000 + 1) if before is not None else "+inf"
    return Walk(index, False, low, high, tuple(filters))


def collect(
    client: redis.Redis,
    walk: Walk,
    want: JobFilter,
    anchor: Position | None,
    limit: int,
    load: Loader,
) -> list[tuple[Job, Position]]:
    """Jobs after ``anchor`` that ``want`` keeps, in walk order: ``limit`` + 1 if there are.

    The one past ``limit`` tells the caller that another page follows.
    """
    found: list[tuple[Job, Position]] = []
    chunk = min(max(2 * (limit + 1), 32), 512)
    while len(found) <= limit:
        if walk.ascending:
            start = repr(anchor.score) if anchor else walk.low
            rows = client.zrangebyscore(walk.index, start, walk.high, 0, chunk, withscores=True)
        else:
            start = repr(anchor.score) if anchor else walk.high
            rows = client.zrevrangebyscore(walk.index, start, walk.low, 0, chunk, withscores=True)
        entries = [Position(float(s), decoded(m)) for m, s in cast(Any, rows)]
        # The range starts at the anchor's score inclusive: skip what was already seen.
        fresh = [e for e in entries if anchor is None or anchor.before(e, walk.ascending)]
        if fresh:
            found += [(job, entry) for job, entry in load(fresh) if want.matches(job)]
            anchor = fresh[-1]
        elif len(entries) == chunk:
            chunk *= 2  # a run of equal scores longer than the chunk: widen, don't loop
            continue
        if len(entries) < chunk:
            break
    return found


def _smallest(client: redis.Redis, indexes: list[str]) -> str:
    """The index with the fewest entries: the cheapest to walk and filter."""
    if len(indexes) == 1:
        return indexes[0]
    pipe = client.pipeline()
    for index in indexes:
        pipe.zcard(index)
    sizes = pipe.execute()
    return min(zip(sizes, indexes, strict=True))[1]
