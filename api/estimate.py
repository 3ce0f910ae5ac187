"""``/v1/estimate``: what a text would cost, and roughly how long its audio would be."""

from __future__ import annotations

from fastapi import APIRouter

from api.bodies import BodyRoute
from api.deps import Ctx, Tenant
from api.lexicons.service import resolve_lexicons
from api.schemas import V1_ERRORS, EstimateOut, EstimateRequest
from api.segment_cache import estimate_request, predict_cache_use
from api.validation import lexicon_fields
from worker.jobs.markup import Break, Run, parse_markup
from worker.jobs.model import billing_for_bytes, estimate_billing

router = APIRouter(tags=["estimate"], responses=V1_ERRORS, route_class=BodyRoute)

#: Characters a narrator speaks per second at speed 1.0 (about 150 words a minute).
CHARS_PER_SECOND = 15.0


def audio_seconds(text: str, speed: float = 1.0) -> float:
    """A rough length of the narration of ``text``: its characters at a speaking pace."""
    spoken = len(" ".join(text.split()))
    return round(spoken / CHARS_PER_SECOND / speed, 1)


@router.post("/estimate", response_model=EstimateOut, summary="Estimate cost and duration")
def estimate(body: EstimateRequest, tenant: Tenant, ctx: Ctx) -> EstimateOut:
    """Price a text by its UTF-8 bytes and guess its audio length; nothing is enqueued.

    With ``lexicons``, the text is priced as they respell it, as a job would be;
    tags (breaks, voices) are not counted, and breaks add their silence.
    A text over the job limit is still priced, with ``within_limit`` false.
    """
    settings = ctx.settings
    # As a job's text: its tags checked, before and after the lexicons respell it.
    text = str(lexicon_fields(body.text, resolve_lexicons(ctx, tenant.id, body.lexicons))["text"])
    billing = estimate_billing(text, settings.price_per_million_bytes_usd)
    parts = parse_markup(text)  # tags are neither sent nor billed; breaks are silence
    spoken = "".join(p.text for p in parts if isinstance(p, Run))
    pauses = sum(p.ms for p in parts if isinstance(p, Break)) / 1000
    # What the tenant's segment cache already holds is not sent again, nor billed.
    use = predict_cache_use(ctx, tenant.id, estimate_request(ctx, tenant.id, body, text))
    sent = billing_for_bytes(
        billing.utf8_bytes - use.cached_utf8_bytes, settings.price_per_million_bytes_usd
    )
    return EstimateOut(
        characters=len(spoken),
        utf8_bytes=billing.utf8_bytes,
        estimated_cost_usd=billing.estimated_cost_usd,
        price_per_million_bytes_usd=settings.price_per_million_bytes_usd,
        estimated_audio_seconds=round(audio_seconds(spoken, body.speed) + pauses, 1),
        max_text_bytes=settings.max_text_bytes,
        within_limit=billing.utf8_bytes <= settings.max_text_bytes,
        segments=use.segments,
        segments_cached=use.segments_cached,
        cached_utf8_bytes=use.cached_utf8_bytes,
        sent_utf8_bytes=sent.utf8_bytes,
        sent_cost_usd=sent.estimated_cost_usd,
    )
