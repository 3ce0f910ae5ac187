"""LexiconStore: a tenant's lexicons in Redis, one JSON string each plus an index.

Keys are under the tenant (:meth:`worker.keys.Keys.lexicon`), so one tenant
never reads another's lexicon, even knowing its id.  A replace bumps the
version under ``WATCH``: two replaces at once give two versions, never one
lost update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis

from worker.keys import Keys
from worker.lexicons.model import Lexicon, Rule

log = logging.getLogger(__name__)

#: Most lexicons a tenant may keep.
MAX_LEXICONS_PER_TENANT = 200


class LexiconStore:
    """Create, read, replace and delete a tenant's lexicons."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def count(self, tenant: str) -> int:
        """How many lexicons ``tenant`` keeps."""
        return int(self._r.zcard(self._keys.lexicons_by_tenant(tenant)))

    def create(self, lexicon: Lexicon) -> Lexicon:
        """Store a new lexicon (its id is new, so nothing is overwritten)."""
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._keys.lexicon(lexicon.tenant, lexicon.id), lexicon.model_dump_json())
        pipe.zadd(
            self._keys.lexicons_by_tenant(lexicon.tenant),
            {lexicon.id: int(lexicon.created_at * 1000)},
        )
        pipe.execute()
        log.info("lexicon %s: created (%d rules)", lexicon.id, len(lexicon.rules))
        return lexicon

    def get(self, tenant: str, lexicon_id: str) -> Lexicon | None:
        """The tenant's lexicon ``lexicon_id``, or None."""
        raw = self._r.get(self._keys.lexicon(tenant, lexicon_id))
        return None if raw is None else Lexicon.model_validate_json(raw)

    def get_many(self, tenant: str, ids: Sequence[str]) -> list[Lexicon | None]:
        """The tenant's lexicons ``ids`` in order, None where there is none, in one round trip."""
        if not ids:
            return []
        raws = self._r.mget([self._keys.lexicon(tenant, i) for i in ids])
        return [None if raw is None else Lexicon.model_validate_json(raw) for raw in raws]

    def all(self, tenant: str) -> list[Lexicon]:
        """Every lexicon of ``tenant``, oldest first."""
        members = self._r.zrange(self._keys.lexicons_by_tenant(tenant), 0, -1)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        return [lex for lex in self.get_many(tenant, ids) if lex is not None]

    def replace(
        self,
        tenant: str,
        lexicon_id: str,
        *,
        name: str,
        language: str,
        alphabet: str,
        rules: Sequence[Rule],
    ) -> Lexicon | None:
        """Replace the lexicon's contents as its next version; None if it does not exist."""
        key = self._keys.lexicon(tenant, lexicon_id)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    current = Lexicon.model_validate_json(raw)
                    updated = current.model_copy(
                        update={
                            "name": name,
                            "language": language,
                            "alphabet": alphabet,
                            "rules": list(rules),
                            "version": current.version + 1,
                            "updated_at": time.time(),
                        }
                    )
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json())
                    pipe.execute()
                    log.info("lexicon %s: version %d", lexicon_id, updated.version)
                    return updated
                except redis.WatchError:
                    continue  # another replace won; read its version and go again

    def delete(self, tenant: str, lexicon_id: str) -> bool:
        """Delete the lexicon; False if there was none.  Jobs that used it keep their text."""
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._keys.lexicon(tenant, lexicon_id))
        pipe.zrem(self._keys.lexicons_by_tenant(tenant), lexicon_id)
        deleted, _ = pipe.execute()
        return bool(deleted)
