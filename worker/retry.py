"""Retry policy as plain data and pure functions, and the retry budget of every unit of work.

Nothing here sleeps or reads a clock.  The caller supplies the random number,
so a test can pin every delay, and decides what to do with the answer (Celery's
``countdown``, ``time.sleep``, ``asyncio.sleep``, a scheduled callback).
Attempts are numbered from 1.  Permanent errors are never retried, and nothing
is retried forever.

The budgets, each counted in one place and never multiplied by another layer
(``max_attempts`` is ``Settings.max_attempts``, 5 by default)::

    unit of work     at most                                      counted by
    a job            max_attempts attempts                        the job record (``attempts``)
    one segment      max_attempts provider sessions over all the  a Redis counter per segment
                     attempts of its job; up to 3 in a row inside (``JobStore.count_session``)
                     one attempt (SEGMENT_POLICY)
    one S3 request   5 sends, 7.5-15 s of waits (STORAGE_POLICY)  the storage client alone:
                                                                  botocore's retries are off
    a batch build    max_attempts builds per generation           the batch record
                                                                  (``assembly.attempts``)
    a callback       len(CALLBACK_SCHEDULE) + 1 deliveries        the delivery's attempt number

A job's attempts and its batch's builds wait :func:`job_policy` between them
(``retry_base_delay`` doubling up to ``retry_max_delay``).  A segment's quick
retries ride out a provider blip without failing the attempt (and without
stopping its siblings mid-stream); :class:`SessionBudget` stops them from adding
up across attempts: the session that would exceed ``max_attempts`` is never
opened, and the job fails with :func:`give_up_message`.  The S3 retries are
ours, not botocore's, because ours are deterministic to test, outlast an outage
of several seconds (botocore's full jitter may retry three times within the
same second), are logged, and also cover a download whose body breaks mid-way.
An upload is one PUT (or one request per multipart step: create, each part,
complete), each sent at most 5 times; an attempt that fails anyway uploads
again in the job's next attempt, so one object costs at most 5 × max_attempts
sends of each of its requests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = [
    "CALLBACK_SCHEDULE",
    "DEFAULT_POLICY",
    "SEGMENT_POLICY",
    "STORAGE_POLICY",
    "RetryPolicy",
    "SessionBudget",
    "Step",
    "give_up_message",
    "job_policy",
]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    The full delay after failed attempt *n* is ``base_delay * multiplier**(n-1)``,
    capped at ``max_delay``.  Jitter then shortens it by up to ``jitter`` of
    itself, so that workers that failed together (a provider outage, a 429
    burst) do not all come back in the same instant.
    """

    max_attempts: int = 5  # total attempts, including the first
    base_delay: float = 1.0  # seconds before the first retry, before jitter
    max_delay: float = 60.0  # cap on any single delay, before jitter
    multiplier: float = 2.0  # growth per attempt
    jitter: float = 0.5  # fraction: full delay d becomes uniform in [d*(1-jitter), d]

    def __post_init__(self) -> None:
        # Validate here so a bad setting fails at start-up, not on the first outage.
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "multiplier", "jitter"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.base_delay < 0:
            raise ValueError(f"base_delay must not be negative, got {self.base_delay}")
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must not be less than base_delay ({self.base_delay})"
            )
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def full_delay(self, attempt: int) -> float:
        """The delay after failed ``attempt`` before jitter: exponential, capped."""
        _check_attempt(attempt)
        if self.base_delay == 0:
            return 0.0
        # Compare exponents in log space: multiplier**attempt overflows a float
        # long before max_attempts stops being plausible.
        exponent = (attempt - 1) * math.log(self.multiplier)
        if exponent >= math.log(self.max_delay) - math.log(self.base_delay):
            return self.max_delay
        try:
            return min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        except OverflowError:  # rounding at the very edge of the float range
            return self.max_delay

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one.

        ``rand`` is a number in [0, 1) from the caller (``random.random()`` in
        production, a constant in tests); 0 gives the full delay and values
        towards 1 shorten it by up to ``jitter`` of itself.
        """
        if not 0 <= rand < 1:
            raise ValueError(f"rand must be in [0, 1), got {rand!r}")
        return self.full_delay(attempt) * (1 - self.jitter * rand)

    def should_retry(self, attempt: int, retryable: bool) -> bool:
        """Whether to try again after failed ``attempt`` (1-based).

        Only transient (``retryable``) errors are retried, and never beyond
        ``max_attempts`` attempts in total.
        """
        _check_attempt(attempt)
        return retryable and attempt < self.max_attempts

    def schedule(self, rand: Callable[[], float] = random.random) -> list[float]:
        """The delays before every retry, in order: ``max_attempts - 1`` of them."""
        return [self.delay(attempt, rand()) for attempt in range(1, self.max_attempts)]

    def total_delay(self) -> float:
        """The longest time spent waiting across all retries (no jitter): a worst case."""
        return sum(self.full_delay(attempt) for attempt in range(1, self.max_attempts))


DEFAULT_POLICY = RetryPolicy()

#: Quick retries of one segment inside one attempt: up to 3 sessions in a row,
#: 0.25-0.5 s and 0.5-1 s apart.  They count against the segment's
#: :class:`SessionBudget`, which has the last word.
SEGMENT_POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0)

#: Every S3 request (a PUT, each part of a multipart upload, its completion, a
#: GET with its body, a DELETE, a page of a listing): sent at most 5 times,
#: waiting 0.5-1, 1-2, 2-4 and 4-8 s between, 7.5-15 s in all.  The only retry
#: layer of a request: botocore is told to send each request once.
STORAGE_POLICY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=15.0)


def job_policy(settings: Settings) -> RetryPolicy:
    """The attempts of a job, and the builds of a batch generation: ``max_attempts`` of
    them, ``retry_base_delay`` doubling up to ``retry_max_delay`` between."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
    )


