"""Pure tests of the retry budgets in :mod:`worker.retry`: every count is computed, nothing sleeps.

The budget of one segment is its job's ``max_attempts`` provider sessions over
all the job's attempts; the simulation below plays a segment that fails every
session, across attempts that may also lose their worker mid-session, and
checks the count never passes the budget.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from worker.retry import (
    SEGMENT_POLICY,
    STORAGE_POLICY,
    RetryPolicy,
    SessionBudget,
    Step,
    give_up_message,
    job_policy,
)
from worker.settings import Settings


def test_quick_retries_then_the_next_attempt_then_give_up() -> None:
    budget = SessionBudget(total=5)
    # Attempt 1: three sessions in a row, then the attempt ends.
    assert budget.after_failure(tries=1, sessions=1, retryable=True) is Step.RETRY
    assert budget.after_failure(tries=2, sessions=2, retryable=True) is Step.RETRY
    assert budget.after_failure(tries=3, sessions=3, retryable=True) is Step.RAISE
    # Attempt 2: the fifth session is the last one the segment may have.
    assert budget.after_failure(tries=1, sessions=4, retryable=True) is Step.RETRY
    assert budget.after_failure(tries=2, sessions=5, retryable=True) is Step.GIVE_UP
    assert budget.may_open(5) and not budget.may_open(6)


def test_a_permanent_error_is_raised_at_once() -> None:
    budget = SessionBudget(total=5)
    assert budget.after_failure(tries=1, sessions=1, retryable=False) is Step.RAISE
    assert budget.after_failure(tries=1, sessions=5, retryable=False) is Step.RAISE


def test_a_budget_smaller_than_the_quick_retries_wins() -> None:
    budget = SessionBudget(total=2)
    assert budget.after_failure(tries=1, sessions=1, retryable=True) is Step.RETRY
    assert budget.after_failure(tries=2, sessions=2, retryable=True) is Step.GIVE_UP


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionBudget(total=0)
    with pytest.raises(ValueError):
        SessionBudget(total=5).after_failure(tries=2, sessions=1, retryable=True)
    with pytest.raises(ValueError):
        SessionBudget(total=5).after_failure(tries=0, sessions=0, retryable=True)
    assert not SessionBudget(total=5).may_open(0)


def _play(total: int, crashes: list[int | None]) -> tuple[int, int, str]:
    """A segment that fails every session, as the worker runs it: returns the sessions
    opened, the attempts started and how it ended.  ``crashes[n]`` is the session of
    attempt n+1 during which its worker dies (None: it does not die)."""
    budget = SessionBudget(total=total)
    policy = RetryPolicy(max_attempts=total)
    sessions = attempts = 0
    while True:
        if attempts >= policy.max_attempts:
            return sessions, attempts, "attempts spent"
        attempts += 1
        crash = crashes[attempts - 1] if attempts - 1 < len(crashes) else None
        tries = 0
        while True:
            if not budget.may_open(sessions + 1):
                return sessions, attempts, "sessions spent"
            sessions += 1
            tries += 1
            if crash == tries:
                break  # the worker died mid-session: the session was counted all the same
            step = budget.after_failure(tries, sessions, retryable=True)
            if step is Step.GIVE_UP:
                return sessions, attempts, "sessions spent"
            if step is Step.RAISE:
                break
        if not policy.should_retry(attempts, True) and crash is None:
            return sessions, attempts, "attempts spent"


@given(
    total=st.integers(min_value=1, max_value=12),
    crashes=st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=4)), max_size=12),
)
def test_a_segment_never_costs_more_sessions_than_its_job_has_attempts(
    total: int, crashes: list[int | None]
) -> None:
    sessions, attempts, how = _play(total, crashes)
    assert sessions <= total
    assert attempts <= total
    assert how in ("sessions spent", "attempts spent")


@given(total=st.integers(min_value=1, max_value=12))
def test_without_crashes_the_whole_budget_is_used(total: int) -> None:
    sessions, attempts, how = _play(total, [])
    assert (sessions, how) == (total, "sessions spent")
    # Quick retries use the budget up in fewer attempts than the job may have.
    assert attempts == -(-total // SEGMENT_POLICY.max_attempts)


@given(crash=st.integers(min_value=1, max_value=3), total=st.integers(min_value=2, max_value=12))
def test_crashed_sessions_count(crash: int, total: int) -> None:
    assume(crash <= total)
    # Every attempt's worker dies in its crash-th session.
    sessions, _, _ = _play(total, [crash] * total)
    assert sessions <= total


def test_the_job_attempts_and_the_builds_follow_the_settings() -> None:
    settings = Settings(max_attempts=3, retry_base_delay=0.2, retry_max_delay=1.0)
    policy = job_policy(settings)
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (3, 0.2, 1.0)
    assert [policy.should_retry(n, True) for n in (1, 2, 3)] == [True, True, False]
    assert policy.schedule(lambda: 0.0) == [0.2, 0.4]


def test_one_s3_request_outlasts_an_outage_of_seconds() -> None:
    # Five sends; the waits between them, however the jitter falls, add up to 7.5-15 s.
    assert STORAGE_POLICY.max_attempts == 5
    assert STORAGE_POLICY.schedule(lambda: 0.0) == [1.0, 2.0, 4.0, 8.0]
    shortest = STORAGE_POLICY.schedule(lambda: 0.999999)
    assert shortest == pytest.approx([0.5, 1.0, 2.0, 4.0], rel=1e-5)
    assert sum(shortest) == pytest.approx(7.5, rel=1e-5)
    assert STORAGE_POLICY.total_delay() == 15.0


def test_quick_segment_retries() -> None:
    assert SEGMENT_POLICY.max_attempts == 3
    assert SEGMENT_POLICY.schedule(lambda: 0.0) == [0.5, 1.0]


def test_give_up_messages() -> None:
    assert give_up_message(2, "HTTP 500") == "gave up after 2 attempts: HTTP 500"
    assert give_up_message(1, "boom", unit="build") == "gave up after 1 build: boom"
    assert (
        give_up_message(4, "HTTP 500", unit="provider session", of="segment 3")
        == "gave up after 4 provider sessions of segment 3: HTTP 500"
    )
