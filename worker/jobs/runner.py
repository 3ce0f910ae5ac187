"""One attempt at a job, from text to an uploaded file.

:meth:`JobRunner.run` is what the Celery task calls.  It takes the job's lease
(so two workers never run one job), synthesises the segments that have no
checkpoint yet, assembles them in order into one file, uploads it, and records
the outcome.  It never waits for a retry: a transient failure gives the lease
up and lists the job as due after its backoff (``JobStore.schedule_retry``);
a reaper queues it then, for any free worker to take.

Errors decide the outcome (recorded by :mod:`worker.jobs.outcomes`):
permanent ones fail the job with a code; transient
ones are recorded as the last error and retried with backoff until attempts run
out ("gave up after N attempts: ..."), or until a segment has spent its provider
sessions ("gave up after N provider sessions of segment i: ..."); the budgets
are stated in :mod:`worker.retry`.  Attempts whose worker died count too, so a
job that kills every worker that runs it also ends, instead of being re-queued
by the reaper for ever.  A worker that lost the job's lease (it stalled,
another took over) stops — no provider session, no upload — and never decides
the job's outcome (:mod:`worker.lease`).

Each state change is logged once, by :meth:`worker.jobs.store.JobStore.transition`
("job …: running → succeeded after 12.40s"); the runner adds one line when an
attempt starts and one when it ends, with its duration and how it ended.

Each attempt spools to a folder of its own: a stalled worker cleaning up must
never delete the files of the attempt that took over from it.  Its synthesis
runs on its thread's event loop, with the thread's async Redis client and
governor, all kept from one attempt to the next (:mod:`worker.jobs.loops`);
its file is finished and uploaded by :mod:`worker.jobs.assembly`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import redis

from worker.batches import lifecycle as batches
from worker.callbacks.emit import EventType, ProgressThrottle, emit_progress
from worker.fish import ProviderError, TTSRequest
from worker.fish.client import StreamCanceled
from worker.jobs.assembly import Made, assemble_and_upload
from worker.jobs.cache import passage_level, segment_cache
from worker.jobs.checkpoints import SegmentCheckpoint, stored_checkpoints
from worker.jobs.governor import Governor
from worker.jobs.loops import ThreadLoops
from worker.jobs.markup import job_segments
from worker.jobs.model import ErrorCode, Job, JobError, JobStatus, Phase, Progress
from worker.jobs.outcomes import Ended, JobFailed, Outcome, Outcomes, provider_code
from worker.jobs.output import JobOutput
from worker.jobs.spool import drop_spool, make_spool
from worker.jobs.store import AttemptStart, JobStore, MessageStanding
from worker.jobs.synth import SegmentSynthesizer, keeps_staging, provider_config, tts_request
from worker.jobs.text import Segment
from worker.keys import Keys
from worker.lease import Lease, LeaseLost, job_lease, new_owner
from worker.queues import Sender
from worker.retry import SessionBudget, give_up_message, job_policy
from worker.settings import Settings
from worker.storage.client import Storage
from worker.voices.store import VoiceStore, deleted_voice

__all__ = ["JobFailed", "JobRunner", "Outcome"]

log = logging.getLogger(__name__)

#: The record's progress is written at most this often (seconds) while segments
#: finish, and always when the last one does (unless it is the job's only one:
#: the record of its end carries it): a Redis write, and a message to every SSE
#: reader, per write.
PROGRESS_EVERY = 1.0
#: How often (seconds) an attempt looks whether its job was canceled meanwhile.
LOOK_EVERY = 0.5


class JobRunner:
    """Runs job attempts for one worker process; safe to share between threads."""

    def __init__(
        self, settings: Settings, storage: Storage | None = None, *, sender: Sender
    ) -> None:
        self.settings = settings
        self.sender = sender  # queues callbacks and batch builds: the worker's Celery app
        self.keys = Keys(settings.key_prefix)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.store = JobStore(self.redis, self.keys, settings.job_ttl_seconds)
        self.storage = storage or Storage.from_settings(settings)
        self.policy = job_policy(settings)
        self.budget = SessionBudget(total=settings.max_attempts)
        self.progress_throttle = ProgressThrottle(self.redis, self.keys)
        self.outcomes = Outcomes(settings, self.store, self.storage, self.policy, sender=sender)
        # Each thread's event loop, async Redis client and governor, kept between attempts.
        self.loops = ThreadLoops(settings, self.keys)
        # The attempt running on this thread: its output and progress (see _begin_output).
        self._local = threading.local()

    def close(self) -> None:
        """Close the worker threads' event loops and their Redis clients (at shutdown)."""
        self.loops.close()

    # -- the attempt -------------------------------------------------------------

    def run(self, job_id: str, token: str | None = None) -> Outcome:
        """Run one attempt of ``job_id`` for a message carrying ``token`` (see
        :class:`~worker.jobs.store.MessageStanding`)."""
        job, standing = self.store.get_for_message(job_id, token)
        if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return Outcome(job.status if job else None)
        if standing is MessageStanding.STALE:
            log.info("job %s: a newer message replaced this one; dropped", job_id)
            return Outcome(job.status)
        # An earlier version's retry carries the lease owner it kept through its backoff.
        owner = token if standing is MessageStanding.UNTRACKED else None
        lease = job_lease(self.store, job_id, self.settings.job_lease_seconds, owner=owner)
        # One script takes the lease and starts the attempt: the job may have been
        # canceled or have ended meanwhile; if not, it counts the attempt and moves
        # the job to running, and a first attempt's progress (it has no
        # checkpoints) goes with it.
        segments = _segments(job, self.settings.segment_max_chars)
        fresh = _fresh_progress(segments) if segments is not None else None
        sent = time.monotonic()
        start = self.store.start_attempt(
            job.id,
            self.policy.max_attempts,
            created=job.created_at,
            progress=fresh,
            lease=(lease.owner, lease.ttl),
        )
        if not start.leased:
            if start.status in (None, JobStatus.SUCCEEDED, JobStatus.FAILED):
                return Outcome(start.status)  # it ended (or went) meanwhile
            log.info("job %s: running elsewhere; leaving it", job_id)
            return Outcome(JobStatus.RUNNING)
        lease.taken(sent)
        self._local.looked = sent  # when the job's status was last read: by the start
        started = time.monotonic()
        ended = Ended(None, None, "stopped by an error")
        try:
            with lease.renewing():
                ended = self._leased_run(job, lease, start, segments, fresh)
            return Outcome(ended.status, ended.retry_in)
        finally:
            if ended.retry_in is not None:
                self._schedule_retry(job_id, lease, ended.retry_in)
            else:
                lease.release()
            elapsed = time.monotonic() - started
            log.info("job %s: attempt ended after %.1fs: %s", job_id, elapsed, ended.how)
            if ended.retry_in is None and job.batch_id is not None:
                # The job may have ended: its batch may be complete.
                batches.on_job_terminal(
                    job_id,
                    self.settings,
                    store=self.store,
                    sender=self.sender,
                    storage=self.storage,
                )

    def _schedule_retry(self, job_id: str, lease: Lease, delay: float) -> None:
        try:
            if self.store.schedule_retry(job_id, lease.owner, delay, new_owner()) is None:
                log.warning("job %s: lease lost before its retry was scheduled", job_id)
        except redis.RedisError as exc:  # the lease lapses instead: the reapers re-queue it
            log.warning("job %s: could not schedule its retry (%s)", job_id, exc)

    def _leased_run(
        self,
        job: Job,
        lease: Lease,
        start: AttemptStart,
        segments: list[Segment] | None,
        fresh: Progress | None,
    ) -> Ended:
        """What follows the attempt's start (``start``), under its lease."""
        if start.out_of_attempts:
            # The attempts so far ended with their worker (killed, out of
            # memory): one more would likely do the same.
            now = self.store.get(job.id)
            error = now.error if now is not None else None
            last = error.message if error else "the worker running it stopped"
            message = give_up_message(now.attempts if now else 0, last)
            return self.outcomes.fail(job.id, ErrorCode.INTERNAL, message)
        if start.attempt is None:  # gone, or ended
            if start.status is JobStatus.CANCELED:
                # Canceled between attempts: the last one left its checkpoints.
                self.outcomes.clean_staging(job.id)
            return Ended(start.status, None, "nothing to do")
        if start.moved:
            self.outcomes.emit(job.id, EventType.STARTED, job)
        log.info("job %s: attempt %d started", job.id, start.attempt)
        first = fresh if start.first else None
        if first is not None and start.at is not None and first.segments_total > 1:
            # Recorded with the start: announced here.  (A job of one segment has
            # nothing to announce before its end; its status events carry the record.)
            self.store.publish_progress(job.id, first, start.at)
        return self._attempt(job, lease, start.attempt, segments, first)

    def _attempt(
        self,
        job: Job,
        lease: Lease,
        attempt: int,
        segments: list[Segment] | None,
        first: Progress | None,
    ) -> Ended:
        """``first``: the progress of the job's first attempt, recorded as it started."""
        spool: Path | None = None
        try:
            spool = make_spool(self.settings.spool_dir, job.id)
            if segments is None:  # it could not be cut: the error is the attempt's
                segments = job_segments(job.request.text, self.settings.segment_max_chars)
            if not any(seg.text.strip() for seg in segments):
                raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the text is empty: nothing to say")
            if (gone := deleted_voice(VoiceStore(self.redis, self.keys), job)) is not None:
                raise JobFailed(ErrorCode.VOICE_DELETED, gone)
            tts = tts_request(job)
            self.loops.run(self._synthesize(job, lease, segments, tts, spool, first))
            # No upload for a job nobody wants any more, unless its status was read
            # a moment ago (a cancel after that makes the end's transition refuse).
            looked: float = self._local.looked
            if time.monotonic() - looked >= LOOK_EVERY and self._canceled(job.id):
                raise StreamCanceled("canceled")
            lease.check()  # nor for one another worker has taken over
            made = self._assemble_and_upload(job, segments, spool)
        except (StreamCanceled, asyncio.CancelledError, LeaseLost):
            self._drop_output()
            return self.outcomes.canceled_or_lost(job.id, lease)
        except Exception as exc:
            self._drop_output()
            if lease.lost.is_set():  # whatever went wrong, the job is another worker's now
                return self.outcomes.canceled_or_lost(job.id, lease)
            return self.outcomes.failed_attempt(job.id, attempt, exc)
        finally:
            if spool is not None:
                drop_spool(spool)
        staged = [cp.key for cp in made.checkpoints.values()]
        # A first attempt whose checkpoints were kept nowhere recorded none.
        recorded = attempt > 1 or any(staged)
        return self.outcomes.succeeded(
            job, made.output, lease, staged, made.progress, recorded=recorded
        )

    async def _synthesize(
        self,
        job: Job,
        lease: Lease,
        segments: list[Segment],
        tts: TTSRequest,
        spool: Path,
        first: Progress | None,
    ) -> None:
        done: dict[int, SegmentCheckpoint] = {}
        if first is not None:  # recorded with the attempt's start; nothing to read
            progress = first
        else:
            done = stored_checkpoints(self.store, job.id, segments, tts.effective_sample_rate)
            progress = _fresh_progress(segments, done)
        missing = [s for s in segments if s.index not in done]
        output = self._begin_output(job, segments, spool, progress, done)
        if first is None:
            self.store.set_progress(job.id, progress)
        # Segments of earlier attempts come from staging while the rest synthesise.
        fetch = asyncio.to_thread(output.fetch, done, self.storage) if done else None
        fetching = asyncio.ensure_future(fetch) if fetch is not None else None
        try:
            if missing:
                await self._synthesize_missing(job, lease, missing, tts, spool, progress)
            if fetching is not None:
                await fetching
        except BaseException:
            output.abort()
            raise

    async def _synthesize_missing(
        self,
        job: Job,
        lease: Lease,
        missing: list[Segment],
        tts: TTSRequest,
        spool: Path,
        progress: Progress,
    ) -> None:
        cancel = asyncio.Event()
        here = self.loops.current()
        watcher = asyncio.create_task(self._watch_cancel(job.id, cancel, lease))
        try:
            synth = self._synthesizer(job, lease, tts, spool, progress, here.governor)
            try:
                await synth.run(missing, cancel)
            except Exception as exc:
                # Canceled while a segment failed: the cancellation is the story.
                if cancel.is_set() and not isinstance(exc, StreamCanceled):
                    raise StreamCanceled("canceled") from exc
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _synthesizer(
        self,
        job: Job,
        lease: Lease,
        tts: TTSRequest,
        spool: Path,
        progress: Progress,
        governor: Governor,
    ) -> SegmentSynthesizer:
        """The attempt's synthesizer, reporting progress and errors on the job."""

        output: JobOutput = self._local.output
        held: dict[int, SegmentCheckpoint] = self._local.checkpoints
        written = [time.monotonic()]  # when the record's progress was last written

        def finished(cp: SegmentCheckpoint) -> None:
            output.add(cp)  # encoded as soon as every segment before it is in
            held[cp.index] = cp
            progress.segments_done += 1
            progress.segments_encoded = output.encoded
            last = progress.segments_done >= progress.segments_total
            if last:  # every segment is in: what is left is the encoder's
                progress.phase = Phase.ENCODING
            progress.chars_done += cp.chars
            progress.audio_seconds = round(progress.audio_seconds + cp.duration_s, 3)
            if cp.cached:
                progress.segments_cached += 1
                progress.utf8_bytes_cached += cp.utf8_bytes
            else:
                progress.utf8_bytes_sent += cp.utf8_bytes
            # A job of one segment has next to nothing left to encode: the
            # upload's write, a moment later, tells its readers the rest.
            alone = last and progress.segments_total == 1
            if not alone and (last or time.monotonic() - written[0] >= PROGRESS_EVERY):
                written[0] = time.monotonic()
                self.store.set_progress(job.id, progress)
            emit_progress(
                job,
                progress,
                settings=self.settings,
                throttle=self.progress_throttle,
                sender=self.sender,
            )

        def failed(exc: ProviderError) -> None:
            if lease.lost.is_set():  # not this worker's job any more
                return
            self.store.record_error(
                job.id,
                JobError(code=provider_code(exc), message=exc.message, retryable=exc.retryable),
            )

        return SegmentSynthesizer(
            job_id=job.id,
            owner=lease.owner,
            provider=provider_config(self.settings, job.request.model),
            request=tts,
            governor=governor,
            storage=self.storage,
            store=self.store,
            spool=spool,
            parallel=self.settings.job_parallel_segments,
            budget=self.budget,
            priority=batches.governor_priority(job),
            on_segment=finished,
            on_error=failed,
            lease=lease,
            voices={name: tts_request(job, name) for name in job.request.passage_voices},
            level_db=passage_level(job.request),
            cache=segment_cache(self.settings, self.storage, self.redis, self.keys, job),
            timestamp_url=self.settings.provider_timestamp_url if job.request.timestamps else None,
            stage=keeps_staging(job, progress.segments_total),
        )

    async def _watch_cancel(self, job_id: str, cancel: asyncio.Event, lease: Lease) -> None:
        """Poll the job's status; a canceled job (or a lost lease) stops streaming.

        The first look is half a second in: the record was read under the lease
        just before, and most short jobs are done by then."""
        while not cancel.is_set():
            await asyncio.sleep(LOOK_EVERY)
            if lease.lost.is_set() or await asyncio.to_thread(self._canceled, job_id):
                cancel.set()
                return
            self._local.looked = time.monotonic()

    def _begin_output(
        self,
        job: Job,
        segments: list[Segment],
        spool: Path,
        progress: Progress,
        done: dict[int, SegmentCheckpoint],
    ) -> JobOutput:
        """The attempt's output, encoding from now on; kept for this thread's attempt,
        with its progress and the checkpoints it holds (``done``, then each it makes)."""
        stale: JobOutput | None = getattr(self._local, "output", None)
        if stale is not None:  # an attempt of this thread that never got to assemble
            stale.abort()
        output = JobOutput(job, segments, spool, self.settings, self.storage)
        self._local.output, self._local.progress = output, progress
        self._local.checkpoints = dict(done)
        return output

    def _drop_output(self) -> None:
        """Stop this thread's attempt's output (encoder and upload), if it still runs."""
        output: JobOutput | None = getattr(self._local, "output", None)
        self._local.output = self._local.progress = self._local.checkpoints = None
        if output is not None:
            output.abort()

    def _assemble_and_upload(self, job: Job, segments: list[Segment], spool: Path) -> Made:
        """The attempt's file finished and uploaded (:mod:`worker.jobs.assembly`), with
        this thread's output, progress and checkpoints if they are this attempt's."""
        output: JobOutput | None = getattr(self._local, "output", None)
        progress: Progress | None = getattr(self._local, "progress", None)
        held: dict[int, SegmentCheckpoint] | None = getattr(self._local, "checkpoints", None)
        self._local.output = self._local.progress = self._local.checkpoints = None
        if output is None or output.spool != spool:
            output, progress = JobOutput(job, segments, spool, self.settings, self.storage), None
            held = None
        return assemble_and_upload(
            job, segments, output, progress, held, storage=self.storage, store=self.store
        )

    # -- helpers -----------------------------------------------------------------

    def _canceled(self, job_id: str) -> bool:
        status = self.store.status(job_id)
        return status is None or status is JobStatus.CANCELED


def _segments(job: Job, max_chars: int) -> list[Segment] | None:
    """The job's segments; None if its text cannot be cut (the attempt tells why)."""
    try:
        return job_segments(job.request.text, max_chars)
    except Exception:
        return None


def _fresh_progress(
    segments: list[Segment], done: Mapping[int, SegmentCheckpoint] | None = None
) -> Progress:
    """The progress of an attempt starting with the checkpoints ``done``."""
    done = done or {}
    return Progress(
        segments_total=len(segments),
        segments_done=sum(1 for s in segments if s.index in done),
        chars_total=sum(len(s.text) for s in segments),
        chars_done=sum(c.chars for c in done.values()),
        audio_seconds=round(sum(c.duration_s for c in done.values()), 3),
        segments_cached=sum(c.cached for c in done.values()),
        utf8_bytes_cached=sum(c.utf8_bytes for c in done.values() if c.cached),
        utf8_bytes_sent=sum(c.utf8_bytes for c in done.values() if not c.cached),
    )
