"""Retry policy (capped exponential backoff with full jitter, budget in rounds without progress) and the adaptive
rate limiter (AIMD token bucket in write capacity units per second) that parallel write workers share."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pollen.deadline import Deadline


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before the next attempt, and when to give up.

    The budget counts *stalls*: consecutive rounds that made no progress (nothing written, or an error). A round that
    writes part of a batch resets it, so a long load under steady partial throttling never runs out of retries, while
    a dead service is given up on after ``max_stalls`` rounds (or at the run's deadline, whichever comes first).
    """

    base_s: float = 0.05
    cap_s: float = 5.0
    max_stalls: int = 10
    rng: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def delay_s(self, stalls: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**stalls)]."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(stalls, 30)))
        return self.rng(0.0, ceiling)

    def exhausted(self, stalls: int) -> bool:
        return stalls > self.max_stalls

    def sleep(self, stalls: int, deadline: Deadline) -> None:
        wait = deadline.clamp(self.delay_s(stalls))
        if wait > 0:
            time.sleep(wait)


class AdaptiveRateLimiter:
    """A token bucket in WCU/s shared by the write workers; its rate follows additive increase, multiplicative
    decrease (AIMD), fed by the share of write units the service pushed back (throttling errors count whole,
    200 responses by their UnprocessedItems).

    Decisions are made per epoch (``epoch_s``): when the pushed-back share exceeds the noise level plus
    ``tolerance``, the rate is cut by ``1 - decrease * share``. Under a real capacity limit the accepted rate holds
    when we slow down; if instead it falls with the cut (losses that do not depend on our rate: a flaky network, a
    fault injector), the cut is undone and that share becomes the *noise level*, so such losses no longer drag the
    rate down. Between cuts the rate grows by ``increase_per_s`` of the reference rate (the ceiling, else the highest
    accepted rate seen) per second of responses within the noise level. ``ceiling`` is the configured WCU/s limit;
    without one the bucket does not limit at all until the first push-back.
    """

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        floor: float = 10.0,
        decrease: float = 0.5,
        increase_per_s: float = 0.1,
        epoch_s: float = 0.5,
        tolerance: float = 0.05,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = ceiling
        self._sleep = sleep
        self.floor = floor
        self.decrease = decrease
        self.increase_per_s = increase_per_s
        self.epoch_s = epoch_s
        self.tolerance = tolerance
        self.burst_s = burst_s
        self._clock = clock
        self._lock = threading.Lock()
        self.rate: float | None = ceiling
        now = clock()
        self._tokens = 0.0 if ceiling is None else ceiling * burst_s
        self._last_refill = now
        self._last_growth = now
        self._last_record = now
        self._epoch_start = now
        self._epoch_sent = 0.0
        self._epoch_pushed_back = 0.0
        self._check: tuple[float, float] | None = None  # (accepted rate before the last cut, its factor)
        self.noise = 0.0
        self.peak = 0.0
        self.cuts = 0
        self.pushbacks = 0

    def _capacity(self) -> float:
        return max((self.rate or 0.0) * self.burst_s, 25.0)

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self._tokens = min(self._capacity(), self._tokens + (now - self._last_refill) * self.rate)
        self._last_refill = now

    def acquire(self, units: float, deadline: Deadline | None = None) -> bool:
        """Wait until ``units`` may be sent; False when the deadline came first (nothing is taken then)."""
        deadline = deadline or Deadline.never()
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                need = min(units, self._capacity())
                if self.rate is None or self._tokens >= need - 1e-6:
                    self._tokens -= units
                    return True
                wait = max((need - self._tokens) / self.rate, 1e-4)
            if deadline.remaining_s() <= wait:
                return False
            self._sleep(min(wait, 0.5))

    def record(self, sent_units: float, pushed_back_units: float) -> None:
        """One response: ``sent_units`` went out, ``pushed_back_units`` of them came back unprocessed/throttled."""
        with self._lock:
            now = self._clock()
            if now - self._last_record > self.epoch_s:  # after an idle gap, measure afresh (no decision on the gap)
                self._epoch_start, self._epoch_sent, self._epoch_pushed_back = now, 0.0, 0.0
                self._last_growth = now
            self._last_record = now
            self._epoch_sent += sent_units
            self._epoch_pushed_back += pushed_back_units
            if pushed_back_units:
                self.pushbacks += 1
            share = pushed_back_units / sent_units if sent_units else 0.0
            if self.rate is not None and share <= self.noise + self.tolerance:
                reference = self.ceiling if self.ceiling is not None else max(self.peak, self.rate)
                self.rate += self.increase_per_s * reference * min(1.0, now - self._last_growth)
                if self.ceiling is not None:
                    self.rate = min(self.rate, self.ceiling)
            self._last_growth = now
            if now - self._epoch_start >= self.epoch_s and self._epoch_sent > 0:
                self._end_epoch(now)

    def _end_epoch(self, now: float) -> None:
        elapsed = max(now - self._epoch_start, 1e-3)
        share = self._epoch_pushed_back / self._epoch_sent
        send_rate = self._epoch_sent / elapsed
        accepted = (self._epoch_sent - self._epoch_pushed_back) / elapsed
        self.peak = max(self.peak, accepted)
        cut_now = True
        if self._check is not None:
            before, factor = self._check
            self._check = None
            if accepted < before * (1.0 + factor) / 2:  # slowing down only cost throughput: these losses are noise
                self.noise = share
                if self.rate is not None:
                    self.rate = self.rate / factor
                    if self.ceiling is not None:
                        self.rate = min(self.rate, self.ceiling)
                cut_now = False
        if cut_now and share > self.noise + self.tolerance:
            factor = 1.0 - self.decrease * min(1.0, share - self.noise)
            current = self.rate if self.rate is not None else send_rate
            self.rate = max(self.floor, current * factor)
            self._tokens = min(self._tokens, 0.0)
            self._check = (accepted, factor)
            self.cuts += 1
        elif cut_now:
            self.noise = min(self.noise, share)
        self._epoch_start, self._epoch_sent, self._epoch_pushed_back = now, 0.0, 0.0
