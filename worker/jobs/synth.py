"""Synthesis of one job's segments: provider sessions → PCM checkpoints.

:func:`tts_request` is what every segment of a job asks for, and
:func:`provider_config` where it asks; :class:`SegmentSynthesizer` does the asking.

Each segment is first looked up in the tenant's segment cache
(:mod:`worker.jobs.cache`), unless the job opted out: a verified hit is its
checkpoint, with no slot and no session.  Otherwise it streams in its own
provider session, inside a governor slot, into a PCM spool file on disk; the
finished file is uploaded (to the cache under its address, else to staging) and
recorded on the job, so a later attempt synthesises only what is missing.  A job
of one segment, outside a batch, stages nothing (:func:`keeps_staging`): its
segment is in the attempt's spool, and staging it would cost an upload and a
delete on every such job to spare a retry one provider session.
Segments run in parallel up to the per-job limit; order is restored at assembly.

Every session is counted on the job in Redis before it opens, against the
segment's :class:`~worker.retry.SessionBudget`: a transient failure is retried
at once a few times, but a segment never costs more sessions than its job has
attempts, across all of them (:mod:`worker.retry` states the budget).  Before a
session opens and before a checkpoint is uploaded, the attempt asks whether the
job's :class:`~worker.lease.Lease` is still its own.

Stopping (the job was canceled, or one segment failed for good) does not rely
on task cancellation alone: on Python 3.11 ``asyncio.wait_for`` — which
redis-py's asyncio client uses for every command — can swallow a cancellation
that lands as its reply arrives, and a segment would then go on to open a
provider session nobody wants.  Every segment also checks a *halt* event
before it opens a session, and streams with it as the client's cancel event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path

from worker.audio import (
    AudioError,
    PcmStream,
    check_reference_audio,
)
from worker.audio.level import match_level
from worker.fish import AudioFormat, ProviderError, TTSRequest
from worker.fish.client import ProviderConfig, StreamCanceled, stream_tts
from worker.fish.stream_ts import stream_tts_timestamped
from worker.jobs.cache import SegmentCache, segment_request
from worker.jobs.checkpoints import SegmentCheckpoint, segment_digest
from worker.jobs.governor import Governor
from worker.jobs.model import Job, utf8_bytes
from worker.jobs.store import JobStore
from worker.jobs.text import Segment
from worker.jobs.truncation import check_duration
from worker.lease import Lease
from worker.retry import SessionBudget, Step
from worker.settings import Settings
from worker.storage.client import Storage
from worker.timings import Mark

log = logging.getLogger(__name__)


class UnreadableReference(ValueError):
    """A job's reference audio cannot be decoded: the job fails before any session."""


class SessionsSpent(Exception):
    """A segment used every provider session its budget allows: the job fails.

    ``last`` is the error of its last session, when this attempt saw it; else
    the job's recorded error tells why.
    """

    def __init__(self, index: int, sessions: int, last: ProviderError | None = None) -> None:
        super().__init__(f"segment {index}: {sessions} provider sessions spent")
        self.index = index
        self.sessions = sessions
        self.last = last


def keeps_staging(job: Job, segments: int) -> bool:
    """Whether ``job``'s finished segments (``segments`` of them) are kept in staging
    and recorded, for a later attempt to take instead of speaking them again.

    Not for a job of one segment outside a batch: a later attempt would save one
    short provider session, and every such job would pay a storage upload, its
    record and a delete for it (most of a one-sentence job's storage requests).
    Batch items stage as before.  A segment kept in the segment cache is recorded
    either way (see :class:`SegmentSynthesizer`).
    """
    return segments > 1 or job.batch_id is not None


def provider_config(settings: Settings, model: str | None = None) -> ProviderConfig:
    """How to reach the provider; ``model`` (a job's own) overrides the configured one."""
    key = settings.fish_api_key.get_secret_value() if settings.fish_api_key else None
    return ProviderConfig(
        ws_url=settings.provider_ws_url,
        api_key=key,
        model=model or settings.fish_model,
        connect_timeout=settings.connect_timeout,
        first_audio_timeout=settings.first_audio_timeout,
        silence_timeout=settings.silence_timeout,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
    )


