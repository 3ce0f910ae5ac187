"""The sweep of incomplete multipart uploads: what an abort that failed left behind.

An upload that fails is aborted (:meth:`~worker.storage.client.Storage.upload_file`),
but when the store is down for the abort too, the upload stays, and the store
bills its parts until someone aborts it.  The reaper thread of every worker
(:mod:`worker.jobs.tasks`) calls :func:`start_sweep`: one worker per period
(:func:`sweep_period`) wins a claim in Redis and, in a thread of its own so
that a slow store never holds up the reaper, runs :func:`sweep_incomplete_uploads`:

* only shoal's own uploads are looked at (:func:`upload_scopes`): those under
  the staging prefix, under a configured tenant's ``<tenant>/`` (custom output
  keys, batch chapters and books) and those the output key template renders.
  Other keys of a shared bucket are never touched;
* an upload is aborted once it is ``SHOAL_S3_INCOMPLETE_UPLOAD_MAX_AGE_SECONDS``
  old both by the store's start date and by the time a sweep first saw it
  (:func:`is_stale`).  A store's date is not to be trusted everywhere (moto
  reports the same day in 2010 for every upload; a store's clock may be off),
  so a wrong date on either side can only delay a sweep, never abort an upload
  in progress;
* what is aborted is counted in Redis (:meth:`worker.keys.Keys.uploads_swept`),
  which ``/metrics`` shows as ``shoal_incomplete_uploads_swept_total``.
"""

from __future__ import annotations

import logging
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from worker.keys import Keys, decoded
from worker.settings import Settings
from worker.storage.client import Storage
from worker.storage.model import IncompleteUpload

__all__ = [
    "UploadScope",
    "claim_sweep",
    "is_stale",
    "start_sweep",
    "sweep_incomplete_uploads",
    "sweep_period",
    "upload_scopes",
]

log = logging.getLogger(__name__)

#: The longest wait between two sweeps: with the default age of a day, an
#: upload left behind is aborted at most an hour after it is a day old.
MAX_SWEEP_PERIOD = 3600.0
#: Job and batch ids as ``new_job_id`` and ``new_batch_id`` make them.
JOB_ID = r"job_[0-9a-f]+"
BATCH_ID = r"bat_[0-9a-f]+"
#: What each field of a key template renders as.
_FIELD = {
    "tenant": r"[A-Za-z0-9_.-]{1,64}",  # TenantConfig.id
    "job_id": JOB_ID,
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "ext": r"[a-z0-9]+",
}
#: One sweep at a time in this process (a sweep longer than its period must not
#: meet the next one).
_sweeping = threading.Lock()


@dataclass(frozen=True, slots=True)
class UploadScope:
    """Where shoal's uploads may be: a prefix to list, and a pattern keys must match."""

    prefix: str  # listed with this prefix; "" lists the whole bucket
    pattern: re.Pattern[str] | None = None  # None: every key under the prefix is shoal's

    def covers(self, key: str) -> bool:
        """Whether ``key`` is one of shoal's keys in this scope."""
        if not key.startswith(self.prefix):
            return False
        return self.pattern is None or self.pattern.fullmatch(key) is not None


def template_scope(key_template: str) -> UploadScope:
    """The keys a (checked) key template renders: its literal head, and a pattern of it all."""
    parsed = list(string.Formatter().parse(key_template))
    pattern = "".join(
        re.escape(literal) + (_FIELD[field] if field is not None else "")
        for literal, field, _spec, _conversion in parsed
    )
    head = parsed[0][0] if parsed else ""
    return UploadScope(head, re.compile(pattern))


def upload_scopes(
    key_template: str, staging_prefix: str, tenants: Iterable[str], cache_prefix: str = ""
) -> tuple[UploadScope, ...]:
    """Every place shoal writes to: staging, the segment cache, each tenant's prefix,
    the key template's keys."""
    staging = staging_prefix.strip("/")
    scopes = [
        # Without a staging prefix, staging keys start with their job's or batch's id.
        UploadScope(f"{staging}/")
        if staging
        else UploadScope("", re.compile(rf"(?:{JOB_ID}|{BATCH_ID})/.+"))
    ]
    if cache := cache_prefix.strip("/"):
        scopes.append(UploadScope(f"{cache}/"))
    scopes.extend(UploadScope(f"{tenant}/") for tenant in sorted(set(tenants)))
    scopes.append(template_scope(key_template))
    return tuple(scopes)


def sweep_period(max_age: float) -> float:
    """Seconds between two sweeps: half the age, at most an hour."""
    return min(max_age / 2, MAX_SWEEP_PERIOD)


