"""One attempt at a job, from text to an uploaded file.

:meth:`JobRunner.run` is what the Celery task calls.  It takes the job's lease
(so two workers never run one job), synthesises the segments that have no
checkpoint yet, assembles them in order into one file, uploads it, and records
the outcome.  It never waits for a retry: a transient failure gives the lease
up and lists the job as due after its backoff (``JobStore.schedule_retry``);
a reaper queues it then, for any free worker to take.

Errors decide the outcome: permanent ones fail the job with a code; transient
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
never delete the files of the attempt that took over from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import redis
import redis.asyncio

from worker.audio import AudioError, SegmentAudio, provider_pcm_rate
from worker.batches import lifecycle as batches
from worker.callbacks.emit import EventType, ProgressThrottle, emit_job_event, emit_progress
from worker.fish import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderCreditError,
    ProviderError,
    TTSRequest,
)
from worker.fish.client import StreamCanceled
from worker.jobs.cache import passage_level, segment_cache
from worker.jobs.captions import caption_files, caption_marks, job_timeline, upload_captions
from worker.jobs.governor import Governor
from worker.jobs.markup import job_segments
from worker.jobs.model import (
    Captions,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Output,
    Phase,
    Progress,
)
from worker.jobs.output import CheckpointLost, JobOutput
from worker.jobs.spool import drop_spool, make_spool
from worker.jobs.store import JobStore, MessageStanding
from worker.jobs.synth import (
    SegmentCheckpoint,
    SegmentSynthesizer,
    SessionsSpent,
    UnreadableReference,
    provider_config,
    stored_checkpoints,
    tts_request,
)
from worker.jobs.text import Segment
from worker.keys import Keys
from worker.lease import Lease, LeaseLost, job_lease, new_owner
from worker.queues import Sender
from worker.retry import SessionBudget, give_up_message, job_policy
from worker.settings import Settings
from worker.storage.client import Storage, StorageError
from worker.voices.store import VoiceStore, deleted_voice

log = logging.getLogger(__name__)

#: The record's progress is written at most this often (seconds) while segments
#: finish, and always when the last one does: a Redis write, and a message to
#: every SSE reader, per write.
PROGRESS_EVERY = 0.5


class JobFailed(Exception):
    """A permanent failure: the job ends ``failed`` with this code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a message ended: the job's status, and the backoff of a retry it scheduled."""

    status: JobStatus | None
    retry_in: float | None = None


