"""What the segment cache already holds of a text: the estimate's prediction.

``POST /v1/estimate`` cuts the text as a worker would (:func:`worker.jobs.markup.job_segments`),
works out each segment's address for the sound the body asks for
(:func:`worker.jobs.cache.sound_address`) and asks the store which of them the
tenant's cache holds.  It only reads: a HEAD per segment, nothing written, no
last-use stamp moved; a store it cannot read leaves the prediction out (nothing
counted as cached) rather than failing the estimate.  It is a prediction: the
sweep may delete an object before the job runs, and an object that fails its
checks then is synthesised.
Segments of ``<voice>`` passages are looked up in their passage's voice, at the
speech level the worker brings every segment of such a job to.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from api.deps import ApiContext
from api.schemas import EstimateRequest
from api.validation import check_output
from api.voices.service import with_voice
from worker.fish.request import Prosody
from worker.jobs.cache import SegmentCache, passage_level, segment_request
from worker.jobs.markup import job_segments
from worker.jobs.model import JobRequest, utf8_bytes
from worker.storage.client import StorageError

log = logging.getLogger(__name__)

#: HEAD requests in flight at once for one estimate.
LOOKUPS_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class CacheUse:
    """How much of a text the cache would serve."""

    segments: int  # segments with something to say
    segments_cached: int
    cached_utf8_bytes: int


def estimate_request(ctx: ApiContext, tenant: str, body: EstimateRequest, text: str) -> JobRequest:
    """The :class:`JobRequest` a job of ``body``'s settings would have, its voice resolved.

    Raises :class:`~api.errors.InvalidInput` naming the field, as a job's submission would.
    """
    check_output(body.format, body.sample_rate, None)
    prosody = body.prosody.model_dump() if body.prosody else None
    if prosody is None and body.speed != 1.0:
        prosody = {"speed": body.speed}
    request = JobRequest(
        text=text,
        reference_id=body.reference_id,
        voice=body.voice,
        model=body.model,
        format=body.format,
        sample_rate=body.sample_rate,
        prosody=Prosody(**prosody) if prosody else None,
        latency=body.latency,
        normalize=body.normalize,
        temperature=body.temperature,
        top_p=body.top_p,
        repetition_penalty=body.repetition_penalty,
        cache=body.cache,
    )
    return with_voice(ctx, tenant, request)


def predict_cache_use(ctx: ApiContext, tenant: str, request: JobRequest) -> CacheUse:
    """Which of ``request``'s segments the tenant's cache holds now (see the module)."""
    settings = ctx.settings
    segments = [s for s in job_segments(request.text, settings.segment_max_chars) if s.text.strip()]
    if not request.cache or settings.segment_cache_days <= 0:
        return CacheUse(len(segments), 0, 0)
    cache = SegmentCache(
        ctx.storage,
        ctx.redis,
        ctx.keys,
        tenant=tenant,
        endpoint=settings.provider_ws_url,
        model=request.model or settings.fish_model,
        prefix=settings.s3_cache_prefix,
    )
    level = passage_level(request)
    tts = {v: segment_request(request, v) for v in {s.voice for s in segments}}
    keys = [cache.key(cache.address(s.text, tts[s.voice], level_db=level)) for s in segments]
    try:
        with ThreadPoolExecutor(max_workers=LOOKUPS_AT_ONCE) as pool:
            held = list(pool.map(ctx.storage.exists, keys))
    except StorageError as exc:  # the price stands; only the prediction is missing
        log.warning("estimate for %s: the segment cache could not be read (%s)", tenant, exc)
        return CacheUse(len(segments), 0, 0)
    hits = [s for s, found in zip(segments, held, strict=True) if found]
    return CacheUse(len(segments), len(hits), sum(utf8_bytes(s.text) for s in hits))
