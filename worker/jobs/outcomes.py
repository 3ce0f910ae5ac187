"""How an attempt ends: the job's outcome, from what the attempt did or what went wrong.

:class:`Outcomes` records it: ``succeeded`` with the uploaded output, ``failed``
with an error code for a permanent error, a retry with backoff for a transient
one (until the attempts or a segment's provider sessions run out, see
:mod:`worker.retry`), or nothing at all for an attempt canceled or one whose
worker lost the job's lease.  It also tells the job's callback receiver and
deletes the staging objects of a job that ended.

Exceptions: :class:`JobFailed` (a permanent failure with its code), raised by
the runner; every other exception is classified by
:meth:`Outcomes.failed_attempt`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import redis

from worker.audio import AudioError
from worker.callbacks.emit import EventType, emit_job_event
from worker.fish import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderCreditError,
    ProviderError,
)
from worker.jobs.model import ErrorCode, Job, JobError, JobStatus, Output, Progress
from worker.jobs.output import CheckpointLost
from worker.jobs.store import JobStore
from worker.jobs.synth import SessionsSpent, UnreadableReference
from worker.lease import Lease
from worker.queues import Sender
from worker.retry import RetryPolicy, give_up_message
from worker.settings import Settings
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)


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


class Ended(NamedTuple):
    """How one attempt ended: the job's status, a retry delay, and words for the log."""

    status: JobStatus | None
    retry_in: float | None
    how: str


