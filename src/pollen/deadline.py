"""A run's deadline (e.g. Lambda's remaining time minus a margin), measured on an injectable clock (by default the
monotonic one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

#: A clock: seconds, only ever compared with readings of the same clock.
Clock = Callable[[], float]


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """When a run must stop starting new work. ``Deadline.never()`` for runs without one."""

    def __init__(self, at: float | None, clock: Clock = time.monotonic) -> None:
        self.at = at  # a reading of `clock`, or None for no deadline
        self.clock = clock

    @classmethod
    def never(cls) -> Deadline:
        return cls(None)

    @classmethod
    def after(cls, seconds: float | None, *, clock: Clock = time.monotonic) -> Deadline:
        return cls(None if seconds is None else clock() + seconds, clock)

    @classmethod
    def from_lambda_context(
        cls, context: LambdaContextLike, margin_s: float = 10.0, *, clock: Clock = time.monotonic
    ) -> Deadline:
        return cls.after(max(0.0, context.get_remaining_time_in_millis() / 1000.0 - margin_s), clock=clock)

    def remaining_s(self) -> float:
        return float("inf") if self.at is None else max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.at is not None and self.clock() >= self.at

    def clamp(self, seconds: float) -> float:
        """A wait of `seconds`, shortened so it never runs past the deadline."""
        return min(seconds, self.remaining_s())

    def sub(self, seconds: float | None) -> Deadline:
        """A nested deadline on the same clock: the earlier of this one and `seconds` from now."""
        if seconds is None:
            return self
        inner = self.clock() + seconds
        return Deadline(inner if self.at is None else min(self.at, inner), self.clock)
