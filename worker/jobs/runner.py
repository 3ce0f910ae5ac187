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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import redis
import redis.asyncio

from worker.audio import AudioError, SegmentAudio, assemble, format_info, provider_pcm_rate
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
from worker.jobs.governor import Governor
from worker.jobs.markup import job_segments
from worker.jobs.model import ErrorCode, Job, JobError, JobStatus, Output, Progress
from worker.jobs.store import JobStore, MessageStanding
from worker.jobs.synth import (
    SegmentCheckpoint,
    SegmentSynthesizer,
    SessionsSpent,
    UnreadableReference,
    drop_spool,
    make_spool,
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
from worker.storage.client import ObjectNotFound, Storage, StorageError
from worker.voices.store import VoiceStore, deleted_voice

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A permanent failure: the job ends ``failed`` with this code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CheckpointLost(Exception):
    """A finished segment's staging object is gone; the next attempt redoes it."""


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
            if ended.retry_in is None:  # the job may have ended: its batch may be complete
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
            self._emit(job_id, EventType.STARTED)
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
        )
        self.store.set_progress(job.id, progress)
        if not missing:
            return
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

        def finished(cp: SegmentCheckpoint) -> None:
            progress.segments_done += 1
            progress.chars_done += cp.chars
            progress.audio_seconds = round(progress.audio_seconds + cp.duration_s, 3)
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
        )

    async def _watch_cancel(self, job_id: str, cancel: asyncio.Event, lease: Lease) -> None:
        """Poll the job's status; a canceled job (or a lost lease) stops streaming."""
        while not cancel.is_set():
            if lease.lost.is_set() or await asyncio.to_thread(self._canceled, job_id):
                cancel.set()
                return
            await asyncio.sleep(0.5)

    def _assemble_and_upload(self, job: Job, segments: list[Segment], spool: Path) -> Output:
        req = job.request
        info = format_info(req.format)
        rate = req.sample_rate or info.default_sample_rate
        parts = self._segment_audio(job, segments, spool, provider_pcm_rate(rate))
        out = spool / f"output{info.extension}"
        audio = assemble(parts, out, info.format, rate, bitrate_kbps=req.bitrate_kbps)
        batches.keep_chapter_master(job, parts, storage=self.storage, store=self.store)
        key = req.output_key or self.storage.output_key(
            {"tenant": job.tenant, "job_id": job.id, "ext": info.extension.lstrip(".")}
        )
        self.storage.upload_file(
            out,
            key,
            content_type=audio.content_type,
            metadata={"job-id": job.id, "duration-s": f"{audio.duration_s:.3f}"},
        )
        return Output(
            url=self.storage.url(key),
            bucket=self.storage.bucket,
            key=key,
            bytes=audio.bytes,
            duration_s=round(audio.duration_s, 3),
            format=info.format.value,
            sample_rate=audio.sample_rate,
            content_type=audio.content_type,
            sha256=audio.sha256,
        )

    def _segment_audio(
        self, job: Job, segments: list[Segment], spool: Path, pcm_rate: int
    ) -> list[SegmentAudio]:
        """Every segment's PCM in the spool, in text order, with the pause after it."""
        checkpoints = stored_checkpoints(self.store, job.id, segments, pcm_rate)
        pause = job.request.paragraph_silence_ms
        if pause is None:
            pause = self.settings.paragraph_silence_ms
        parts = []
        for seg in segments:
            cp = checkpoints.get(seg.index)
            if cp is None:  # cleared or replaced meanwhile (a stalled worker): redo it
                raise CheckpointLost(f"segment {seg.index} has no checkpoint")
            path = spool / f"{seg.index:06d}.pcm"
            if not path.exists() or path.stat().st_size != cp.bytes:
                try:
                    self.storage.download_file(cp.key, path)
                except ObjectNotFound as exc:
                    # Deleted behind our back (a lifecycle rule, a cleanup): start over.
                    self.store.clear_segments(job.id)
                    raise CheckpointLost(f"segment {seg.index}'s audio is gone: {exc}") from exc
            last = seg.index == len(segments) - 1
            silence = 0 if last or not seg.paragraph_end else pause
            parts.append(SegmentAudio(path, cp.sample_rate, silence + seg.break_ms))
        if not any(cp.bytes for cp in checkpoints.values()):
            # Encoders cannot make a valid mp3, opus or m4a of nothing.
            raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the provider returned no audio at all")
        return parts

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
        self._clean_staging(job.id)
        self._emit(job.id, EventType.SUCCEEDED)
        return _Ended(JobStatus.SUCCEEDED, None, f"succeeded ({output.duration_s:.1f}s of audio)")

    def _failed_attempt(self, job_id: str, attempt: int, exc: Exception) -> _Ended:
        """Fail the job for a permanent error; schedule a retry for a transient one."""
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
        if lease.lost.is_set():
            return _Ended(JobStatus.RUNNING, None, "lease lost; another worker carries on")
        self._clean_staging(job_id)
        return _Ended(JobStatus.CANCELED, None, "canceled")

    def _emit(self, job_id: str, event: EventType) -> None:
        """Tell the job's callback receiver what happened (``job.canceled`` is the API's)."""
        try:
            job = self.store.get(job_id)
        except redis.RedisError:
            log.warning("job %s: %s callback skipped; the store is unavailable", job_id, event)
            return
        if job is not None:
            emit_job_event(job, event, settings=self.settings, sender=self.sender)

    def _clean_staging(self, job_id: str) -> None:
        try:
            self.storage.delete_prefix(self.storage.staging_key(job_id, ""))
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
        job = self.store.get(job_id)
        return job is None or job.status is JobStatus.CANCELED


def _provider_code(exc: Exception) -> ErrorCode:
    if isinstance(exc, ProviderAuthError):
        return ErrorCode.PROVIDER_AUTH
    if isinstance(exc, ProviderCreditError):
        return ErrorCode.PROVIDER_CREDIT
    if isinstance(exc, PermanentProviderError):
        return ErrorCode.PROVIDER_REQUEST
    return ErrorCode.PROVIDER_UNAVAILABLE
