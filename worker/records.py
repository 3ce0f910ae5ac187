"""TenantRecords: a tenant's records of one kind in Redis, one JSON string each plus an index.

Lexicons and voices are kept the same way: the record under a key of the
tenant's own (so one tenant never reads another's, even knowing its id) and
its id in a sorted set by creation time.  Changes run under ``WATCH``, so two
at once give two changes, never one lost update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import redis
from pydantic import BaseModel


class _Record(Protocol):
    id: str
    tenant: str
    created_at: float


M = TypeVar("M", bound=BaseModel)


class TenantRecords(Generic[M]):
    """Create, read, change and delete records of ``model`` per tenant."""

    def __init__(
        self,
        client: redis.Redis,
        model: type[M],
        record_key: Callable[[str, str], str],
        index_key: Callable[[str], str],
    ) -> None:
        self._r = client
        self._model = model
        self._record_key = record_key
        self._index_key = index_key

    def count(self, tenant: str) -> int:
        """How many records ``tenant`` keeps."""
        return int(self._r.zcard(self._index_key(tenant)))

    def create(self, record: M) -> M:
        """Store a new record (its id is new, so nothing is overwritten)."""
        r: _Record = record  # type: ignore[assignment]
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._record_key(r.tenant, r.id), record.model_dump_json())
        pipe.zadd(self._index_key(r.tenant), {r.id: int(r.created_at * 1000)})
        pipe.execute()
        return record

    def get(self, tenant: str, record_id: str) -> M | None:
        """The tenant's record ``record_id``, or None."""
        raw = self._r.get(self._record_key(tenant, record_id))
        return None if raw is None else self._model.model_validate_json(raw)

    def exists(self, tenant: str, record_id: str) -> bool:
        """True while the tenant keeps the record ``record_id``."""
        return bool(self._r.exists(self._record_key(tenant, record_id)))

    def get_many(self, tenant: str, ids: Sequence[str]) -> list[M | None]:
        """The tenant's records ``ids`` in order, None where there is none, in one round trip."""
        if not ids:
            return []
        raws = self._r.mget([self._record_key(tenant, i) for i in ids])
        return [None if raw is None else self._model.model_validate_json(raw) for raw in raws]

    def all(self, tenant: str, *, newest_first: bool) -> list[M]:
        """Every record of ``tenant`` in creation order."""
        index = self._index_key(tenant)
        members = self._r.zrevrange(index, 0, -1) if newest_first else self._r.zrange(index, 0, -1)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        return [rec for rec in self.get_many(tenant, ids) if rec is not None]

    def change(self, tenant: str, record_id: str, change: Callable[[M], M]) -> M | None:
        """Store ``change(current)`` with ``updated_at`` now; None if there is no record."""
        key = self._record_key(tenant, record_id)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    updated = change(self._model.model_validate_json(raw))
                    updated = updated.model_copy(update={"updated_at": time.time()})
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json())
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue  # another change won; apply ours to its result

    def delete(self, tenant: str, record_id: str) -> bool:
        """Delete the record; False if there was none."""
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._record_key(tenant, record_id))
        pipe.zrem(self._index_key(tenant), record_id)
        deleted, _ = pipe.execute()
        return bool(deleted)
