"""A run's deadline (e.g. Lambda's remaining time minus a margin), measured on the monotonic clock."""

from __future__ import annotations

import time
from typing import Protocol


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """When a run must stop starting new work. ``Deadline.never()`` for runs without one."""

    def __init__(self, at: float | None) -> None:
        self.at = at  # time.monotonic() value, or None for no deadline

    @classmethod
    def never(cls) -> Deadline:
        return cls(None)

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds)

    @classmethod
    def from_lambda_context(cls, context: LambdaContextLike, margin_s: float = 10.0) -> Deadline:
        return cls.after(max(0.0, context.get_remaining_time_in_millis() / 1000.0 - margin_s))

    def remaining_s(self) -> float:
        return float("inf") if self.at is None else max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def clamp(self, seconds: float) -> float:
        """A wait of `seconds`, shortened so it never runs past the deadline."""
        return min(seconds, self.remaining_s())

    def sub(self, seconds: float | None) -> Deadline:
        """A nested deadline: the earlier of this one and `seconds` from now."""
        if seconds is None:
            return self
        inner = time.monotonic() + seconds
        return Deadline(inner if self.at is None else min(self.at, inner))