def is_stale(initiated: datetime | None, first_seen: float, now: float, max_age: float) -> bool:
    """Whether an upload is old enough to abort: ``max_age`` since the store says it
    started (when it says) and since a sweep first saw it."""
    if now - first_seen < max_age:
        return False
    return initiated is None or now - initiated.timestamp() >= max_age


def claim_sweep(client: redis.Redis, keys: Keys, settings: Settings) -> bool:
    """Whether this caller sweeps this period (one caller per period, across workers)."""
    period = sweep_period(settings.s3_incomplete_upload_max_age_seconds)
    ttl_ms = max(1, int(period * 1000))
    return bool(client.set(keys.upload_sweep_claim(), "1", nx=True, px=ttl_ms))


def sweep_incomplete_uploads(
    storage: Storage,
    client: redis.Redis,
    keys: Keys,
    settings: Settings,
    *,
    now: float | None = None,
) -> int:
    """Abort shoal's stale incomplete uploads (see the module's docstring); returns how many.

    Call it after :func:`claim_sweep` (or through :func:`start_sweep`).  Raises
    :class:`~worker.storage.client.StorageError` if the store cannot list them;
    an abort that fails is logged and left for the next sweep.
    """
    now = time.time() if now is None else now
    max_age = settings.s3_incomplete_upload_max_age_seconds
    tenants = [tenant.id for tenant in settings.tenants]
    found: dict[str, IncompleteUpload] = {}
    scopes = upload_scopes(
        settings.s3_key_template, settings.s3_staging_prefix, tenants, settings.s3_cache_prefix
    )
    for scope in scopes:
        for upload in storage.list_incomplete_uploads(scope.prefix):
            if scope.covers(upload.key):
                found.setdefault(upload.upload_id, upload)
    seen = _first_seen(client, keys, found, now)
    swept = 0
    for upload_id, upload in found.items():
        if not is_stale(upload.initiated, seen[upload_id], now, max_age):
            continue
        if storage.abort_upload(upload.key, upload_id):
            pipe = client.pipeline()
            pipe.hdel(keys.uploads_seen(), upload_id)
            pipe.incr(keys.uploads_swept())
            pipe.execute()
            swept += 1
    if swept:
        log.info("swept %d incomplete upload(s) older than %ds", swept, max_age)
    return swept


def _first_seen(
    client: redis.Redis, keys: Keys, found: Mapping[str, IncompleteUpload], now: float
) -> dict[str, float]:
    """When a sweep first saw each upload of ``found`` (now, for new ones); uploads no
    longer there (completed or aborted) are forgotten."""
    name = keys.uploads_seen()
    pipe = client.pipeline()
    for upload_id in found:
        pipe.hsetnx(name, upload_id, repr(now))
    pipe.hgetall(name)
    stored = cast(dict[Any, Any], pipe.execute()[-1])
    seen = {decoded(k): float(v) for k, v in stored.items()}
    if gone := [upload_id for upload_id in seen if upload_id not in found]:
        client.hdel(name, *gone)
    return {upload_id: seen.get(upload_id, now) for upload_id in found}


def start_sweep(storage: Storage, client: redis.Redis, keys: Keys, settings: Settings) -> bool:
    """If this worker wins this period's claim, sweep in a background thread; returns
    whether a sweep started.  The claim costs one Redis request; the sweep's S3
    requests (retried through an outage) never hold up the caller."""
    return start_claimed(
        _sweeping,
        lambda: claim_sweep(client, keys, settings),
        lambda: sweep_incomplete_uploads(storage, client, keys, settings),
        name="shoal-upload-sweep",
        what="incomplete uploads",
    )


def start_claimed(
    running: threading.Lock,
    claim: Callable[[], bool],
    work: Callable[[], object],
    *,
    name: str,
    what: str,
) -> bool:
    """Run ``work`` in a thread named ``name`` if none runs (``running``) and this worker
    wins ``claim`` (one per period, all workers); returns whether it started.

    A failure is logged ("sweep of <what> failed"): the next period tries again.
    """
    if not running.acquire(blocking=False):
        return False  # the last one is still running
    try:
        claimed = claim()
    except BaseException:
        running.release()
        raise
    if not claimed:
        running.release()
        return False

    def run() -> None:
        try:
            work()
        except Exception:  # the next period's sweep tries again
            log.exception("sweep of %s failed", what)
        finally:
            running.release()

    threading.Thread(target=run, name=name, daemon=True).start()
    return True