class Outcomes:
    """Records how attempts end, for one worker process; safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        storage: Storage,
        policy: RetryPolicy,
        *,
        sender: Sender,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.policy = policy
        self.sender = sender  # queues callbacks: the worker's Celery app

    def succeeded(
        self,
        job: Job,
        output: Output,
        lease: Lease,
        staged: Iterable[str],
        progress: Progress | None = None,
        *,
        recorded: bool = True,
    ) -> Ended:
        """Record the output (and the attempt's last ``progress``); the job's checkpoint
        records (none if not ``recorded``: see :meth:`JobStore.succeed`) and ``lease``
        go in the same step, and then the staging objects the checkpoints named
        (``staged``)."""
        with lease.giving_up():
            done = self.store.succeed(job, output, lease.owner, progress, recorded=recorded)
            if done.released:
                lease.given_up()
        if not done.moved:
            now = self.store.get(job.id)
            theirs = now.output if now is not None else None
            if theirs is None or theirs.key != output.key:
                # Canceled while we uploaded: leave nothing behind.  (If another
                # worker finished first under the same key, the object is its output.)
                self._delete_quietly(job.id, output.key)
            self.clean_staging(job.id)
            status = now.status if now else None
            return Ended(status, None, f"its output was not wanted (the job is {status})")
        self._delete_staged(job.id, staged)
        self.emit(job.id, EventType.SUCCEEDED, job)
        return Ended(JobStatus.SUCCEEDED, None, f"succeeded ({output.duration_s:.1f}s of audio)")

    def failed_attempt(self, job_id: str, attempt: int, exc: Exception) -> Ended:
        """Fail the job for a permanent error; schedule a retry for a transient one."""
        if isinstance(exc, JobFailed):
            return self.fail(job_id, exc.code, exc.message)
        if isinstance(exc, UnreadableReference):
            return self.fail(job_id, ErrorCode.REFERENCE_AUDIO, str(exc))
        if isinstance(exc, SessionsSpent):
            return self._sessions_spent(job_id, exc)
        if isinstance(exc, PermanentProviderError):
            return self.fail(job_id, provider_code(exc), exc.message)
        if isinstance(exc, ProviderError):
            return self._transient(job_id, attempt, provider_code(exc), exc.message)
        if isinstance(exc, StorageError):
            if not exc.retryable:  # access denied, no such bucket, a bad key: configuration
                return self.fail(job_id, ErrorCode.STORAGE, exc.message)
            return self._transient(job_id, attempt, ErrorCode.STORAGE, exc.message)
        if isinstance(exc, CheckpointLost):
            if exc.object_gone:  # deleted behind our back (a lifecycle rule): start over
                self.store.clear_segments(job_id)
            return self._transient(job_id, attempt, ErrorCode.STORAGE, str(exc))
        if isinstance(exc, redis.RedisError | OSError):  # Redis or the spool disk, for a moment
            return self._transient(job_id, attempt, ErrorCode.INTERNAL, f"{exc!r}")
        if isinstance(exc, AudioError):
            return self.fail(job_id, ErrorCode.INTERNAL, f"could not assemble the audio: {exc}")
        # A bug: retrying would only repeat it.
        log.exception("job %s: attempt %d failed unexpectedly", job_id, attempt, exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return self.fail(job_id, ErrorCode.INTERNAL, message)

    def _sessions_spent(self, job_id: str, exc: SessionsSpent) -> Ended:
        """A segment spent its provider sessions: fail the job with the last error seen."""
        if exc.last is not None:
            code, last = provider_code(exc.last), exc.last.message
        else:  # its last session was in an earlier attempt: that one recorded why it failed
            job = self.store.get(job_id)
            error = job.error if job is not None else None
            code, last = ErrorCode.PROVIDER_UNAVAILABLE, "the worker running it stopped"
            if error is not None:
                code = next((c for c in ErrorCode if c.value == error.code), code)
                last = error.message
        of = f"segment {exc.index}"
        message = give_up_message(exc.sessions, last, unit="provider session", of=of)
        return self.fail(job_id, code, message)

    def fail(self, job_id: str, code: ErrorCode, message: str) -> Ended:
        error = JobError(code=code, message=message)
        if self.store.transition(job_id, JobStatus.FAILED, error=error):
            self.emit(job_id, EventType.FAILED)
        self.clean_staging(job_id)
        now = self.store.get(job_id)
        return Ended(now.status if now else None, None, f"failed ({code.value}: {message})")

    def _transient(self, job_id: str, attempt: int, code: ErrorCode, message: str) -> Ended:
        if not self.policy.should_retry(attempt, True):
            return self.fail(job_id, code, give_up_message(attempt, message))
        now = self.store.get(job_id)
        if now is None or now.status.terminal:  # canceled meanwhile: no retry
            if now is not None and now.status is JobStatus.CANCELED:
                self.clean_staging(job_id)
            return Ended(now.status if now else None, None, f"{message}; no retry: it ended")
        self.store.record_error(job_id, JobError(code=code, message=message, retryable=True))
        delay = self.policy.delay(attempt, random.random())
        return Ended(JobStatus.RUNNING, delay, f"{message}; retry in {delay:.1f}s")

    def canceled_or_lost(self, job_id: str, lease: Lease) -> Ended:
        if lease.lost.is_set():
            return Ended(JobStatus.RUNNING, None, "lease lost; another worker carries on")
        self.clean_staging(job_id)
        return Ended(JobStatus.CANCELED, None, "canceled")

    def emit(self, job_id: str, event: EventType, known: Job | None = None) -> None:
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

    def clean_staging(self, job_id: str) -> None:
        """Delete the job's staging objects and checkpoint records."""
        try:
            self.storage.delete_prefix(self.storage.staging_key(job_id, ""))
        except StorageError:
            log.warning("job %s: staging cleanup failed; objects may remain", job_id)
        self.store.clear_segments(job_id)

    def _delete_staged(self, job_id: str, keys: Iterable[str]) -> None:
        """Delete the staging objects of a job that succeeded: only those its
        checkpoints named, without listing the prefix — none at all when its
        segments came from the segment cache.  Only a worker killed between an
        upload and its record leaves an unrecorded object; the staging lifecycle
        rule (docs/operations.md) expires those."""
        prefix = self.storage.staging_key(job_id, "")
        try:
            self.storage.delete_many([key for key in keys if key.startswith(prefix)])
        except StorageError:
            log.warning("job %s: staging cleanup failed; objects may remain", job_id)

    def _delete_quietly(self, job_id: str, key: str) -> None:
        try:
            self.storage.delete(key)
        except StorageError:
            log.warning("job %s: could not delete %s; it may remain", job_id, key)


def provider_code(exc: Exception) -> ErrorCode:
    if isinstance(exc, ProviderAuthError):
        return ErrorCode.PROVIDER_AUTH
    if isinstance(exc, ProviderCreditError):
        return ErrorCode.PROVIDER_CREDIT
    if isinstance(exc, PermanentProviderError):
        return ErrorCode.PROVIDER_REQUEST
    return ErrorCode.PROVIDER_UNAVAILABLE
