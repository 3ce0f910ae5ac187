"""LexiconStore: a tenant's lexicons in Redis, one JSON string each plus an index.

Keys are under the tenant (:meth:`worker.keys.Keys.lexicon`), so one tenant
never reads another's lexicon, even knowing its id.  A replace bumps the
version under ``WATCH``: two replaces at once give two versions, never one
lost update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from worker.keys import Keys
from worker.lexicons.model import Lexicon, Rule
from worker.records import TenantRecords

log = logging.getLogger(__name__)

#: Most lexicons a tenant may keep.
MAX_LEXICONS_PER_TENANT = 200


class LexiconStore:
    """Create, read, replace and delete a tenant's lexicons."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._records = TenantRecords(client, Lexicon, keys.lexicon, keys.lexicons_by_tenant)

    def count(self, tenant: str) -> int:
        """How many lexicons ``tenant`` keeps."""
        return self._records.count(tenant)

    def create(self, lexicon: Lexicon) -> Lexicon:
        """Store a new lexicon (its id is new, so nothing is overwritten)."""
        self._records.create(lexicon)
        log.info("lexicon %s: created (%d rules)", lexicon.id, len(lexicon.rules))
        return lexicon

    def get(self, tenant: str, lexicon_id: str) -> Lexicon | None:
        """The tenant's lexicon ``lexicon_id``, or None."""
        return self._records.get(tenant, lexicon_id)

    def get_many(self, tenant: str, ids: Sequence[str]) -> list[Lexicon | None]:
        """The tenant's lexicons ``ids`` in order, None where there is none, in one round trip."""
        return self._records.get_many(tenant, ids)

    def all(self, tenant: str) -> list[Lexicon]:
        """Every lexicon of ``tenant``, oldest first."""
        return self._records.all(tenant, newest_first=False)

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

        def next_version(current: Lexicon) -> Lexicon:
            fields = {"name": name, "language": language, "alphabet": alphabet}
            return current.model_copy(
                update=fields | {"rules": list(rules), "version": current.version + 1}
            )

        updated = self._records.change(tenant, lexicon_id, next_version)
        if updated is not None:
            log.info("lexicon %s: version %d", lexicon_id, updated.version)
        return updated

    def delete(self, tenant: str, lexicon_id: str) -> bool:
        """Delete the lexicon; False if there was none.  Jobs that used it keep their text."""
        return self._records.delete(tenant, lexicon_id)