class _Ended(NamedTuple):
    """How one attempt ended: the job's status, a retry delay, and words for the log."""

    status: JobStatus | None
    retry_in: float | None
    how: str


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
        # The attempt running on this thread: its output and progress (see _begin_output).
        self._local = threading.local()

    # -- the attempt -------------------------------------------------------------

    def run(self, job_id: str, token: str | None = None) -> Outcome:
        """Run one attempt of ``job_id`` for a message carrying ``token`` (see
        :class:`~worker.jobs.store.MessageStanding`)."""
        job = self.store.get(job_id)
        if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return Outcome(job.status if job else None)
        standing = self.store.message_standing(job_id, token)
        if standing is MessageStanding.STALE:
            log.info("job %s: a newer message replaced this one; dropped", job_id)
            return Outcome(job.status)
        # An earlier version's retry carries the lease owner it kept through its backoff.
        owner = token if standing is MessageStanding.UNTRACKED else None
        lease = job_lease(self.store, job_id, self.settings.job_lease_seconds, owner=owner)
        if not lease.acquire():
            log.info("job %s: running elsewhere; leaving it", job_id)
            return Outcome(JobStatus.RUNNING)
        started = time.monotonic()
        ended = _Ended(None, None, "stopped by an error")
        try:
            with lease.renewing():
                ended = self._leased_run(job_id, lease)
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

    def _leased_run(self, job_id: str, lease: Lease) -> _Ended:
        # Read again under the lease: it may have been canceled or finished meanwhile.
        job = self.store.get(job_id)
        if job is None or job.status.terminal:
            if job is not None and job.status is JobStatus.CANCELED:
                # Canceled between attempts: the last one left its checkpoints.
                self._clean_staging(job_id)
            return _Ended(job.status if job else None, None, "nothing to do")
        if job.attempts >= self.policy.max_attempts:
            # The attempts so far ended with their worker (killed, out of
            # memory): one more would likely do the same.
            last = job.error.message if job.error else "the worker running it stopped"
            message = give_up_message(job.attempts, last)
            return self._fail(job_id, ErrorCode.INTERNAL, message)
        if self.store.transition(job_id, JobStatus.RUNNING):
            self._emit(job_id, EventType.STARTED, job)
        attempt = self.store.begin_attempt(job_id)
        log.info("job %s: attempt %d started", job_id, attempt)
        return self._attempt(job, lease, attempt)

    def _attempt(self, job: Job, lease: Lease, attempt: int) -> _Ended:
        spool: Path | None = None
        try:
            spool = make_spool(self.settings.spool_dir, job.id)
            segments = job_segments(job.request.text, self.settings.segment_max_chars)
            if not any(seg.text.strip() for seg in segments):
                raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the text is empty: nothing to say")
            if (gone := deleted_voice(VoiceStore(self.redis, self.keys), job)) is not None:
                raise JobFailed(ErrorCode.VOICE_DELETED, gone)
            tts = tts_request(job)
            asyncio.run(self._synthesize(job, lease, segments, tts, spool))
            if self._canceled(job.id):  # no upload for a job nobody wants any more
                raise StreamCanceled("canceled")
            lease.check()  # nor for one another worker has taken over
            output = self._assemble_and_upload(job, segments, spool)
        except (StreamCanceled, asyncio.CancelledError, LeaseLost):
            return self._canceled_or_lost(job.id, lease)
        except Exception as exc:
            if lease.lost.is_set():  # whatever went wrong, the job is another worker's now
                return self._canceled_or_lost(job.id, lease)
            return self._failed_attempt(job.id, attempt, exc)
        finally:
            if spool is not None:
                drop_spool(spool)
        return self._succeeded(job, output)

    async def _synthesize(
        self, job: Job, lease: Lease, segments: list[Segment], tts: TTSRequest, spool: Path
    ) -> None:
        done = stored_checkpoints(self.store, job.id, segments, tts.effective_sample_rate)
        missing = [s for s in segments if s.index not in done]
        progress = Progress(
            segments_total=len(segments),
            segments_done=len(segments) - len(missing),
            chars_total=sum(len(s.text) for s in segments),
            chars_done=sum(c.chars for c in done.values()),
            audio_seconds=round(sum(c.duration_s for c in done.values()), 3),
            segments_cached=sum(c.cached for c in done.values()),
            utf8_bytes_cached=sum(c.utf8_bytes for c in done.values() if c.cached),
            utf8_bytes_sent=sum(c.utf8_bytes for c in done.values() if not c.cached),
        )
        output = self._begin_output(job, segments, spool, progress)
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
        client = redis.asyncio.Redis.from_url(self.settings.redis_url)
        watcher = asyncio.create_task(self._watch_cancel(job.id, cancel, lease))
        try:
            synth = self._synthesizer(job, lease, tts, spool, progress, client)
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
            await client.aclose()

    def _synthesizer(
        self,
        job: Job,
        lease: Lease,
        tts: TTSRequest,
        spool: Path,
        progress: Progress,
        client: redis.asyncio.Redis,
    ) -> SegmentSynthesizer:
        """The attempt's synthesizer, reporting progress and errors on the job."""

        output: JobOutput = self._local.output
        written = [time.monotonic()]  # when the record's progress was last written

        def finished(cp: SegmentCheckpoint) -> None:
            output.add(cp)  # encoded as soon as every segment before it is in
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
            if last or time.monotonic() - written[0] >= PROGRESS_EVERY:
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
                JobError(code=_provider_code(exc), message=exc.message, retryable=exc.retryable),
            )

        governor = Governor(
            client,
            self.keys,
            limit=self.settings.provider_slots,
            lease_seconds=self.settings.provider_lease_seconds,
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
        )

    async def _watch_cancel(self, job_id: str, cancel: asyncio.Event, lease: Lease) -> None:
        """Poll the job's status; a canceled job (or a lost lease) stops streaming.

        The first look is half a second in: the record was read under the lease
        just before, and most short jobs are done by then."""
        while not cancel.is_set():
            await asyncio.sleep(0.5)
            if lease.lost.is_set() or await asyncio.to_thread(self._canceled, job_id):
                cancel.set()
                return

    def _begin_output(
        self, job: Job, segments: list[Segment], spool: Path, progress: Progress
    ) -> JobOutput:
        """The attempt's output, encoding from now on; kept for this thread's attempt."""
        stale: JobOutput | None = getattr(self._local, "output", None)
        if stale is not None:  # an attempt of this thread that never got to assemble
            stale.abort()
        output = JobOutput(job, segments, spool, self.settings, self.storage)
        self._local.output, self._local.progress = output, progress
        return output

    def _drop_output(self) -> None:
        """Stop this thread's attempt's output (encoder and upload), if it still runs."""
        output: JobOutput | None = getattr(self._local, "output", None)
        self._local.output = self._local.progress = None
        if output is not None:
            output.abort()

    def _assemble_and_upload(self, job: Job, segments: list[Segment], spool: Path) -> Output:
        output: JobOutput | None = getattr(self._local, "output", None)
        progress: Progress | None = getattr(self._local, "progress", None)
        self._local.output = self._local.progress = None
        if output is None or output.spool != spool:
            output, progress = JobOutput(job, segments, spool, self.settings, self.storage), None
        try:
            parts = self._complete(job, segments, output)
            if progress is not None and progress.phase is not Phase.ENCODING:
                self._set_phase(job.id, progress, Phase.ENCODING, output)
            audio = output.finish()
        except BaseException:
            output.abort()
            raise
        batches.keep_chapter_master(job, parts, storage=self.storage, store=self.store)
        self._set_phase(job.id, progress, Phase.UPLOADING, output)
        uploaded = output.upload(audio)
        if job.request.timestamps is None:
            return uploaded
        return uploaded.model_copy(
            update={"captions": self._captions(job, segments, parts, uploaded)}
        )

    def _captions(
        self, job: Job, segments: list[Segment], parts: list[SegmentAudio], uploaded: Output
    ) -> list[Captions]:
        """The job's captions, from its checkpoints' word marks, uploaded beside its output."""
        rate = uploaded.sample_rate
        checkpoints = stored_checkpoints(self.store, job.id, segments, provider_pcm_rate(rate))
        marks = caption_marks(job, segments, checkpoints, job_timeline(parts, rate))
        return upload_captions(self.storage, job, uploaded.key, caption_files(marks))

    def _complete(self, job: Job, segments: list[Segment], output: JobOutput) -> list[SegmentAudio]:
        """Every segment's PCM in the spool and handed to the output, in text order."""
        pcm_rate = provider_pcm_rate(output.rate)
        checkpoints = stored_checkpoints(self.store, job.id, segments, pcm_rate)
        parts = output.complete(checkpoints, self.storage)
        if not any(cp.bytes for cp in checkpoints.values()):
            # Encoders cannot make a valid mp3, opus or m4a of nothing.
            raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the provider returned no audio at all")
        return parts

    def _set_phase(
        self, job_id: str, progress: Progress | None, phase: Phase, output: JobOutput
    ) -> None:
        """Tell the job's readers what the attempt does now (one progress write)."""
        if progress is None:  # not this attempt's own: leave the record's as it is
            return
        progress.phase = phase
        progress.segments_encoded = output.encoded
        self.store.set_progress(job_id, progress)

    # -- outcomes ----------------------------------------------------------------

    def _succeeded(self, job: Job, output: Output) -> _Ended:
        if not self.store.transition(job.id, JobStatus.SUCCEEDED, output=output):
            now = self.store.get(job.id)
            theirs = now.output if now is not None else None
            if theirs is None or theirs.key != output.key:
                # Canceled while we uploaded: leave nothing behind.  (If another
                # worker finished first under the same key, the object is its output.)
                self._delete_quietly(job.id, output.key)
            self._clean_staging(job.id)
            status = now.status if now else None
            return _Ended(status, None, f"its output was not wanted (the job is {status})")
        self._clean_staging(job.id, recorded_only=True)
        self._emit(job.id, EventType.SUCCEEDED, job)
        return _Ended(JobStatus.SUCCEEDED, None, f"succeeded ({output.duration_s:.1f}s of audio)")

    def _failed_attempt(self, job_id: str, attempt: int, exc: Exception) -> _Ended:
        """Fail the job for a permanent error; schedule a retry for a transient one."""
        self._drop_output()
        if isinstance(exc, JobFailed):
            return self._fail(job_id, exc.code, exc.message)
        if isinstance(exc, UnreadableReference):
            return self._fail(job_id, ErrorCode.REFERENCE_AUDIO, str(exc))
        if isinstance(exc, SessionsSpent):
            return self._sessions_spent(job_id, exc)
        if isinstance(exc, PermanentProviderError):
            return self._fail(job_id, _provider_code(exc), exc.message)
        if isinstance(exc, ProviderError):
            return self._transient(job_id, attempt, _provider_code(exc), exc.message)
        if isinstance(exc, StorageError):
            if not exc.retryable:  # access denied, no such bucket, a bad key: configuration
                return self._fail(job_id, ErrorCode.STORAGE, exc.message)
            return self._transient(job_id, attempt, ErrorCode.STORAGE, exc.message)
        if isinstance(exc, CheckpointLost):
            if exc.object_gone:  # deleted behind our back (a lifecycle rule): start over
                self.store.clear_segments(job_id)
            return self._transient(job_id, attempt, ErrorCode.STORAGE, str(exc))
        if isinstance(exc, redis.RedisError | OSError):  # Redis or the spool disk, for a moment
            return self._transient(job_id, attempt, ErrorCode.INTERNAL, f"{exc!r}")
        if isinstance(exc, AudioError):
            return self._fail(job_id, ErrorCode.INTERNAL, f"could not assemble the audio: {exc}")
        # A bug: retrying would only repeat it.
        log.exception("job %s: attempt %d failed unexpectedly", job_id, attempt, exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return self._fail(job_id, ErrorCode.INTERNAL, message)

    def _sessions_spent(self, job_id: str, exc: SessionsSpent) -> _Ended:
        """A segment spent its provider sessions: fail the job with the last error seen."""
        if exc.last is not None:
            code, last = _provider_code(exc.last), exc.last.message
        else:  # its last session was in an earlier attempt: that one recorded why it failed
            job = self.store.get(job_id)
            error = job.error if job is not None else None
            code, last = ErrorCode.PROVIDER_UNAVAILABLE, "the worker running it stopped"
            if error is not None:
                code = next((c for c in ErrorCode if c.value == error.code), code)
                last = error.message
        of = f"segment {exc.index}"
        message = give_up_message(exc.sessions, last, unit="provider session", of=of)
        return self._fail(job_id, code, message)

    def _fail(self, job_id: str, code: ErrorCode, message: str) -> _Ended:
        error = JobError(code=code, message=message)
        if self.store.transition(job_id, JobStatus.FAILED, error=error):
            self._emit(job_id, EventType.FAILED)
        self._clean_staging(job_id)
        now = self.store.get(job_id)
        return _Ended(now.status if now else None, None, f"failed ({code.value}: {message})")

    def _transient(self, job_id: str, attempt: int, code: ErrorCode, message: str) -> _Ended:
        if not self.policy.should_retry(attempt, True):
            return self._fail(job_id, code, give_up_message(attempt, message))
        now = self.store.get(job_id)
        if now is None or now.status.terminal:  # canceled meanwhile: no retry
            if now is not None and now.status is JobStatus.CANCELED:
                self._clean_staging(job_id)
            return _Ended(now.status if now else None, None, f"{message}; no retry: it ended")
        self.store.record_error(job_id, JobError(code=code, message=message, retryable=True))
        delay = self.policy.delay(attempt, random.random())
        return _Ended(JobStatus.RUNNING, delay, f"{message}; retry in {delay:.1f}s")

    def _canceled_or_lost(self, job_id: str, lease: Lease) -> _Ended:
        self._drop_output()
        if lease.lost.is_set():
            return _Ended(JobStatus.RUNNING, None, "lease lost; another worker carries on")
        self._clean_staging(job_id)
        return _Ended(JobStatus.CANCELED, None, "canceled")

    def _emit(self, job_id: str, event: EventType, known: Job | None = None) -> None:
        """Tell the job's callback receiver what happened (``job.canceled`` is the API's).

        ``known`` is the job as this attempt read it: without a callback URL
        there is nobody to tell, and the record need not be read again."""
        if known is not None and not known.request.callback_url:
            return
        try:
            job = self.store.get(job_id)
        except redis.RedisError:
            log.warning("job %s: %s callback skipped; the store is unavailable", job_id, event)
            return
        if job is not None:
            emit_job_event(job, event, settings=self.settings, sender=self.sender)

    def _clean_staging(self, job_id: str, *, recorded_only: bool = False) -> None:
        """Delete the job's staging objects and checkpoint records.

        ``recorded_only`` (a job that succeeded): only the objects its checkpoint
        records name, without listing the prefix — none at all when its segments
        came from the segment cache.  Only a worker killed between an upload and
        its record leaves an unrecorded object; the staging lifecycle rule
        (docs/operations.md) expires those.
        """
        prefix = self.storage.staging_key(job_id, "")
        try:
            if recorded_only:
                recorded = (str(cp.get("key", "")) for cp in self.store.segments(job_id).values())
                self.storage.delete_many([key for key in recorded if key.startswith(prefix)])
            else:
                self.storage.delete_prefix(prefix)
        except StorageError:
            log.warning("job %s: staging cleanup failed; objects may remain", job_id)
        self.store.clear_segments(job_id)

    def _delete_quietly(self, job_id: str, key: str) -> None:
        try:
            self.storage.delete(key)
        except StorageError:
            log.warning("job %s: could not delete %s; it may remain", job_id, key)

    # -- helpers -----------------------------------------------------------------

    def _canceled(self, job_id: str) -> bool:
        status = self.store.status(job_id)
        return status is None or status is JobStatus.CANCELED


def _provider_code(exc: Exception) -> ErrorCode:
    if isinstance(exc, ProviderAuthError):
        return ErrorCode.PROVIDER_AUTH
    if isinstance(exc, ProviderCreditError):
        return ErrorCode.PROVIDER_CREDIT
    if isinstance(exc, PermanentProviderError):
        return ErrorCode.PROVIDER_REQUEST
    return ErrorCode.PROVIDER_UNAVAILABLE
