"""The one backoff every retry loop in pollen uses: capped exponential backoff with full jitter.

After the n-th failure in a row (n >= 1) the wait is uniform in ``[0, min(cap, base * 2**(n - 1))]`` ("full jitter"),
raised to a floor the server asked for (``Retry-After``, carried by :class:`pollen.errors.ThrottledError`) but never
past the run's deadline. A loop gives up after ``max_attempts`` failures in a row; a loop that counts only failures
without progress (a batch writer whose partial writes go through) may reset its count, so that steady partial
throttling never runs out of attempts. Whether a failure is worth another attempt is the error's own ``transient``
property (:mod:`pollen.errors`), never the caller's guess.

The sleep and the random source are injected, so tests never wait on the wall clock.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pollen.deadline import Deadline
from pollen.errors import PollenError

T = TypeVar("T")

#: The exponent stops growing here (2**30 times the base is far past any cap), so a long count cannot overflow.
_MAX_DOUBLINGS = 30


def floor_of(error: BaseException) -> float | None:
    """The wait the service asked for with this error (``Retry-After``), if any."""
    value = getattr(error, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Backoff:
    """When to try again, and when to give up.

    ``failures`` is always the number of consecutive failed attempts so far (1 after the first failure).
    ``uniform(a, b)`` draws the jitter (``random.uniform``; a seeded ``random.Random(...).uniform`` in tests) and
    ``sleeper(seconds)`` waits (``time.sleep``; a recorder in tests).
    """

    base_s: float = 0.5
    cap_s: float = 20.0
    max_attempts: int = 5
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False, repr=False)
    sleeper: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff base and cap must not be negative")
        if self.max_attempts < 1:
            raise ValueError("a backoff allows at least one attempt")

    def ceiling_s(self, failures: int) -> float:
        """The longest jittered wait after ``failures`` failures in a row."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap_s, math.ldexp(self.base_s, doublings))

    def delay_s(self, failures: int, floor_s: float | None = None) -> float:
        """Seconds to wait after ``failures`` failures in a row. ``floor_s``: what the server asked for; it raises
        the wait (even above the cap: the server knows better) but never below what the jitter drew."""
        jittered = self.uniform(0.0, self.ceiling_s(failures))
        if floor_s is None:
            return jittered
        return max(floor_s, jittered)

    def exhausted(self, failures: int) -> bool:
        """True when ``failures`` failures in a row used up the attempts: no further attempt."""
        return failures >= self.max_attempts

    def sleep(self, failures: int, deadline: Deadline | None = None, *, floor_s: float | None = None) -> float:
        """Wait before the next attempt (cut short at ``deadline``); returns the seconds waited."""
        wait = self.delay_s(failures, floor_s)
        if deadline is not None:
            wait = deadline.clamp(wait)
        if wait > 0:
            self.sleeper(wait)
        return max(wait, 0.0)

    def gives_up(self, error: BaseException, failures: int, deadline: Deadline | None = None) -> bool:
        """Whether a loop that just saw its ``failures``-th failure in a row (``error``) stops: the error is
        permanent (anything but a transient :class:`PollenError`), the attempts are used up, or the deadline came."""
        transient = isinstance(error, PollenError) and error.transient
        return not transient or self.exhausted(failures) or (deadline is not None and deadline.expired())

    def call(
        self,
        operation: Callable[[], T],
        *,
        deadline: Deadline | None = None,
        on_retry: Callable[[PollenError, int, float], None] | None = None,
    ) -> T:
        """Run ``operation`` until it returns; retry the transient :class:`PollenError` it raises, waiting
        :meth:`delay_s` (at least the error's ``retry_after_s``) between attempts. A permanent error, the last
        attempt's error, or any other exception propagates unchanged. ``on_retry(error, failures, wait_s)`` is
        called before each wait (metrics, logs)."""
        failures = 0
        while True:
            try:
                return operation()
            except PollenError as error:
                failures += 1
                if self.gives_up(error, failures, deadline):
                    raise
                wait = self.delay_s(failures, floor_of(error))
                if deadline is not None:
                    wait = deadline.clamp(wait)
                if on_retry is not None:
                    on_retry(error, failures, wait)
                if wait > 0:
                    self.sleeper(wait)

    def waiting_with(self, sleeper: Callable[[float], None]) -> Backoff:
        """The same backoff, waiting with ``sleeper`` (a client's injected sleep)."""
        return replace(self, sleeper=sleeper)


#: DynamoDB calls: short first waits, a generous budget of attempts without progress (the store's retry policy).
DYNAMODB_BACKOFF = Backoff(base_s=0.1, cap_s=5.0, max_attempts=11)
#: HTTP APIs (Alpaca, Alpha Vantage): a slower start, five attempts.
HTTP_BACKOFF = Backoff(base_s=0.5, cap_s=20.0, max_attempts=5)
#: Queues and the search index: partial batch retries, five attempts.
BATCH_BACKOFF = Backoff(base_s=0.2, cap_s=5.0, max_attempts=5)
