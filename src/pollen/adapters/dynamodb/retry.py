"""The adaptive rate limiter (AIMD token bucket in write capacity units per second) that parallel write workers
share. It paces the writes; the waits between retries are :mod:`pollen.backoff`'s."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pollen.deadline import Deadline

#: A capacity limit stops the push-back within a cut or two (each cut lands under the capacity measured); push-back
#: that goes on through this many cuts in a row does not depend on our rate.
MAX_CUTS = 4


@dataclass
class _Epoch:
    """Responses to requests sent at one rate. Time runs from the first response (whose units do not count towards
    the rates), so the wait for the first response after a change is not taken for time in which nothing was sent."""

    start: float | None = None
    first_units: float = 0.0
    sent: float = 0.0
    pushed_back: float = 0.0
    responses: int = 0
    share_sum: float = 0.0  # of each response's pushed-back share, for their spread
    share_squares: float = 0.0

    def add(self, now: float, sent: float, pushed_back: float) -> None:
        if self.start is None:
            self.start, self.first_units = now, sent
        share = pushed_back / sent if sent else 0.0
        self.sent += sent
        self.pushed_back += pushed_back
        self.responses += 1
        self.share_sum += share
        self.share_squares += share * share

    def elapsed(self, now: float) -> float:
        return 0.0 if self.start is None else now - self.start

    def sent_rate(self, now: float) -> float:
        return (self.sent - self.first_units) / max(self.elapsed(now), 1e-6)

    @property
    def share(self) -> float:
        return self.pushed_back / self.sent if self.sent else 0.0

    def response_spread(self) -> float:
        """Standard deviation of one response's pushed-back share."""
        mean = self.share_sum / self.responses
        return math.sqrt(max(0.0, self.share_squares / self.responses - mean * mean))


@dataclass(frozen=True)
class _Measured:
    share: float
    sent_rate: float
    spread: float


@dataclass
class _Cuts:
    """A run of consecutive epochs over the noise level, each followed by a cut."""

    rate_before: float | None  # the limiter's rate before the first cut
    epochs: list[_Measured] = field(default_factory=list)
    same: int = 0  # how many times in a row we sent less and the share stayed about the same


