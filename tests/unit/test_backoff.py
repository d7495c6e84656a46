"""The one backoff (pollen.backoff): full jitter under a capped exponential, a server's floor, attempts, deadlines,
and the retry loop deciding by the error's transient property. Waits are recorded, never slept."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollen.backoff import BATCH_BACKOFF, DYNAMODB_BACKOFF, HTTP_BACKOFF, Backoff, floor_of
from pollen.deadline import Deadline
from pollen.errors import (
    AuthError,
    PermanentError,
    PollenError,
    ServiceUnavailable,
    ThrottledError,
    TransientError,
)


def upper_bound(_low: float, high: float) -> float:
    return high


def recording(**options: float | int | Callable[[float, float], float]) -> tuple[Backoff, list[float]]:
    slept: list[float] = []
    return Backoff(sleeper=slept.append, **options), slept  # type: ignore[arg-type]


class Script:
    """An operation that raises the given errors in turn, then returns ``done``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    backoff = Backoff(base_s=0.1, cap_s=1.0, uniform=uniform)
    assert [backoff.delay_s(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(low == 0.0 for low, _ in draws)  # full jitter: anything from no wait at all
    assert backoff.delay_s(10_000) == 1.0  # a long count neither overflows nor passes the cap


@given(
    failures=st.integers(1, 200),
    seed=st.integers(0, 2**32),
    base_s=st.floats(0.0, 5.0),
    cap_s=st.floats(0.0, 60.0),
)
def test_real_jitter_stays_within_its_bounds(failures: int, seed: int, base_s: float, cap_s: float) -> None:
    backoff = Backoff(base_s=base_s, cap_s=cap_s, uniform=random.Random(seed).uniform)
    delay = backoff.delay_s(failures)
    assert 0.0 <= delay <= min(cap_s, base_s * 2 ** min(failures - 1, 30))


def test_the_jitter_spreads_the_waits() -> None:
    backoff = Backoff(base_s=1.0, cap_s=1.0, uniform=random.Random(5).uniform)
    delays = [backoff.delay_s(1) for _ in range(200)]
    assert len(set(delays)) == 200  # no two clients retry in lockstep
    assert min(delays) < 0.1 and max(delays) > 0.9


@given(floor_s=st.floats(0.0, 120.0), seed=st.integers(0, 2**32), failures=st.integers(1, 40))
def test_a_floor_the_server_asked_for_is_honoured_even_above_the_cap(floor_s: float, seed: int, failures: int) -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0, uniform=random.Random(seed).uniform)
    delay = backoff.delay_s(failures, floor_s)
    assert floor_s <= delay <= max(floor_s, 8.0)


def test_attempts_are_counted_in_failures_in_a_row() -> None:
    backoff = Backoff(max_attempts=3)
    assert [backoff.exhausted(n) for n in range(1, 5)] == [False, False, True, True]
    with pytest.raises(ValueError):
        Backoff(max_attempts=0)
    with pytest.raises(ValueError):
        Backoff(base_s=-1.0)


def test_a_wait_never_runs_past_the_deadline() -> None:
    backoff, slept = recording(base_s=600.0, cap_s=600.0, uniform=upper_bound)
    waited = backoff.sleep(1, Deadline(time.monotonic() + 5.0))
    assert slept == [waited] and 0.0 < waited <= 5.0
    assert backoff.sleep(1, Deadline(0.0)) == 0.0  # passed: no wait at all
    assert len(slept) == 1
    assert backoff.sleep(2, Deadline.never()) == 600.0


def test_a_retry_after_floor_comes_from_the_error() -> None:
    assert floor_of(ThrottledError("slow down", retry_after_s=3.0)) == 3.0
    assert floor_of(ThrottledError("slow down")) is None
    assert floor_of(TransientError("boom")) is None
    backoff, slept = recording(base_s=0.01, cap_s=0.02, uniform=upper_bound)
    assert backoff.call(Script(ThrottledError("429", retry_after_s=3.0))) == "done"
    assert slept == [3.0]


def test_call_retries_transient_errors_then_returns() -> None:
    backoff, slept = recording(base_s=0.1, cap_s=1.0, max_attempts=4, uniform=upper_bound)
    seen: list[tuple[str, int, float]] = []
    script = Script(TransientError("503"), ServiceUnavailable("reset"), TransientError("timeout"))
    result = backoff.call(script, on_retry=lambda err, n, wait: seen.append((str(err), n, wait)))
    assert result == "done" and script.calls == 4
    assert slept == [0.1, 0.2, 0.4]
    assert seen == [("503", 1, 0.1), ("reset", 2, 0.2), ("timeout", 3, 0.4)]


def test_call_gives_up_with_the_last_error_when_the_attempts_are_used_up() -> None:
    backoff, slept = recording(max_attempts=3, uniform=upper_bound)
    errors = [TransientError(f"try {i}") for i in range(5)]
    script = Script(*errors)
    with pytest.raises(TransientError) as raised:
        backoff.call(script)
    assert raised.value is errors[2] and script.calls == 3 and len(slept) == 2


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("400"),
        AuthError("401"),
        PollenError("marked permanent"),
        TransientError("marked permanent", transient=False),
        ValueError("not ours"),
    ],
)
def test_call_never_retries_what_is_not_transient(error: Exception) -> None:
    backoff, slept = recording()
    script = Script(error)
    with pytest.raises(type(error)) as raised:
        backoff.call(script)
    assert raised.value is error and script.calls == 1 and slept == []


