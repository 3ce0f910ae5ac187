"""What the batch routes do, apart from HTTP: check and submit a batch.

Showing a batch is :mod:`api.batches.views`; cancelling it and retrying an item
:mod:`api.batches.actions`.  A book (:mod:`api.books.service`) is submitted
as a batch too, through :func:`submit_batch`.

Submitting runs, like a job's: every check and the plan of the batch and its
items' jobs (:func:`plan_batch`, nothing stored yet), the Idempotency-Key
claim, then the cover, the batch record and the items' jobs, the tenant's
in-flight limit (one slot per item, all or none), and the jobs' messages on
the bulk queue.  A failure after the claim undoes everything done, so a
request makes one whole batch or leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from api.batches.checks import check_produce, under
from api.batches.schemas import BATCH_TEXT_FACTOR, BatchCreate, BatchOptions, VoiceIn
from api.deps import ApiContext
from api.errors import InvalidInput, PayloadTooLarge, RateLimited, Unavailable
from api.idempotency import Claim, Created, check_idempotency_key, create_once, fingerprint
from api.lexicons.service import resolve_lexicons
from api.validation import (
    check_callback_url,
    check_text_size,
    check_timestamps,
    decode_references,
    lexicon_fields,
)
from api.voices.service import (
    check_one_voice,
    passage_fields,
    resolve_passage_voices,
    resolve_voices,
)
from worker.audio import format_info
from worker.batches.model import Batch, BatchItem, BookInfo, Produce, new_batch_id
from worker.batches.store import BatchStore
from worker.fish.request import Prosody
from worker.jobs.markup import passage_voices
from worker.jobs.model import (
    Billing,
    Job,
    JobRequest,
    ReferenceClip,
    TimestampLevel,
    billing_for_bytes,
    estimate_billing,
    new_job_id,
)
from worker.lexicons.model import Lexicon
from worker.settings import Settings, TenantConfig
from worker.storage.client import StorageError
from worker.storage.model import validate_key

log = logging.getLogger(__name__)

VOICE_FIELDS = ("reference_id", "references")
SETTINGS_FIELDS = (
    "model",
    "prosody",
    "latency",
    "normalize",
    "temperature",
    "top_p",
    "repetition_penalty",
    "paragraph_silence_ms",
    "cache",
    "timestamps",
)
#: The title of a batch sent without one.
UNTITLED = "Untitled"


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """An item about to be made: its text, title, where it came from, its own settings."""

    title: str
    text: str
    voice: VoiceIn | None = None
    source: str | None = None
    field: str = "items"  # where errors about it point, e.g. "items.3"


def batches_of(ctx: ApiContext) -> BatchStore:
    """The batch store over the API's Redis client."""
    return BatchStore(ctx.redis, ctx.keys, ctx.settings.job_ttl_seconds)


