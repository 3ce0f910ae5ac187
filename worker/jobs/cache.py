"""The segment cache: a finished segment's audio kept under the address of its sound.

A segment's *address* (:func:`sound_address`) is a SHA-256 of everything that
decides how it sounds: the text actually sent (after lexicons, without markup),
the tenant, the provider endpoint and model, and every field of the
:class:`~worker.fish.TTSRequest` (voice, prosody, temperature, top_p, sample
rate, format, ...), with reference audio as the digest of its bytes.  Nothing
else goes in: not the job, the segment's place in the text, the output format
or the silence after it, so the same sound asked for again is found again.

The audio is the segment's raw PCM, one object per address under the tenant's
own prefix (:func:`worker.storage.model.cache_key`), so tenants never share
it.  Its metadata says what it must be (:class:`CachedAudio`: bytes, sample rate,
SHA-256 of the PCM, the address); :meth:`SegmentCache.fetch` checks all of it,
and that the audio is long enough for its text, before a job uses it.  An object
that fails is deleted and the segment is synthesised again.

When a job last took each object from the cache is kept in Redis
(:meth:`worker.keys.Keys.cache_used`; an upload's own date counts as a use);
:func:`sweep_cache` deletes those unused for ``SHOAL_SEGMENT_CACHE_DAYS``, from
every worker's reaper, one worker per period (:func:`start_cache_sweep`).

A job with ``cache: false`` has no :class:`SegmentCache` (:func:`segment_cache`):
it reads nothing from the cache and adds nothing to it, and its segments are
staged as before, so a cached take is never replaced under a job that uses it.
Two jobs that miss the same address at once both synthesise it; the second
upload replaces the first with audio of the same request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from worker.audio import format_info, provider_pcm_rate
from worker.audio.level import PASSAGE_LEVEL_DB
from worker.digest import sha256_bytes, sha256_file
from worker.fish import AudioFormat, Prosody, ReferenceAudio, TTSRequest
from worker.jobs.model import Job, JobRequest
from worker.jobs.truncation import AudioTruncated, check_duration
from worker.keys import Keys
from worker.settings import Settings
from worker.storage.client import ObjectNotFound, Storage
from worker.storage.model import cache_key
from worker.storage.sweep import start_claimed
from worker.timings import InvalidMarks, Mark, marks_from_json

__all__ = [
    "CachedAudio",
    "SegmentCache",
    "segment_cache",
    "segment_request",
    "sound_address",
    "start_cache_sweep",
    "sweep_cache",
]

log = logging.getLogger(__name__)

#: Bumped when what an address covers changes, so old objects are simply not found.
ADDRESS_VERSION = 1
#: The longest wait between two sweeps of the cache.
MAX_CACHE_SWEEP_PERIOD = 6 * 3600.0
#: Keys asked about in Redis per request while sweeping.
SWEEP_BATCH = 1000
_sweeping = threading.Lock()


def segment_request(request: JobRequest, voice: str | None = None) -> TTSRequest:
    """The request a job's segments send, built from its record as the worker builds
    it (:func:`worker.jobs.synth.tts_request`), with ``voice`` that of a ``<voice>``
    passage; for the API, which predicts addresses, so reference audio is not decoded.
    """
    rate = request.sample_rate or format_info(request.format).default_sample_rate
    chosen = request.passage_voices[voice] if voice is not None else request
    return TTSRequest(
        format=AudioFormat.PCM,
        sample_rate=provider_pcm_rate(rate),
        reference_id=chosen.reference_id,
        references=[ReferenceAudio(audio=c.audio, text=c.text) for c in chosen.references],
        prosody=request.prosody,
        latency=request.latency,
        normalize=request.normalize,
        temperature=request.temperature,
        top_p=request.top_p,
        repetition_penalty=request.repetition_penalty,
    )


def passage_level(request: JobRequest) -> float | None:
    """The speech level a job's segments are brought to: one level for all, in a job
    whose text has ``<voice>`` passages (:mod:`worker.audio.level`); else None."""
    return PASSAGE_LEVEL_DB if request.passage_voices else None


def _reference(ref: ReferenceAudio, digest: Callable[[bytes], str]) -> dict[str, str]:
    return {"audio_sha256": digest(ref.audio), "text": ref.text}


def sound_address(
    *,
    tenant: str,
    text: str,
    request: TTSRequest,
    endpoint: str,
    model: str,
    level_db: float | None = None,
    digest: Callable[[bytes], str] = sha256_bytes,
) -> str:
    """The content address of one segment's audio (hex SHA-256); see the module docstring.

    Every field of ``request`` but its ``text`` goes in as the request would be
    sent; unset values that mean a default (no prosody, no sample rate) count as
    that default, so two requests that sound the same get one address.
    ``level_db`` is the speech level the worker brings the audio to, if any
    (:mod:`worker.audio.level`): it changes the samples kept.  ``digest`` gives a
    reference clip's SHA-256 (a job's cache remembers them: every segment names the
    same clips).
    """
    fields = request.model_dump(mode="json", exclude={"text", "references"})
    fields["prosody"] = (request.prosody or Prosody()).model_dump(mode="json")
    fields["sample_rate"] = request.effective_sample_rate
    fields["references"] = [
        [_reference(r, digest) for r in item]
        if isinstance(item, list)
        else _reference(item, digest)
        for item in request.references
    ]
    document = {
        "v": ADDRESS_VERSION,
        "tenant": tenant,
        "endpoint": endpoint,
        "model": model,
        "text": text,
        "request": fields,
        "level_db": level_db,
    }
    encoded = json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return sha256_bytes(encoded.encode("ascii"))


@dataclass(frozen=True, slots=True)
class CachedAudio:
    """What a cache object must hold, as its metadata says."""

    address: str
    bytes: int
    sample_rate: int
    sha256: str  # of the PCM

    @property
    def duration_s(self) -> float:
        return self.bytes / 2 / self.sample_rate

    def metadata(self) -> dict[str, str]:
        """The object's ``x-amz-meta-*``."""
        return {
            "address": self.address,
            "pcm-bytes": str(self.bytes),
            "sample-rate": str(self.sample_rate),
            "pcm-sha256": self.sha256,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> CachedAudio | None:
        """The values of :meth:`metadata`, or None when any is missing or garbled."""
        try:
            return cls(
                address=meta["address"],
                bytes=int(meta["pcm-bytes"]),
                sample_rate=int(meta["sample-rate"]),
                sha256=meta["pcm-sha256"],
            )
        except (KeyError, ValueError):
            return None


class SegmentCache:
    """One tenant's segment cache, as one job uses it (blocking: call it from a thread)."""

    def __init__(
        self,
        storage: Storage,
        client: redis.Redis,
        keys: Keys,
        *,
        tenant: str,
        endpoint: str,
        model: str,
        prefix: str,
    ) -> None:
        self.storage = storage
        self.client = client
        self.keys = keys
        self.tenant = tenant
        self.endpoint = endpoint
        self.model = model
        self.prefix = prefix
        self._digests: dict[bytes, str] = {}  # reference clips' (one job's, a few)

    def address(self, text: str, request: TTSRequest, *, level_db: float | None = None) -> str:
        """The address of ``text`` spoken as ``request`` asks, for this tenant."""
        return sound_address(
            tenant=self.tenant,
            text=text,
            request=request,
            endpoint=self.endpoint,
            model=self.model,
            level_db=level_db,
            digest=self._digest,
        )

    def _digest(self, audio: bytes) -> str:
        # A bytes key keeps its hash: a clip seen before is found without reading it.
        if audio not in self._digests:
            self._digests[audio] = sha256_bytes(audio)
        return self._digests[audio]

    def key(self, address: str) -> str:
        """The object key of ``address`` in this tenant's cache."""
        return cache_key(self.prefix, self.tenant, address)

    def fetch(self, address: str, path: Path, text: str, request: TTSRequest) -> CachedAudio | None:
        """The cached audio of ``address``, downloaded to ``path`` and checked; None on a miss.

        An object that fails a check (metadata, size, digest, a duration too short
        for ``text``) is deleted and counts as a miss.
        """
        key = self.key(address)
        try:
            head = self.storage.head(key)
        except ObjectNotFound:
            return None
        found = CachedAudio.from_metadata(head["metadata"])
        problem = _metadata_problem(found, head["bytes"], address, request.effective_sample_rate)
        if found is not None and problem is None:
            try:
                self.storage.download_file(key, path)
            except ObjectNotFound:  # swept meanwhile
                return None
            problem = _audio_problem(found, path, text, request.speed)
        if found is None or problem is not None:
            log.warning("segment cache %s: %s; deleted, synthesised again", key, problem)
            path.unlink(missing_ok=True)
            self.storage.delete(key)
            self.client.zrem(self.keys.cache_used(), key)
            return None
        self.touch(key)
        return found

    def put(self, address: str, path: Path, sample_rate: int) -> str:
        """Store the PCM at ``path`` as the audio of ``address``; returns its key."""
        key = self.key(address)
        audio = CachedAudio(address, path.stat().st_size, sample_rate, sha256_file(path))
        self.storage.upload_file(
            path, key, content_type="application/octet-stream", metadata=audio.metadata()
        )
        # No stamp in Redis: the upload's own date counts as its last use (sweep_cache).
        return key

    def marks_key(self, address: str) -> str:
        """The object beside ``address``'s audio that keeps its word marks."""
        return f"{self.key(address)}.marks.json"

    def put_marks(self, address: str, marks: Sequence[Mark]) -> None:
        """Keep the word marks of ``address``'s audio (a job that asked for timings)."""
        body = json.dumps([m.to_json() for m in marks], separators=(",", ":")).encode()
        self.storage.put_bytes(self.marks_key(address), body, content_type="application/json")

    def fetch_marks(self, address: str) -> list[Mark] | None:
        """The word marks kept for ``address``; None if there are none (or they are
        unreadable: the segment is then spoken again, with its timings)."""
        key = self.marks_key(address)
        try:
            marks = marks_from_json(json.loads(self.storage.get_bytes(key)))
        except ObjectNotFound:
            return None
        except (ValueError, TypeError, InvalidMarks) as exc:
            log.warning("segment cache %s: unreadable marks (%s); spoken again", key, exc)
            return None
        self.touch(key)  # kept as long as its audio is
        return marks

    def touch(self, key: str) -> None:
        """Note that ``key`` was used now: the sweep keeps it another retention period."""
        self.client.zadd(self.keys.cache_used(), {key: time.time()})


def _metadata_problem(
    found: CachedAudio | None, size: int, address: str, sample_rate: int
) -> str | None:
    """What is wrong with a cache object by its metadata and size, if anything."""
    if found is None:
        return "its metadata is missing or garbled"
    if found.address != address:
        return f"it holds the audio of {found.address}"
    if found.sample_rate != sample_rate:
        return f"its rate is {found.sample_rate} Hz, not {sample_rate}"
    if found.bytes != size or size % 2:
        return f"it has {size} bytes where its metadata says {found.bytes}"
    return None


def _audio_problem(found: CachedAudio, path: Path, text: str, speed: float) -> str | None:
    """What is wrong with the downloaded audio itself, if anything."""
    size = path.stat().st_size
    if size != found.bytes:
        return f"{size} bytes arrived where {found.bytes} were stored"
    if sha256_file(path) != found.sha256:
        return "its audio does not match its digest"
    try:
        check_duration(found.duration_s, text, speed)
    except AudioTruncated as exc:
        return str(exc)
    return None


def segment_cache(
    settings: Settings, storage: Storage, client: redis.Redis, keys: Keys, job: Job
) -> SegmentCache | None:
    """The cache ``job``'s segments use; None when the job opted out or the cache is off."""
    if not job.request.cache or settings.segment_cache_days <= 0:
        return None
    # The timestamped endpoint is another way of asking: its audio is kept apart.
    timed = job.request.timestamps is not None
    return SegmentCache(
        storage,
        client,
        keys,
        tenant=job.tenant,
        endpoint=settings.provider_timestamp_url if timed else settings.provider_ws_url,
        model=job.request.model or settings.fish_model,
        prefix=settings.s3_cache_prefix,
    )


# -- retention ------------------------------------------------------------------


def sweep_cache(
    storage: Storage,
    client: redis.Redis,
    keys: Keys,
    settings: Settings,
    *,
    now: float | None = None,
) -> int:
    """Delete cache objects no job used for ``SHOAL_SEGMENT_CACHE_DAYS``; returns how many.

    An object's last use is the later of its upload and its last hit; an object
    Redis knows nothing of (its record was lost) counts from its upload.
    """
    now = time.time() if now is None else now
    cutoff = now - settings.segment_cache_days * 86400
    prefix = settings.s3_cache_prefix.strip("/")
    if settings.segment_cache_days <= 0 or not prefix:
        return 0
    swept = 0
    batch: list[tuple[str, Any]] = []
    for item in storage.list_objects(f"{prefix}/"):
        batch.append(item)
        if len(batch) >= SWEEP_BATCH:
            swept += _sweep_batch(storage, client, keys, batch, cutoff, now)
            batch = []
    if batch:
        swept += _sweep_batch(storage, client, keys, batch, cutoff, now)
    # Records of objects deleted some other way.
    client.zremrangebyscore(keys.cache_used(), "-inf", cutoff)
    if swept:
        log.info(
            "swept %d segment cache object(s) unused for %g days",
            swept,
            settings.segment_cache_days,
        )
    return swept


def _sweep_batch(
    storage: Storage,
    client: redis.Redis,
    keys: Keys,
    batch: list[tuple[str, Any]],
    cutoff: float,
    now: float,
) -> int:
    used = client.zmscore(keys.cache_used(), [key for key, _ in batch])
    stale = []
    for (key, written), last_hit in zip(batch, used, strict=True):
        uploaded = written.timestamp() if written is not None else now
        if max(uploaded, last_hit or 0.0) < cutoff:
            stale.append(key)
    if not stale:
        return 0
    deleted = storage.delete_many(stale)
    pipe = client.pipeline()
    pipe.zrem(keys.cache_used(), *stale)
    pipe.incrby(keys.cache_swept(), deleted)
    pipe.execute()
    return deleted


def cache_sweep_period(days: float) -> float:
    """Seconds between two sweeps: a quarter of the retention, at most six hours."""
    return max(1.0, min(days * 86400 / 4, MAX_CACHE_SWEEP_PERIOD))


def start_cache_sweep(
    storage: Storage, client: redis.Redis, keys: Keys, settings: Settings
) -> bool:
    """If this worker wins this period's claim, sweep the cache in a thread of its
    own (like :func:`worker.storage.sweep.start_sweep`); returns whether it started."""
    if settings.segment_cache_days <= 0:
        return False
    period_ms = int(cache_sweep_period(settings.segment_cache_days) * 1000)
    return start_claimed(
        _sweeping,
        lambda: bool(client.set(keys.cache_sweep_claim(), "1", nx=True, px=period_ms)),
        lambda: sweep_cache(storage, client, keys, settings),
        name="shoal-cache-sweep",
        what="the segment cache",
    )