class Step(StrEnum):
    """What a segment does after one of its provider sessions failed."""

    RETRY = "retry"  # open another session now, in this attempt, after SEGMENT_POLICY's delay
    RAISE = "raise"  # end the attempt with the error; the job's policy decides what follows
    GIVE_UP = "give_up"  # the segment spent every session it may: the job fails


@dataclass(frozen=True, slots=True)
class SessionBudget:
    """How many provider sessions one segment may cost, across every attempt of its job.

    ``total`` is the job's ``max_attempts``, so a segment never costs more
    sessions than its job may have attempts, however the failures fall: quick
    retries inside an attempt, attempts re-queued with backoff, attempts whose
    worker died mid-session.  ``in_a_row`` bounds the quick retries of one
    attempt; after them the attempt fails and the job's slower backoff takes over.
    """

    total: int
    in_a_row: RetryPolicy = SEGMENT_POLICY

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"a segment needs at least one session, got {self.total}")

    def may_open(self, session: int) -> bool:
        """Whether the segment's ``session``-th session (counted over all attempts,
        from 1, this one included) may be opened."""
        return 1 <= session <= self.total

    def after_failure(self, tries: int, sessions: int, retryable: bool) -> Step:
        """What follows a failed session: the ``tries``-th of this attempt (from 1),
        the ``sessions``-th of the segment over all attempts."""
        if tries < 1 or sessions < tries:
            raise ValueError(f"{tries} tries in this attempt but {sessions} sessions in all")
        if not retryable:
            return Step.RAISE  # a permanent error fails the job by itself
        if sessions >= self.total:
            return Step.GIVE_UP
        return Step.RETRY if self.in_a_row.should_retry(tries, True) else Step.RAISE


# Delays before each redelivery of a callback that failed, from seconds to
# hours: a receiver that is down for a deploy gets it within minutes, one that
# is down for an afternoon still gets it the same day.  The first delivery is
# immediate, so there are len(CALLBACK_SCHEDULE) + 1 deliveries in all, over
# about ten hours.  A callback that exhausts the schedule is dropped; the job
# itself stays as it finished.
CALLBACK_SCHEDULE: tuple[float, ...] = (
    5.0,  # 5 s: a blip
    30.0,  # 30 s
    120.0,  # 2 min: a restart
    600.0,  # 10 min: a deploy
    1800.0,  # 30 min
    3600.0,  # 1 h: an outage
    10800.0,  # 3 h
    21600.0,  # 6 h: the last try, about ten hours after the first
)


def give_up_message(attempts: int, last_error: str, *, unit: str = "attempt", of: str = "") -> str:
    """The error message of work that exhausted its retries.

    ``"gave up after 5 attempts: provider closed the connection"``;
    with ``unit="provider session", of="segment 3"``:
    ``"gave up after 5 provider sessions of segment 3: ..."``.  An empty
    ``last_error`` reads as "unknown error" rather than ending in a colon.
    """
    _check_attempt(attempts)
    noun = unit if attempts == 1 else f"{unit}s"
    where = f" of {of}" if of else ""
    reason = last_error.strip() or "unknown error"
    return f"gave up after {attempts} {noun}{where}: {reason}"


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