class _Voices:
    """Resolves each item's settings over the defaults, decoding reference audio once.

    ``voices`` holds the request fields of every voice named (by id; see
    :func:`api.voices.service.resolve_voices`).
    """

    def __init__(
        self,
        defaults: VoiceIn,
        field: str = "defaults",
        voices: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.defaults = defaults
        self._voices = voices or {}
        self._default = self._chosen(defaults, field)

    def _chosen(self, voice: VoiceIn, field: str) -> dict[str, Any]:
        """The voice fields ``voice`` chooses: a named voice, or its references or id."""
        if voice.voice is None:
            return {"reference_id": voice.reference_id, "references": self._decode(voice, field)}
        check_one_voice(
            voice.voice, voice.reference_id, bool(voice.references), field=f"{field}.voice"
        )
        if voice.voice not in self._voices:
            message = f"{field}.voice: no voice {voice.voice!r} for this tenant"
            raise InvalidInput(message, field=f"{field}.voice")
        return dict(self._voices[voice.voice])

    @staticmethod
    def _decode(voice: VoiceIn, field: str) -> list[ReferenceClip]:
        if voice.reference_id is not None and voice.references:
            raise InvalidInput(
                f"{field}.references: give reference_id or references, not both",
                field=f"{field}.references",
            )
        with under(field):
            return decode_references(voice.references or [])

    def request_fields(self, own: VoiceIn | None, field: str) -> dict[str, Any]:
        """Keyword arguments of :class:`JobRequest` for an item with settings ``own``."""
        out: dict[str, Any] = {}
        if own is not None and (
            own.voice is not None or own.reference_id is not None or own.references
        ):
            out.update(self._chosen(own, field))  # an item's voice replaces the default whole
        else:
            out.update(self._default)
        for name in SETTINGS_FIELDS:
            value = getattr(own, name, None) if own is not None else None
            if value is None:
                value = getattr(self.defaults, name)
            if value is not None:
                out[name] = value
        if "prosody" in out:
            out["prosody"] = Prosody(**out["prosody"].model_dump())
        return out


def _chapter_key(tenant: str, batch_id: str, index: int, job_id: str, fmt: str) -> str:
    ext = format_info(fmt).extension.lstrip(".")
    return validate_key(f"{tenant}/{batch_id}/chapters/{index + 1:03d}-{job_id}.{ext}")


def new_item_job(
    tenant: str,
    batch_id: str,
    index: int,
    title: str,
    text: str,
    fields: dict[str, Any],
    produce: Produce,
    priority: int,
    price: float,
) -> Job:
    job_id = new_job_id()
    if produce.read_along and fields.get("timestamps") is None:
        fields = fields | {"timestamps": TimestampLevel.SENTENCE}  # what its overlay needs
    request = JobRequest(
        text=text,
        format=produce.chapter_format,
        sample_rate=produce.chapter_sample_rate,
        bitrate_kbps=produce.chapter_bitrate_kbps,
        output_key=_chapter_key(tenant, batch_id, index, job_id, produce.chapter_format),
        priority=priority,
        **fields,
    )
    return Job(
        id=job_id,
        tenant=tenant,
        request=request,
        billing=estimate_billing(text, price),
        metadata={"batch_item": index, "title": title},
        batch_id=batch_id,
    )


def without_text(fields: dict[str, object]) -> dict[str, object]:
    """:func:`api.validation.lexicon_fields` less the text, which is passed on its own."""
    return {k: v for k, v in fields.items() if k != "text"}


def batch_billing(items: Sequence[BatchItem], price: float) -> Billing:
    """What a batch's items cost together, by their UTF-8 bytes."""
    utf8 = sum(item.utf8_bytes for item in items)
    return billing_for_bytes(utf8, price)


# -- submit ---------------------------------------------------------------------


def _check_sizes(settings: Settings, items: Sequence[PlannedItem]) -> None:
    """Each item's text, and all of them together, within the limits."""
    total = 0
    for item in items:
        total += check_text_size(item.text, settings, field=f"{item.field}.text")
    limit = settings.max_text_bytes * BATCH_TEXT_FACTOR
    if total > limit:
        raise PayloadTooLarge(
            f"items: {total} bytes of UTF-8 in all; a batch may have at most {limit} "
            f"({BATCH_TEXT_FACTOR} × SHOAL_MAX_TEXT_BYTES); split it into several batches",
            field="items",
        )


def create_batch(
    ctx: ApiContext, tenant: TenantConfig, body: BatchCreate, idempotency_key: str | None
) -> Created[Batch]:
    """``POST /v1/batches``: submit ``body``'s items as one batch."""
    key = check_idempotency_key(idempotency_key)
    items = [
        PlannedItem(title=item.title, text=item.text, voice=item, field=f"items.{i}")
        for i, item in enumerate(body.items)
    ]
    return submit_batch(
        ctx,
        tenant,
        items=items,
        options=body,
        book=BookInfo(title=(body.title or "").strip() or UNTITLED, author=body.author),
        cover=None,
        idempotency=("batches", key) if key else None,
        request_fingerprint=body.model_dump(mode="json"),
    )


def item_lexicons(item: PlannedItem, options: BatchOptions) -> tuple[list[str], str]:
    """The lexicon ids an item is spoken with (its own list, else the defaults'),
    and the field that named them."""
    if item.voice is not None and item.voice.lexicons is not None:
        return item.voice.lexicons, f"{item.field}.lexicons"
    return options.defaults.lexicons or [], "defaults.lexicons"


def resolve_batch_lexicons(
    ctx: ApiContext, tenant: str, items: Sequence[PlannedItem], options: BatchOptions
) -> dict[str, Lexicon]:
    """Every lexicon the batch names, by id; :class:`InvalidInput` naming an unknown one."""
    found: dict[str, Lexicon] = {}
    asked = [(options.defaults.lexicons or [], "defaults.lexicons")]
    asked += [item_lexicons(item, options) for item in items]
    # Items that inherit the defaults name them again: one look-up per distinct list.
    for ids, field in dict.fromkeys((tuple(ids), field) for ids, field in asked if ids):
        for lexicon in resolve_lexicons(ctx, tenant, ids, field):
            found[lexicon.id] = lexicon
    return found


def batch_voices(
    ctx: ApiContext, tenant: str, items: Sequence[PlannedItem], options: BatchOptions
) -> dict[str, dict[str, Any]]:
    """The request fields of every voice the batch names, by id; :class:`InvalidInput`
    naming the first unknown one (``items.3.voice``)."""
    asked = [(options.defaults.voice, "defaults.voice")]
    asked += [(item.voice.voice, f"{item.field}.voice") for item in items if item.voice]
    found = resolve_voices(ctx, tenant, [(v, field) for v, field in asked if v is not None])
    texts = [(item.text, f"{item.field}.text") for item in items]
    return resolve_passage_voices(ctx, tenant, texts, found)


# Long by the fields of the records it makes; its steps read top-down, with no branches.
def plan_batch(
    settings: Settings,
    tenant: str,
    items: Sequence[PlannedItem],
    options: BatchOptions,
    book: BookInfo,
    lexicons: Mapping[str, Lexicon] | None = None,
    voices: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[Batch, list[Job]]:
    """Check everything about a batch and make its record and its items' jobs (unsaved).

    ``lexicons`` holds every lexicon the items name (:func:`resolve_batch_lexicons`);
    each item's text is respelled with its own before the size checks.  ``voices``
    holds every voice they name (:func:`batch_voices`).
    Raises :class:`ApiError` subclasses; has no side effects.
    """
    produce = check_produce(options.produce)
    check_timestamps(options.defaults.timestamps, settings, "defaults.timestamps")
    for item in items:
        own = item.voice.timestamps if item.voice is not None else None
        check_timestamps(own, settings, f"{item.field}.timestamps")
    check_timestamps(
        TimestampLevel.SENTENCE if produce.read_along else None, settings, "produce.read_along"
    )
    chosen = _Voices(options.defaults, voices=voices)
    callback = check_callback_url(options.callback_url, settings)
    known = lexicons or {}
    respelled = [
        lexicon_fields(
            item.text, [known[i] for i in item_lexicons(item, options)[0]], f"{item.field}.text"
        )
        for item in items
    ]
    passages = [
        passage_fields(passage_voices(item.text), voices or {}, f"{item.field}.text")
        for item in items
    ]
    items = [replace(item, text=str(r["text"])) for item, r in zip(items, respelled, strict=True)]
    _check_sizes(settings, items)
    batch_id = new_batch_id()
    price = settings.price_per_million_bytes_usd
    jobs = [
        new_item_job(
            tenant,
            batch_id,
            i,
            item.title,
            item.text,
            chosen.request_fields(item.voice, item.field) | without_text(spelled) | passage,
            produce,
            options.defaults.priority,
            price,
        )
        for i, (item, spelled, passage) in enumerate(zip(items, respelled, passages, strict=True))
    ]
    planned = [
        BatchItem(
            job_id=job.id,
            title=item.title,
            chars=len(item.text),
            utf8_bytes=job.billing.utf8_bytes,
            source=item.source,
        )
        for item, job in zip(items, jobs, strict=True)
    ]
    batch = Batch(
        id=batch_id,
        tenant=tenant,
        items=planned,
        produce=produce,
        book=book,
        defaults=options.defaults.model_dump(mode="json", exclude={"references"})
        | {"references": len(options.defaults.references or [])},
        callback_url=callback,
        metadata=options.metadata,
        billing=batch_billing(planned, price),
    )
    return batch, jobs


def submit_batch(
    ctx: ApiContext,
    tenant: TenantConfig,
    *,
    items: Sequence[PlannedItem],
    options: BatchOptions,
    book: BookInfo,
    cover: bytes | None,
    idempotency: tuple[str, str] | None,
    request_fingerprint: Any,
) -> Created[Batch]:
    """Check, store and enqueue a whole batch; or return the one this Idempotency-Key made.

    ``idempotency`` is (namespace, a checked Idempotency-Key); ``request_fingerprint``
    anything JSON-able that stands for the request.  Raises :class:`ApiError` subclasses.
    """
    lexicons = resolve_batch_lexicons(ctx, tenant.id, items, options)
    voices = batch_voices(ctx, tenant.id, items, options)
    batch, jobs = plan_batch(ctx.settings, tenant.id, items, options, book, lexicons, voices)
    batches = batches_of(ctx)
    submission = create_once(
        ctx.idempotency,
        tenant.id,
        "/".join(idempotency) if idempotency else None,
        Claim(batch.id, fingerprint(request_fingerprint)),
        create=lambda: _store_and_enqueue(ctx, tenant, batch, jobs, cover),
        load=lambda batch_id: batches.get_for_tenant(batch_id, tenant.id),
    )
    if submission.created:
        log.info(
            "batch %s: submitted by %s (%d items, %d bytes)",
            batch.id,
            tenant.id,
            len(jobs),
            batch.billing.utf8_bytes,
        )
    return submission


def _reserve(ctx: ApiContext, tenant: TenantConfig, job_ids: list[str]) -> None:
    """Count every job as in flight, or none (the caller undoes the rest)."""
    for job_id in job_ids:
        if not ctx.in_flight.reserve(tenant.id, job_id, tenant.max_jobs_in_flight).admitted:
            raise RateLimited(
                f"a batch of {len(job_ids)} items does not fit: at most "
                f"{tenant.max_jobs_in_flight} jobs may be queued or running at once",
                retry_after=ctx.in_flight.RETRY_AFTER,
                code="too_many_jobs_in_flight",
            )


def _store_and_enqueue(
    ctx: ApiContext, tenant: TenantConfig, batch: Batch, jobs: list[Job], cover: bytes | None
) -> Batch:
    batches = batches_of(ctx)
    created: list[Job] = []
    enqueuing = False
    try:
        if cover is not None:
            key = ctx.storage.staging_key(batch.id, "cover")
            ctx.storage.put_bytes(key, cover, batch.book.cover_type or "application/octet-stream")
            batch.book.cover_key = key
        batches.create(batch)
        for index, job in enumerate(jobs):
            ctx.store.create(job, batch_item=index)
            created.append(job)
        # Counted once stored: the limit's pruning takes ids without a record as finished.
        _reserve(ctx, tenant, [job.id for job in jobs])
        enqueuing = True
        for job in jobs:
            ctx.dispatch.enqueue(job)
        return batch
    except BaseException as exc:
        # Never leave a queued job that no message will run, nor a batch without its jobs.
        log.warning("batch %s: submission failed (%r); everything removed", batch.id, exc)
        _undo(ctx, tenant, batch, jobs, created)
        if isinstance(exc, StorageError):
            raise Unavailable("storage is unreachable; try again shortly") from exc
        if enqueuing and isinstance(exc, Exception) and not isinstance(exc, redis.RedisError):
            raise Unavailable("the job queue (broker) is unreachable; try again shortly") from exc
        raise


def _undo(
    ctx: ApiContext, tenant: TenantConfig, batch: Batch, jobs: list[Job], created: list[Job]
) -> None:
    for job in created:
        ctx.store.delete(job.id)
    for job in jobs:
        ctx.in_flight.release(tenant.id, job.id)
    batches_of(ctx).delete(batch.id)
    if batch.book.cover_key is not None:
        try:
            ctx.storage.delete(batch.book.cover_key)
        except StorageError:
            log.warning("batch %s: cover left in staging", batch.id)
