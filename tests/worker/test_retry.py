"""Pure tests of the retry policy: every delay is computed, nothing sleeps."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.retry import CALLBACK_SCHEDULE, DEFAULT_POLICY, RetryPolicy, give_up_message

unit_interval = st.floats(min_value=0, max_value=1, exclude_max=True)
attempts = st.integers(min_value=1, max_value=10_000)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=20),
    base_delay=st.floats(min_value=0, max_value=10),
    max_delay=st.floats(min_value=10, max_value=3600),
    multiplier=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy == DEFAULT_POLICY
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (5, 1.0, 60.0)
    assert (policy.multiplier, policy.jitter) == (2.0, 0.5)


def test_exponential_growth_without_jitter() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=1.5, multiplier=3.0, max_delay=1000)
    assert [policy.delay(n, 0.0) for n in range(1, 6)] == [1.5, 4.5, 13.5, 40.5, 121.5]
    assert policy.schedule(lambda: 0.0) == [1.5, 4.5, 13.5, 40.5, 121.5]


def test_default_schedule() -> None:
    assert DEFAULT_POLICY.schedule(lambda: 0.0) == [1.0, 2.0, 4.0, 8.0]
    assert DEFAULT_POLICY.total_delay() == 15.0
    # The most jitter halves every delay.
    assert DEFAULT_POLICY.schedule(lambda: 0.999999) == pytest.approx([0.5, 1.0, 2.0, 4.0], 1e-5)


def test_cap_at_max_delay() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=1, max_delay=60, jitter=0)
    assert policy.delay(6, 0) == 32
    assert policy.delay(7, 0) == 60
    assert policy.delay(50, 0) == 60
    # Far past any float's range of 2**n: still the cap, no OverflowError.
    assert policy.delay(100_000, 0) == 60
    assert policy.total_delay() == 1 + 2 + 4 + 8 + 16 + 32 + 60 * 93


def test_zero_delays_for_tests_and_eager_mode() -> None:
    policy = RetryPolicy(base_delay=0, max_delay=0)
    assert policy.schedule() == [0.0, 0.0, 0.0, 0.0]
    assert policy.delay(10_000, 0.5) == 0


@given(policies, attempts, unit_interval)
def test_jitter_stays_within_bounds(policy: RetryPolicy, attempt: int, rand: float) -> None:
    full = min(policy.max_delay, policy.full_delay(attempt))
    delay = policy.delay(attempt, rand)
    assert full * (1 - policy.jitter) - 1e-9 <= delay <= full
    assert 0 <= delay <= policy.max_delay


@given(policies, attempts)
def test_full_delay_matches_the_formula(policy: RetryPolicy, attempt: int) -> None:
    try:
        expected = min(policy.max_delay, policy.base_delay * policy.multiplier ** (attempt - 1))
    except OverflowError:
        expected = policy.max_delay if policy.base_delay else 0.0
    assert math.isclose(policy.full_delay(attempt), expected, rel_tol=1e-9)


@given(policies, st.integers(min_value=1, max_value=200))
def test_full_delays_never_shrink(policy: RetryPolicy, attempt: int) -> None:
    assert policy.full_delay(attempt) <= policy.full_delay(attempt + 1)


@given(policies, st.lists(unit_interval, min_size=20, max_size=20))
def test_schedule_has_one_delay_per_retry(policy: RetryPolicy, rands: list[float]) -> None:
    supply = iter(rands)
    delays = policy.schedule(lambda: next(supply))
    assert len(delays) == policy.max_attempts - 1
    assert delays == [policy.delay(n, rands[n - 1]) for n in range(1, policy.max_attempts)]


@given(policies, st.integers(min_value=1, max_value=100))
def test_never_retries_beyond_max_attempts(policy: RetryPolicy, attempt: int) -> None:
    assert policy.should_retry(attempt, retryable=True) == (attempt < policy.max_attempts)


@given(policies, st.integers(min_value=1, max_value=100))
def test_never_retries_permanent_errors(policy: RetryPolicy, attempt: int) -> None:
    assert not policy.should_retry(attempt, retryable=False)


def test_retry_loop_makes_exactly_max_attempts() -> None:
    """Drive the policy the way a worker does, counting attempts instead of sleeping."""
    policy = RetryPolicy(max_attempts=4)
    attempt, waited = 1, []
    while policy.should_retry(attempt, retryable=True):
        waited.append(policy.delay(attempt, 0.0))
        attempt += 1
    assert attempt == 4
    assert waited == [1.0, 2.0, 4.0]
    assert not RetryPolicy(max_attempts=1).should_retry(1, retryable=True)


def test_give_up_message() -> None:
    assert give_up_message(5, "provider closed the connection") == (
        "gave up after 5 attempts: provider closed the connection"
    )
    assert give_up_message(1, "HTTP 503") == "gave up after 1 attempt: HTTP 503"
    assert give_up_message(3, "  timeout\n") == "gave up after 3 attempts: timeout"
    assert give_up_message(2, "") == "gave up after 2 attempts: unknown error"
    with pytest.raises(ValueError):
        give_up_message(0, "never tried")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -3},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"base_delay": -1.0},
        {"max_delay": -1.0},
        {"base_delay": 10.0, "max_delay": 5.0},
        {"multiplier": 0.5},
        {"multiplier": -2.0},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"base_delay": math.nan},
        {"max_delay": math.inf},
        {"multiplier": math.nan},
    ],
)
def test_nonsense_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_numbered_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        DEFAULT_POLICY.delay(attempt, 0.0)
    with pytest.raises(ValueError, match="numbered from 1"):
        DEFAULT_POLICY.should_retry(attempt, retryable=True)


@pytest.mark.parametrize("rand", [-0.1, 1.0, 2.0, math.nan])
def test_rand_outside_unit_interval_is_refused(rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        DEFAULT_POLICY.delay(1, rand)


def test_policy_is_immutable_plain_data() -> None:
    policy = RetryPolicy(max_attempts=3)
    with pytest.raises(AttributeError):
        policy.max_attempts = 9  # type: ignore[misc]
    assert policy == RetryPolicy(max_attempts=3)
    assert hash(policy) == hash(RetryPolicy(max_attempts=3))


def test_callback_schedule() -> None:
    assert CALLBACK_SCHEDULE[0] == 5.0
    assert CALLBACK_SCHEDULE[-1] == 6 * 3600.0
    assert all(a < b for a, b in pairwise(CALLBACK_SCHEDULE))
    assert 8 * 3600 < sum(CALLBACK_SCHEDULE) < 12 * 3600
    assert isinstance(CALLBACK_SCHEDULE, tuple)
