"""Deadlines on an injected clock: nothing here waits for time to pass."""

from __future__ import annotations

from dataclasses import dataclass

from pollen.deadline import Deadline
from tests.clocks import ManualClock


@dataclass
class FakeContext:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_deadline_expires_when_its_clock_reaches_it() -> None:
    clock = ManualClock()
    deadline = Deadline.after(10.0, clock=clock)
    assert (deadline.remaining_s(), deadline.expired()) == (10.0, False)
    assert deadline.clamp(4.0) == 4.0
    clock.advance(7.5)
    assert (deadline.remaining_s(), deadline.clamp(4.0), deadline.expired()) == (2.5, 2.5, False)
    clock.advance(2.5)
    assert (deadline.remaining_s(), deadline.clamp(4.0), deadline.expired()) == (0.0, 0.0, True)


def test_never_and_no_seconds_do_not_expire() -> None:
    for deadline in (Deadline.never(), Deadline.after(None, clock=ManualClock())):
        assert (deadline.expired(), deadline.remaining_s(), deadline.clamp(3.0)) == (False, float("inf"), 3.0)


def test_a_nested_deadline_is_the_earlier_one_on_the_same_clock() -> None:
    clock = ManualClock()
    outer = Deadline.after(10.0, clock=clock)
    assert outer.sub(None) is outer
    assert outer.sub(4.0).remaining_s() == 4.0
    assert outer.sub(30.0).remaining_s() == 10.0
    inner = Deadline.never().sub(5.0)
    assert inner.at is not None and not inner.expired()
    nested = Deadline.after(None, clock=clock).sub(5.0)
    clock.advance(5.0)
    assert nested.expired() and not outer.expired()


def test_a_lambda_deadline_keeps_its_margin() -> None:
    clock = ManualClock()
    deadline = Deadline.from_lambda_context(FakeContext(60_000), 10.0, clock=clock)
    assert deadline.remaining_s() == 50.0
    assert Deadline.from_lambda_context(FakeContext(5_000), 10.0, clock=clock).expired()
