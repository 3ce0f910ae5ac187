"""VoiceStore: a tenant's voices in Redis, one JSON string each plus an index.

Keys are under the tenant (:meth:`worker.keys.Keys.voice`), so one tenant
never reads another's voice, even knowing its id.  The samples themselves are
in the bucket; the API stores them before the record and deletes them after
it (:mod:`api.voices.service`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from worker.jobs.model import Job
from worker.keys import Keys
from worker.records import TenantRecords
from worker.voices.model import Voice

log = logging.getLogger(__name__)

#: Most voices a tenant may keep.
MAX_VOICES_PER_TENANT = 500


class VoiceStore:
    """Create, read, update and delete a tenant's voices."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._records = TenantRecords(client, Voice, keys.voice, keys.voices_by_tenant)

    def count(self, tenant: str) -> int:
        """How many voices ``tenant`` keeps."""
        return self._records.count(tenant)

    def create(self, voice: Voice) -> Voice:
        """Store a new voice (its id is new, so nothing is overwritten)."""
        self._records.create(voice)
        log.info("voice %s: created (%d samples)", voice.id, len(voice.samples))
        return voice

    def get(self, tenant: str, voice_id: str) -> Voice | None:
        """The tenant's voice ``voice_id``, or None."""
        return self._records.get(tenant, voice_id)

    def exists(self, tenant: str, voice_id: str) -> bool:
        """True while the tenant keeps the voice ``voice_id``."""
        return self._records.exists(tenant, voice_id)

    def get_many(self, tenant: str, ids: Sequence[str]) -> list[Voice | None]:
        """The tenant's voices ``ids`` in order, None where there is none, in one round trip."""
        return self._records.get_many(tenant, ids)

    def all(self, tenant: str) -> list[Voice]:
        """Every voice of ``tenant``, newest first."""
        return self._records.all(tenant, newest_first=True)

    def update(self, tenant: str, voice_id: str, changes: dict[str, Any]) -> Voice | None:
        """Apply ``changes`` (field → value) to the voice; None if it does not exist."""
        return self._records.change(
            tenant, voice_id, lambda current: Voice.model_validate(current.model_dump() | changes)
        )

    def delete(self, tenant: str, voice_id: str) -> bool:
        """Delete the record; False if there was none."""
        return self._records.delete(tenant, voice_id)


def deleted_voice(store: VoiceStore, job: Job) -> str | None:
    """Why ``job`` cannot run if the voice it names was deleted after it was queued; else None.

    The job carries copies of the samples, but a voice deleted is withdrawn: its
    owner asked that it speak no more.
    """
    named = [job.request.voice] if job.request.voice is not None else []
    named += list(job.request.passage_voices)  # those of its <voice> passages
    if not named:
        return None
    for voice, record in zip(named, store.get_many(job.tenant, named), strict=True):
        if record is None:
            return (
                f"voice {voice!r} was deleted after the job was queued; "
                "submit it again with another"
            )
    return None
