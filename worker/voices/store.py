"""VoiceStore: a tenant's voices in Redis, one JSON string each plus an index.

Keys are under the tenant (:meth:`worker.keys.Keys.voice`), so one tenant
never reads another's voice, even knowing its id.  The samples themselves are
in the bucket; the API stores them before the record and deletes them after
it (:mod:`api.voices.service`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis

from worker.jobs.model import Job
from worker.keys import Keys
from worker.voices.model import Voice

log = logging.getLogger(__name__)

#: Most voices a tenant may keep.
MAX_VOICES_PER_TENANT = 500


class VoiceStore:
    """Create, read, update and delete a tenant's voices."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def count(self, tenant: str) -> int:
        """How many voices ``tenant`` keeps."""
        return int(self._r.zcard(self._keys.voices_by_tenant(tenant)))

    def create(self, voice: Voice) -> Voice:
        """Store a new voice (its id is new, so nothing is overwritten)."""
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._keys.voice(voice.tenant, voice.id), voice.model_dump_json())
        pipe.zadd(
            self._keys.voices_by_tenant(voice.tenant), {voice.id: int(voice.created_at * 1000)}
        )
        pipe.execute()
        log.info("voice %s: created (%d samples)", voice.id, len(voice.samples))
        return voice

    def get(self, tenant: str, voice_id: str) -> Voice | None:
        """The tenant's voice ``voice_id``, or None."""
        raw = self._r.get(self._keys.voice(tenant, voice_id))
        return None if raw is None else Voice.model_validate_json(raw)

    def exists(self, tenant: str, voice_id: str) -> bool:
        """True while the tenant keeps the voice ``voice_id``."""
        return bool(self._r.exists(self._keys.voice(tenant, voice_id)))

    def get_many(self, tenant: str, ids: Sequence[str]) -> list[Voice | None]:
        """The tenant's voices ``ids`` in order, None where there is none, in one round trip."""
        if not ids:
            return []
        raws = self._r.mget([self._keys.voice(tenant, i) for i in ids])
        return [None if raw is None else Voice.model_validate_json(raw) for raw in raws]

    def all(self, tenant: str) -> list[Voice]:
        """Every voice of ``tenant``, newest first."""
        members = self._r.zrevrange(self._keys.voices_by_tenant(tenant), 0, -1)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        return [v for v in self.get_many(tenant, ids) if v is not None]

    def update(self, tenant: str, voice_id: str, changes: dict[str, Any]) -> Voice | None:
        """Apply ``changes`` (field → value) to the voice; None if it does not exist."""
        key = self._keys.voice(tenant, voice_id)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    current = Voice.model_validate_json(raw)
                    updated = Voice.model_validate(
                        current.model_dump() | changes | {"updated_at": time.time()}
                    )
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json())
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue  # another update won; apply ours to its result

    def delete(self, tenant: str, voice_id: str) -> bool:
        """Delete the record; False if there was none."""
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._keys.voice(tenant, voice_id))
        pipe.zrem(self._keys.voices_by_tenant(tenant), voice_id)
        deleted, _ = pipe.execute()
        return bool(deleted)


def deleted_voice(store: VoiceStore, job: Job) -> str | None:
    """Why ``job`` cannot run if the voice it names was deleted after it was queued; else None.

    The job carries copies of the samples, but a voice deleted is withdrawn: its
    owner asked that it speak no more.
    """
    voice = job.request.voice
    if voice is None or store.exists(job.tenant, voice):
        return None
    return f"voice {voice!r} was deleted after the job was queued; submit it again with another"