def tts_request(job: Job, voice: str | None = None) -> TTSRequest:
    """What every segment of ``job`` asks the provider for: raw PCM, the job's voice
    (or, with ``voice``, that of its ``<voice name=…>`` passages); see
    :func:`worker.jobs.cache.segment_request`.

    Raises :class:`UnreadableReference` for reference audio that cannot be decoded.
    """
    chosen = job.request.passage_voices[voice] if voice is not None else job.request
    field = f"voice {voice!r}: references" if voice is not None else "references"
    for i, clip in enumerate(chosen.references):
        try:
            check_reference_audio(clip.audio)
        except AudioError as exc:
            raise UnreadableReference(f"{field}[{i}].audio is unreadable: {exc}") from exc
    return segment_request(job.request, voice)


class SegmentSynthesizer:
    """Synthesises the missing segments of one job attempt."""

    def __init__(
        self,
        *,
        job_id: str,
        owner: str,
        provider: ProviderConfig,
        request: TTSRequest,
        governor: Governor,
        storage: Storage,
        store: JobStore,
        spool: Path,
        parallel: int,
        budget: SessionBudget,
        priority: int = 0,
        on_segment: Callable[[SegmentCheckpoint], None] | None = None,
        on_error: Callable[[ProviderError], None] | None = None,
        lease: Lease | None = None,
        voices: Mapping[str, TTSRequest] | None = None,
        level_db: float | None = None,
        timestamp_url: str | None = None,
        cache: SegmentCache | None = None,
        stage: bool = True,
    ) -> None:
        """``lease`` is the job's: asked before each provider session and each
        checkpoint upload, so a worker that stalled past its lease (and whose job
        another worker took over) neither pays for sessions nor leaves objects.
        ``budget`` bounds the sessions of each segment over all attempts.
        ``voices`` are the requests of the text's voice passages, by name; with
        ``level_db``, every segment is brought to that speech level
        (:mod:`worker.audio.level`), so the voices sound equally loud.
        With ``timestamp_url``, segments are spoken through the provider's
        timestamped endpoint there, and their word marks kept with them.
        ``cache`` is the tenant's segment cache; None for a job without one.
        Without ``stage`` (:func:`keeps_staging`), a segment not kept in the cache
        is neither uploaded nor recorded: its checkpoint (with no key) is only
        handed to ``on_segment``, for this attempt's output."""
        if request.format is not AudioFormat.PCM:
            raise ValueError("segments are always requested as raw PCM")
        self.job_id = job_id
        self.owner = owner
        self.provider = provider
        self.request = request
        self.governor = governor
        self.storage = storage
        self.store = store
        self.spool = spool
        self.parallel = parallel
        self.budget = budget
        self.priority = priority
        self.on_segment = on_segment
        self.on_error = on_error
        self.lease = lease
        self.voices = dict(voices or {})
        self.level_db = level_db
        self.timestamp_url = timestamp_url
        self.cache = cache
        self.stage = stage
        self._cancel = asyncio.Event()  # the caller's, once run() starts
        self._sessions: dict[int, int] = {}  # segment index → its sessions so far, all attempts
        self._counted = False  # a session was counted in this attempt

    def request_for(self, segment: Segment) -> TTSRequest:
        """What ``segment`` asks the provider for: its passage's voice, else the job's."""
        if segment.voice is None:
            return self.request
        return self.voices[segment.voice]

    async def run(self, segments: list[Segment], cancel: asyncio.Event) -> None:
        """Synthesise ``segments``; the first failure stops the rest and is raised.

        ``cancel`` set from outside stops everything and raises
        :class:`StreamCanceled` (unless a segment failed for another reason first).
        """
        self._cancel = cancel
        halt = asyncio.Event()  # set by ``cancel`` or by a segment that failed for good
        # ``parallel`` runners take the segments in order from one iterator: memory
        # stays that of ``parallel`` tasks, however many segments the job has.
        pending = iter(segments)

        async def runner() -> None:
            for segment in pending:
                if halt.is_set():
                    return
                try:
                    await self._with_retries(segment, halt)
                except BaseException:
                    halt.set()
                    raise

        async def relay() -> None:
            await cancel.wait()
            halt.set()

        relaying = asyncio.create_task(relay())
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.parallel, len(segments))):
                    group.create_task(runner())
        except ExceptionGroup as group:
            raise _most_telling(group) from group
        finally:
            relaying.cancel()
        if cancel.is_set():
            raise StreamCanceled("canceled")

    async def _with_retries(self, segment: Segment, halt: asyncio.Event) -> None:
        tries = 0
        while True:
            tries += 1
            try:
                await self._synthesize(segment, halt)
                return
            except ProviderError as exc:
                if halt.is_set():  # stopping anyway: the error is a consequence, not news
                    raise StreamCanceled("canceled") from exc
                if self.on_error is not None:
                    self.on_error(exc)
                sessions = self._sessions.get(segment.index, tries)
                step = self.budget.after_failure(tries, max(sessions, tries), exc.retryable)
                if step is Step.GIVE_UP:
                    raise SessionsSpent(segment.index, sessions, exc) from exc
                if step is Step.RAISE:
                    raise
                delay = self.budget.in_a_row.delay(tries, random.random())
                log.info(
                    "job %s segment %d: %s (session %d of %d); retrying in %.1fs",
                    *(self.job_id, segment.index, exc, sessions, self.budget.total, delay),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(halt.wait(), delay)

    async def _synthesize(self, segment: Segment, halt: asyncio.Event) -> None:
        path = self.spool / f"{segment.index:06d}.pcm"
        request = self.request_for(segment)
        if not segment.text.strip():
            path.write_bytes(b"")  # nothing to say: no provider session, no audio
            await self._checkpoint(segment, path)
            return
        address = None
        if self.cache is not None:
            address = self.cache.address(segment.text, request, level_db=self.level_db)
            if await self._from_cache(segment, address, path, request, halt):
                return
        marks = await self._stream(segment, path, PcmStream(request.format), halt)
        # Audio far shorter than its text is cut short: retried, never shipped.
        check_duration(
            path.stat().st_size / 2 / request.effective_sample_rate,
            segment.text,
            request.speed,
            what=f"segment {segment.index}",
        )
        await self._checkpoint(segment, path, address=address, marks=marks)

    async def _from_cache(
        self, segment: Segment, address: str, path: Path, request: TTSRequest, halt: asyncio.Event
    ) -> bool:
        """Whether the cache had ``segment``'s audio: then it is checked, in ``path``
        and the segment's checkpoint, and no provider session is opened."""
        assert self.cache is not None
        if halt.is_set():
            raise StreamCanceled("canceled")
        found = await asyncio.to_thread(self.cache.fetch, address, path, segment.text, request)
        if found is None:
            return False
        marks: tuple[Mark, ...] = ()
        if self.timestamp_url is not None:
            kept = await asyncio.to_thread(self.cache.fetch_marks, address)
            if kept is None:  # audio without its timings: spoken again, with them
                return False
            marks = tuple(kept)
        await self._checkpoint(segment, path, address=address, cached=True, marks=marks)
        return True

    async def _stream(
        self, segment: Segment, path: Path, pcm: PcmStream, halt: asyncio.Event
    ) -> tuple[Mark, ...]:
        """Speak ``segment`` into ``path`` in one provider session; its word marks,
        when the job asked for timings."""
        marks: tuple[Mark, ...] = ()
        if halt.is_set():
            raise StreamCanceled("canceled")
        async with self.governor.slot(self.owner, priority=self.priority):
            # Waiting for the slot may have taken a while: do not open a session
            # for a job that was canceled (or failed, or taken over) meanwhile.
            await self._check_halt(halt)
            await self._count_session(segment)
            with path.open("wb") as out:

                def write(data: bytes) -> None:
                    out.write(pcm.feed(data))

                request = self.request_for(segment)
                if self.timestamp_url is None:
                    await stream_tts(self.provider, request, segment.text, write, cancel=halt)
                else:
                    timed = await stream_tts_timestamped(
                        *(self.provider, request, segment.text, write),
                        url=self.timestamp_url,
                        cancel=halt,
                    )
                    marks = timed.words
                out.write(pcm.close())
        if self.level_db is not None:  # a gain: the marks' times stand
            rate = self.request.effective_sample_rate
            await asyncio.to_thread(match_level, path, rate, self.level_db)
        return marks

    async def _check_halt(self, halt: asyncio.Event) -> None:
        if not halt.is_set() and not await self._leased():
            halt.set()
        if halt.is_set():
            raise StreamCanceled("canceled")

    async def _count_session(self, segment: Segment) -> None:
        """Take one session from the segment's budget, or raise :class:`SessionsSpent`.

        Counted before the session opens, so a session whose worker died
        mid-way is counted too.
        """
        keep, self._counted = not self._counted, True  # the hash's lifetime: once an attempt
        sessions = await asyncio.to_thread(
            self.store.count_session, self.job_id, segment.index, keep=keep
        )
        self._sessions[segment.index] = sessions
        if not self.budget.may_open(sessions):
            raise SessionsSpent(segment.index, self.budget.total)

    async def _leased(self) -> bool:
        return self.lease is None or await asyncio.to_thread(self.lease.held)

    async def _checkpoint(
        self,
        segment: Segment,
        path: Path,
        *,
        address: str | None = None,
        cached: bool = False,
        marks: tuple[Mark, ...] = (),
    ) -> None:
        """Record a finished segment; its audio is kept in the cache under ``address``
        (where it already is when ``cached``), or without one in staging."""
        # A segment that streamed while a sibling failed is still kept (the
        # provider billed it), but not for a canceled job or one taken over.
        if self._cancel.is_set() or not await self._leased():
            raise StreamCanceled("canceled")
        if address is not None and self.cache is not None:
            key = self.cache.key(address)  # the checkpoint points at the cache object
        elif self.stage:
            key = self.storage.staging_key(self.job_id, path.name)
        else:
            key = ""  # kept nowhere but in this attempt's spool
        checkpoint = SegmentCheckpoint(
            index=segment.index,
            key=key,
            bytes=path.stat().st_size,
            sample_rate=self.request.effective_sample_rate,
            chars=len(segment.text),
            digest=segment_digest(segment.text),
            cached=cached,
            utf8_bytes=utf8_bytes(segment.text) if segment.text.strip() else 0,
            marks=marks,
        )
        if checkpoint.key:
            # Shielded: the attempt being torn down must not split the upload from its record.
            await asyncio.shield(asyncio.to_thread(self._keep, checkpoint, path, address))
        if self.on_segment is not None:
            self.on_segment(checkpoint)

    def _keep(self, checkpoint: SegmentCheckpoint, path: Path, address: str | None) -> None:
        """Upload a finished segment (to the cache, else to staging) and record it on
        the job; a segment served from the cache is only recorded."""
        if address is not None and self.cache is not None:
            if not checkpoint.cached:  # a hit is in the cache already
                if self.timestamp_url is not None:  # first: audio without them is a miss
                    self.cache.put_marks(address, checkpoint.marks)
                self.cache.put(address, path, checkpoint.sample_rate)
        else:
            self.storage.upload_file(
                path,
                checkpoint.key,
                content_type="application/octet-stream",
                metadata={"job-id": self.job_id, "segment": str(checkpoint.index)},
            )
        self.store.save_segment(self.job_id, checkpoint.index, checkpoint.to_json())


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error of parallel segments that decides the attempt: a permanent
    provider error (or a spent budget) over anything else, then any real error
    over the cancellations it caused in the other segments, else the first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, SessionsSpent) or (isinstance(exc, ProviderError) and not exc.retryable):
            return exc
    for exc in leaves:
        if not isinstance(exc, StreamCanceled | asyncio.CancelledError):
            return exc
    return leaves[0]
