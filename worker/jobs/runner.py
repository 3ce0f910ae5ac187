"""One attempt at a job, from text to an uploaded file.

:meth:`JobRunner.run` is what the Celery task calls.  It takes the job's lease
(so two workers never run one job), synthesises the segments that have no
checkpoint yet, assembles them in order into one file, uploads it, and records
the outcome.  It never sleeps for a retry itself: it returns how long to wait,
and the task re-queues itself.

Errors decide the outcome: permanent ones fail the job with a code; transient
ones are recorded as the last error and retried with backoff until attempts run
out ("gave up after N attempts: ...").  Attempts whose worker died count too,
so a job that kills every worker that runs it also ends, instead of being
re-queued by the reaper for ever.  A worker that lost the job's lease (it
stalled, another took over) never decides the job's outcome.

Each attempt spools to a folder of its own: a stalled worker cleaning up must
never delete the files of the attempt that took over from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio

from worker.audio import (
    AudioError,
    SegmentAudio,
    assemble,
    check_reference_audio,
    format_info,
    provider_pcm_rate,
)
from worker.batches import lifecycle as batches
from worker.callbacks.delivery import EventType, ProgressThrottle, emit_job_event, emit_progress
from worker.fish import (
    AudioFormat,
    PermanentProviderError,
    ProviderAuthError,
    ProviderCreditError,
    ProviderError,
    ReferenceAudio,
    TTSRequest,
)
from worker.fish.client import ProviderConfig, StreamCanceled
from worker.jobs.governor import Governor
from worker.jobs.model import ErrorCode, Job, JobError, JobStatus, Output, Progress
from worker.jobs.store import JobStore
from worker.jobs.synth import SegmentCheckpoint, SegmentSynthesizer, drop_spool, make_spool
from worker.jobs.text import Segment, segment_text
from worker.keys import Keys
from worker.retry import RetryPolicy, give_up_message
from worker.settings import Settings
from worker.storage.client import ObjectNotFound, Storage, StorageError

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
    """What the task should do next: nothing, or run again after ``retry_in`` seconds."""

    status: JobStatus | None
    retry_in: float | None = None
    token: str | None = None


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


class JobRunner:
    """Runs job attempts for one worker process; safe to share between threads."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.store = JobStore(self.redis, self.keys, settings.job_ttl_seconds)
        self.storage = storage or Storage.from_settings(settings)
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        )
        self.progress_throttle = ProgressThrottle(self.redis, self.keys)

    # -- the attempt -------------------------------------------------------------

    def run(self, job_id: str, token: str | None = None) -> Outcome:
        """Run one attempt of ``job_id``. ``token`` is the lease owner a retry inherits."""
        job = self.store.get(job_id)
        if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return Outcome(job.status if job else None)
        owner = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        lease = self.settings.job_lease_seconds
        if not (
            self.store.acquire_job_lease(job_id, owner, lease)
            or self.store.renew_job_lease(job_id, owner, lease)
        ):
            log.info("job %s: running elsewhere; leaving it", job_id)
            return Outcome(JobStatus.RUNNING)
        lost = threading.Event()
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_lease, args=(job_id, owner, stop, lost), daemon=True
        )
        renewer.start()
        retry_in: float | None = None
        started = time.monotonic()
        try:
            # Read again under the lease: it may have been canceled or finished meanwhile.
            job = self.store.get(job_id)
            if job is None or job.status.terminal:
                if job is not None and job.status is JobStatus.CANCELED:
                    # Canceled between attempts: the last one left its checkpoints.
                    self._clean_staging(job_id)
                return Outcome(job.status if job else None)
            if token is None and job.attempts >= self.policy.max_attempts:
                # The attempts so far ended with their worker (killed, out of
                # memory): one more would likely do the same.
                last = job.error.message if job.error else "the worker running it stopped"
                message = give_up_message(job.attempts, last)
                return Outcome(self._fail(job_id, ErrorCode.INTERNAL, message))
            if self.store.transition(job_id, JobStatus.RUNNING):
                self._emit(job_id, EventType.STARTED)
            attempt = self.store.begin_attempt(job_id)
            log.info("job %s: attempt %d started", job_id, attempt)
            status, retry_in = self._attempt(job, owner, attempt, lost)
            return Outcome(status, retry_in, owner if retry_in is not None else None)
        finally:
            stop.set()
            renewer.join()
            if retry_in is not None:
                # Keep the lease through the backoff so the reaper leaves the job be;
                # if this worker dies meanwhile, the lease lapses and the job is re-queued.
                self.store.renew_job_lease(job_id, owner, retry_in + lease)
            else:
                self.store.release_job_lease(job_id, owner)
            log.info("job %s: attempt ended after %.1fs", job_id, time.monotonic() - started)
            if retry_in is None:  # the job may have ended: its batch may be complete
                batches.on_job_terminal(
                    job_id, self.settings, store=self.store, storage=self.storage
                )

    def _attempt(
        self, job: Job, owner: str, attempt: int, lost: threading.Event
    ) -> tuple[JobStatus | None, float | None]:
        spool: Path | None = None
        try:
            spool = make_spool(self.settings.spool_dir, job.id)
            segments = segment_text(job.request.text, self.settings.segment_max_chars)
            if not any(seg.text.strip() for seg in segments):
                raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the text is empty: nothing to say")
            tts = self._tts_request(job)
            asyncio.run(self._synthesize(job, owner, segments, tts, spool, lost))
            if self._canceled(job.id):  # no upload for a job nobody wants any more
                raise StreamCanceled("canceled")
            output = self._assemble_and_upload(job, segments, spool)
        except (StreamCanceled, asyncio.CancelledError):
            return self._canceled_or_lost(job.id, lost)
        except Exception as exc:
            if lost.is_set():  # whatever went wrong, the job is another worker's now
                return self._canceled_or_lost(job.id, lost)
            return self._failed_attempt(job.id, attempt, exc)
        finally:
            if spool is not None:
                drop_spool(spool)
        return self._succeeded(job, output)

    async def _synthesize(
        self,
        job: Job,
        owner: str,
        segments: list[Segment],
        tts: TTSRequest,
        spool: Path,
        lost: threading.Event,
    ) -> None:
        done = self._checkpoints(job.id, segments, tts.effective_sample_rate)
        missing = [s for s in segments if s.index not in done]
        progress = Progress(
            segments_total=len(segments),
            segments_done=len(segments) - len(missing),
            chars_total=len(job.request.text),
            chars_done=sum(c.chars for c in done.values()),
            audio_seconds=round(sum(c.duration_s for c in done.values()), 3),
        )
        self.store.set_progress(job.id, progress)
        if not missing:
            return

        def finished(cp: SegmentCheckpoint) -> None:
            progress.segments_done += 1
            progress.chars_done += cp.chars
            progress.audio_seconds = round(progress.audio_seconds + cp.duration_s, 3)
            self.store.set_progress(job.id, progress)
            emit_progress(job, progress, settings=self.settings, throttle=self.progress_throttle)

        def failed(exc: ProviderError) -> None:
            if lost.is_set():  # not this worker's job any more
                return
            self.store.record_error(
                job.id,
                JobError(code=_provider_code(exc), message=exc.message, retryable=exc.retryable),
            )

        def still_leased() -> bool:
            try:
                if lost.is_set() or not self.store.renew_job_lease(job.id, owner, lease):
                    lost.set()
                    return False
            except redis.RedisError:
                pass  # a blip: the renewer thread has the last word
            return True

        lease = self.settings.job_lease_seconds
        cancel = asyncio.Event()
        client = redis.asyncio.Redis.from_url(self.settings.redis_url)
        watcher = asyncio.create_task(self._watch_cancel(job.id, cancel, lost))
        try:
            governor = Governor(
                client,
                self.keys,
                limit=self.settings.provider_slots,
                lease_seconds=self.settings.provider_lease_seconds,
            )
            synth = SegmentSynthesizer(
                job_id=job.id,
                owner=owner,
                provider=provider_config(self.settings, job.request.model),
                request=tts,
                governor=governor,
                storage=self.storage,
                store=self.store,
                spool=spool,
                parallel=self.settings.job_parallel_segments,
                priority=batches.governor_priority(job),
                on_segment=finished,
                on_error=failed,
                still_leased=still_leased,
            )
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

    async def _watch_cancel(
        self, job_id: str, cancel: asyncio.Event, lost: threading.Event
    ) -> None:
        """Poll the job's status; a canceled job (or a lost lease) stops streaming."""
        while not cancel.is_set():
            if lost.is_set() or await asyncio.to_thread(self._canceled, job_id):
                cancel.set()
                return
            await asyncio.sleep(0.5)

    def _assemble_and_upload(self, job: Job, segments: list[Segment], spool: Path) -> Output:
        req = job.request
        info = format_info(req.format)
        rate = req.sample_rate or info.default_sample_rate
        checkpoints = self._checkpoints(job.id, segments, provider_pcm_rate(rate))
        pause = req.paragraph_silence_ms
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
            parts.append(
                SegmentAudio(path, cp.sample_rate, 0 if last or not seg.paragraph_end else pause)
            )
        if not any(cp.bytes for cp in checkpoints.values()):
            # Encoders cannot make a valid mp3, opus or m4a of nothing.
            raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the provider returned no audio at all")
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

    # -- outcomes ----------------------------------------------------------------

    def _succeeded(self, job: Job, output: Output) -> tuple[JobStatus | None, float | None]:
        if not self.store.transition(job.id, JobStatus.SUCCEEDED, output=output):
            now = self.store.get(job.id)
            theirs = now.output if now is not None else None
            if theirs is None or theirs.key != output.key:
                # Canceled while we uploaded: leave nothing behind.  (If another
                # worker finished first under the same key, the object is its output.)
                self._delete_quietly(job.id, output.key)
            self._clean_staging(job.id)
            return (now.status if now else None), None
        self._clean_staging(job.id)
        log.info("job %s: succeeded (%.1fs of audio)", job.id, output.duration_s)
        self._emit(job.id, EventType.SUCCEEDED)
        return JobStatus.SUCCEEDED, None

    def _failed_attempt(
        self, job_id: str, attempt: int, exc: Exception
    ) -> tuple[JobStatus | None, float | None]:
        """Fail the job for a permanent error; schedule a retry for a transient one."""
        if isinstance(exc, JobFailed):
            return self._fail(job_id, exc.code, exc.message), None
        if isinstance(exc, PermanentProviderError):
            return self._fail(job_id, _provider_code(exc), exc.message), None
        if isinstance(exc, ProviderError):
            return self._transient(job_id, attempt, _provider_code(exc), exc.message)
        if isinstance(exc, StorageError):
            if not exc.retryable:  # access denied, no such bucket, a bad key: configuration
                return self._fail(job_id, ErrorCode.STORAGE, exc.message), None
            return self._transient(job_id, attempt, ErrorCode.STORAGE, exc.message)
        if isinstance(exc, CheckpointLost):
            return self._transient(job_id, attempt, ErrorCode.STORAGE, str(exc))
        if isinstance(exc, redis.RedisError | OSError):  # Redis or the spool disk, for a moment
            return self._transient(job_id, attempt, ErrorCode.INTERNAL, f"{exc!r}")
        if isinstance(exc, AudioError):
            message = f"could not assemble the audio: {exc}"
            return self._fail(job_id, ErrorCode.INTERNAL, message), None
        # A bug: retrying would only repeat it.
        log.exception("job %s: attempt %d failed unexpectedly", job_id, attempt, exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return self._fail(job_id, ErrorCode.INTERNAL, message), None

    def _fail(self, job_id: str, code: ErrorCode, message: str) -> JobStatus | None:
        error = JobError(code=code, message=message)
        if self.store.transition(job_id, JobStatus.FAILED, error=error):
            log.info("job %s: failed (%s: %s)", job_id, code.value, message)
            self._emit(job_id, EventType.FAILED)
        self._clean_staging(job_id)
        now = self.store.get(job_id)
        return now.status if now else None

    def _transient(
        self, job_id: str, attempt: int, code: ErrorCode, message: str
    ) -> tuple[JobStatus | None, float | None]:
        if not self.policy.should_retry(attempt, True):
            return self._fail(job_id, code, give_up_message(attempt, message)), None
        now = self.store.get(job_id)
        if now is None or now.status.terminal:  # canceled meanwhile: no retry
            if now is not None and now.status is JobStatus.CANCELED:
                self._clean_staging(job_id)
            return (now.status if now else None), None
        self.store.record_error(job_id, JobError(code=code, message=message, retryable=True))
        delay = self.policy.delay(attempt, random.random())
        log.info("job %s: attempt %d failed (%s); retry in %.1fs", job_id, attempt, message, delay)
        return JobStatus.RUNNING, delay

    def _canceled_or_lost(
        self, job_id: str, lost: threading.Event
    ) -> tuple[JobStatus | None, float | None]:
        if lost.is_set():
            log.warning("job %s: lease lost; another worker carries on", job_id)
            return JobStatus.RUNNING, None
        self._clean_staging(job_id)
        log.info("job %s: canceled", job_id)
        return JobStatus.CANCELED, None

    def _emit(self, job_id: str, event: EventType) -> None:
        """Tell the job's callback receiver what happened (``job.canceled`` is the API's)."""
        try:
            job = self.store.get(job_id)
        except redis.RedisError:
            log.warning("job %s: %s callback skipped; the store is unavailable", job_id, event)
            return
        if job is not None:
            emit_job_event(job, event, settings=self.settings)

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

    def _checkpoints(
        self, job_id: str, segments: list[Segment], sample_rate: int
    ) -> dict[int, SegmentCheckpoint]:
        """The job's finished segments that belong to this cut of its text."""
        stored = self.store.segments(job_id)
        out = {}
        for seg in segments:
            raw = stored.get(seg.index)
            cp = SegmentCheckpoint.from_json(raw) if raw is not None else None
            if cp is not None and cp.matches(seg, sample_rate):
                out[seg.index] = cp
        return out

    def _tts_request(self, job: Job) -> TTSRequest:
        req = job.request
        rate = req.sample_rate or format_info(req.format).default_sample_rate
        references = []
        for i, clip in enumerate(req.references):
            try:
                check_reference_audio(clip.audio)
            except AudioError as exc:
                raise JobFailed(
                    ErrorCode.REFERENCE_AUDIO, f"references[{i}].audio is unreadable: {exc}"
                ) from exc
            references.append(ReferenceAudio(audio=clip.audio, text=clip.text))
        return TTSRequest(
            format=AudioFormat.PCM,
            sample_rate=provider_pcm_rate(rate),
            reference_id=req.reference_id,
            references=references,
            prosody=req.prosody,
            latency=req.latency,
            normalize=req.normalize,
            temperature=req.temperature,
            top_p=req.top_p,
            repetition_penalty=req.repetition_penalty,
        )

    def _renew_lease(
        self, job_id: str, owner: str, stop: threading.Event, lost: threading.Event
    ) -> None:
        lease = self.settings.job_lease_seconds
        while not stop.wait(lease / 3):
            try:
                if not self.store.renew_job_lease(job_id, owner, lease):
                    lost.set()
                    return
            except redis.RedisError:
                log.warning("job %s: lease renewal failed; will try again", job_id)


def _provider_code(exc: Exception) -> ErrorCode:
    if isinstance(exc, ProviderAuthError):
        return ErrorCode.PROVIDER_AUTH
    if isinstance(exc, ProviderCreditError):
        return ErrorCode.PROVIDER_CREDIT
    if isinstance(exc, PermanentProviderError):
        return ErrorCode.PROVIDER_REQUEST
    return ErrorCode.PROVIDER_UNAVAILABLE
