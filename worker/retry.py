"""Retry policy as plain data and pure functions: exponential backoff with jitter.

Nothing here sleeps or reads a clock.  The caller supplies the random number,
so a test can pin every delay, and decides what to do with the answer (Celery's
``countdown``, ``asyncio.sleep``, a scheduled callback).

Attempts are numbered from 1.  With the defaults a transient failure is tried
five times in all, waiting about 1, 2, 4 and 8 seconds (less jitter) between
tries, and then the job fails with :func:`give_up_message`.  Permanent errors
are never retried, and nothing is retried forever.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CALLBACK_SCHEDULE", "DEFAULT_POLICY", "RetryPolicy", "give_up_message"]


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


def give_up_message(attempts: int, last_error: str) -> str:
    """The error message of a job that exhausted its retries.

    ``"gave up after 5 attempts: provider closed the connection"``.  An empty
    ``last_error`` reads as "unknown error" rather than ending in a colon.
    """
    _check_attempt(attempts)
    noun = "attempt" if attempts == 1 else "attempts"
    reason = last_error.strip() or "unknown error"
    return f"gave up after {attempts} {noun}: {reason}"


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