def test_call_stops_at_the_deadline() -> None:
    backoff, slept = recording(max_attempts=10)
    script = Script(TransientError("503"), TransientError("503"))
    with pytest.raises(TransientError):
        backoff.call(script, deadline=Deadline(0.0))
    assert script.calls == 1 and slept == []
    assert backoff.gives_up(TransientError("503"), 1, Deadline(0.0))
    assert not backoff.gives_up(TransientError("503"), 1, Deadline.never())


@given(
    transient=st.lists(st.booleans(), max_size=12),
    max_attempts=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_call_makes_the_attempts_the_errors_allow(transient: list[bool], max_attempts: int, seed: int) -> None:
    backoff, slept = recording(base_s=0.05, cap_s=0.4, max_attempts=max_attempts, uniform=random.Random(seed).uniform)
    script = Script(*[PollenError(f"error {i}", transient=t) for i, t in enumerate(transient)])
    first_permanent = transient.index(False) + 1 if False in transient else len(transient) + 1
    expected_calls = min(first_permanent, max_attempts, len(transient) + 1)
    succeeds = expected_calls == len(transient) + 1
    try:
        result = backoff.call(script)
    except PollenError:
        result = None
    assert script.calls == expected_calls
    assert (result == "done") == succeeds
    # one wait before every attempt but the first, each within its ceiling
    assert len(slept) == expected_calls - 1
    assert all(0.0 <= wait <= min(0.4, 0.05 * 2**n) for n, wait in enumerate(slept))


def test_the_presets_keep_the_budgets_the_loops_had() -> None:
    # DynamoDB: up to 0.1 s after the first failure, 5 s at most, given up on the eleventh failure in a row.
    assert (DYNAMODB_BACKOFF.ceiling_s(1), DYNAMODB_BACKOFF.cap_s, DYNAMODB_BACKOFF.max_attempts) == (0.1, 5.0, 11)
    assert (HTTP_BACKOFF.ceiling_s(1), HTTP_BACKOFF.cap_s, HTTP_BACKOFF.max_attempts) == (0.5, 20.0, 5)
    assert (BATCH_BACKOFF.ceiling_s(1), BATCH_BACKOFF.cap_s, BATCH_BACKOFF.max_attempts) == (0.2, 5.0, 5)
    slept: list[float] = []
    assert HTTP_BACKOFF.waiting_with(slept.append).sleep(1) == slept[0]