class AdaptiveRateLimiter:
    """A token bucket in WCU/s shared by the write workers, whose rate finds the service's write capacity by
    additive increase, multiplicative decrease (AIMD). It is fed by the share of write units the service pushed back:
    throttling errors count whole, 200 responses by their UnprocessedItems.

    Decisions are made per epoch: at least ``epoch_s``, ``min_responses`` and ``min_units``, counting only responses
    to requests sent since the rate last changed (``generation``). An epoch whose pushed-back share is over the
    *noise level* by more than ``tolerance`` (or, under noise, than chance explains) signals a capacity limit: the
    rate is cut to the capacity that epoch measured (the accepted rate divided by ``1 - noise``) less ``margin``.
    That is a multiplicative decrease by the excess share, at most by ``max_cut``, landing just under the capacity
    rather than halving past it. Each calm epoch adds ``increase_per_s`` of the capacity measured (of the rate, once
    past it) per second: a slow probe upward, up to ``ceiling`` (the configured WCU/s limit, if any). Without a
    ceiling the bucket does not limit at all until the first push-back.

    The noise level is the share the service pushes back whatever our rate (a flaky network, a fault injector, a hot
    key). Under a capacity limit, sending at the measured capacity brings the share down; noise does not move. So
    when we sent less twice in a row and the same share came back (or push-back outlasts ``MAX_CUTS`` cuts), it is
    noise: the noise level becomes that share and the rate goes back to where it was before the cuts, so such losses
    cannot drag the rate to the floor. (Two cuts, because the first may land too high while the service's own bucket
    is still emptying.) The noise level then follows calm epochs, not far above what was found, and once losses are
    known to be noisy a cut needs two epochs over in a row.
    """

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        floor: float = 10.0,
        increase_per_s: float = 0.1,
        margin: float = 0.05,
        max_cut: float = 0.5,
        epoch_s: float = 0.25,
        min_responses: int = 6,
        min_units: float = 150.0,
        tolerance: float = 0.05,
        noise_weight: float = 0.1,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = ceiling
        self.floor = floor
        self.increase_per_s = increase_per_s
        self.margin = margin
        self.max_cut = max_cut
        self.epoch_s = epoch_s
        self.min_responses = min_responses
        self.min_units = min_units
        self.tolerance = tolerance
        self.noise_weight = noise_weight
        self.burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.rate: float | None = ceiling
        self.capacity: float | None = None  # the capacity measured at the last cut, WCU/s
        self.noise = 0.0
        self.noise_found = 0.0  # the noise level the last finding measured: the running level stays near or under it
        self.noise_spread = 0.0  # standard deviation of one response's share under that noise
        now = clock()
        self._tokens = 0.0 if ceiling is None else ceiling * burst_s
        self._last_refill = now
        self._last_record = now
        self._epoch = _Epoch()
        self._cuts: _Cuts | None = None
        self._over_once = False
        self.generation = 0  # changes with every decision that changes the rate other than by probing upward
        self.cut_count = 0
        self.pushbacks = 0
        self.noise_findings = 0

    def _bucket_size(self) -> float:
        return max((self.rate or 0.0) * self.burst_s, 25.0)

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self._tokens = min(self._bucket_size(), self._tokens + (now - self._last_refill) * self.rate)
        self._last_refill = now

    def wait_s(self, units: float) -> float:
        """Take ``units`` if the bucket holds them and return 0; else take nothing and return how long to wait."""
        with self._lock:
            if self.rate is None:
                return 0.0
            self._refill(self._clock())
            if self._tokens >= min(units, self._bucket_size()) - 1e-6:
                self._tokens -= units
                return 0.0
            return max((min(units, self._bucket_size()) - self._tokens) / self.rate, 1e-4)

    def acquire(self, units: float, deadline: Deadline | None = None) -> bool:
        """Wait until ``units`` may be sent; False when the deadline came first (nothing is taken then)."""
        deadline = deadline or Deadline.never()
        while (wait := self.wait_s(units)) > 0:
            if deadline.remaining_s() <= wait:
                return False
            self._sleep(min(wait, 0.5))
        return True

    def record(self, sent_units: float, pushed_back_units: float, generation: int | None = None) -> None:
        """One response: ``sent_units`` went out, ``pushed_back_units`` of them came back unprocessed/throttled.
        ``generation``: the limiter's ``generation`` when the request was sent; a response to a request sent before
        the rate last changed says nothing about the new rate, so it does not count towards the next decision."""
        with self._lock:
            if pushed_back_units:
                self.pushbacks += 1
            if generation is not None and generation != self.generation:
                return
            now = self._clock()
            # After an idle gap (longer than an epoch and than three paced requests), measure afresh: the gap says
            # nothing about the service.
            paced_s = 3 * sent_units / self.rate if self.rate else 0.0
            if now - self._last_record > max(self.epoch_s, paced_s):
                self._epoch = _Epoch()
            self._last_record = now
            epoch = self._epoch
            epoch.add(now, sent_units, pushed_back_units)
            if (
                epoch.elapsed(now) >= self.epoch_s
                and epoch.responses >= self.min_responses
                and epoch.sent >= self.min_units
            ):
                self._epoch = _Epoch()
                self._decide(epoch, now)

    def _decide(self, epoch: _Epoch, now: float) -> None:
        share, sent_rate, elapsed = epoch.share, epoch.sent_rate(now), epoch.elapsed(now)
        # Over the noise level by more than the tolerance, or than chance explains (capped, so that even a noise
        # level found wrongly keeps the limiter listening).
        noise_error = min(3 * self.noise_spread / math.sqrt(epoch.responses), 2 * self.tolerance)
        if share <= self.noise + max(self.tolerance, noise_error):
            self._over_once = False
            self._calm(share, elapsed)
            return
        if self.noise_findings and self._cuts is None and not self._over_once:
            # Where the losses are known to be noisy, one epoch over may be chance: act if the next one is over too.
            self._over_once = True
            return
        self._over_once = False
        cuts = self._cuts
        spread = epoch.response_spread()
        if cuts is None:
            cuts = self._cuts = _Cuts(self.rate)
        else:
            last = cuts.epochs[-1]  # we cut after it: did we send less, and the same share still came back?
            same = sent_rate < 0.9 * last.sent_rate and abs(share - last.share) <= max(self.tolerance, last.share / 4)
            cuts.same = cuts.same + 1 if same else 0
        cuts.epochs.append(_Measured(share, sent_rate, spread))
        if cuts.same >= 2 or len(cuts.epochs) > MAX_CUTS:  # rate-independent losses
            self._found_noise(cuts)
            return
        current = sent_rate if self.rate is None else min(self.rate, sent_rate)
        self.capacity = sent_rate * (1.0 - share) / (1.0 - min(self.noise, 0.9))
        cut = max(self.capacity * (1.0 - self.margin), current * (1.0 - self.max_cut))
        self.rate = max(self.floor, min(cut, current))
        self._tokens, self._last_refill = min(self._tokens, 0.0), now
        self.cut_count += 1
        self.generation += 1

    def _found_noise(self, cuts: _Cuts) -> None:
        self.noise = self.noise_found = sum(e.share for e in cuts.epochs) / len(cuts.epochs)
        self.noise_spread = max(e.spread for e in cuts.epochs)
        before = cuts.rate_before
        self.rate = before if before is None or self.ceiling is None else min(before, self.ceiling)
        self.capacity = None
        self._cuts = None
        self.noise_findings += 1
        self.generation += 1

    def _calm(self, share: float, elapsed: float) -> None:
        """An epoch within the noise: follow the noise level (never above the one found), probe the rate upward."""
        self._cuts = None
        highest = self.noise_found + self.tolerance / 2 if self.noise_findings else 0.0  # a finding's own error
        self.noise = min(highest, self.noise + self.noise_weight * (share - self.noise))
        if self.rate is None:
            return
        self.rate += self.increase_per_s * max(self.capacity or 0.0, self.rate) * min(elapsed, 1.0)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
