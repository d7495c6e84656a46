"""A discrete-event simulation of the store's write workers against a DynamoDB-like service, on a simulated clock,
to test the adaptive rate limiter end to end without threads or sockets.

Each worker repeats what the batch writer (``batch_writer.BatchWriter.send``) does: take 25 units from the limiter (waiting as told), send a batch,
``record`` the response, back off with full jitter after a push-back, and put pushed-back items first in the queue.
The service is a token bucket of ``budget`` WCU/s (``depth_s`` deep, started full; requests in a batch are accepted
in order while it lasts, a batch of which nothing fits is throttled, as the fault proxy does) plus losses that do not
depend on the rate: a share of batches throttled and a share of items unprocessed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter

BATCH = 25


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:  # never called by the simulation, which schedules waits itself
        self.now += seconds


@dataclass
class Service:
    """``budget``: WCU/s at a time (None: unlimited); ``unprocessed``/``throttle``: rate-independent losses."""

    budget: Callable[[float], float | None]
    depth_s: float = 1.0
    unprocessed: float = 0.0
    throttle: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    tokens: float | None = None
    stamp: float = 0.0
    accepted: float = 0.0

    def write(self, now: float, units: int) -> int:
        """Units pushed back out of a batch of ``units`` 1-WCU items."""
        rate = self.budget(now)
        if rate is not None:
            size = rate * self.depth_s
            self.tokens = size if self.tokens is None else min(size, self.tokens + (now - self.stamp) * rate)
            self.stamp = now
        if self.rng.random() < self.throttle or (self.tokens is not None and self.tokens < 1):
            return units
        taken = 0
        for _ in range(units):
            if self.tokens is not None and self.tokens < 1:
                break
            if self.rng.random() < self.unprocessed:
                continue
            taken += 1
            if self.tokens is not None:
                self.tokens -= 1
        self.accepted += taken
        return units - taken


@dataclass
class Outcome:
    elapsed_s: float
    requests: int
    written: int
    rates: list[tuple[float, float | None]]  # (time, limiter rate) after each response

    def rate_at(self, moment: float) -> float | None:
        return next((rate for at, rate in reversed(self.rates) if at <= moment), None)


def simulate(
    limiter: AdaptiveRateLimiter,
    clock: SimClock,
    service: Service,
    *,
    items: int,
    workers: int = 4,
    latency_s: float = 0.02,
    backoff_s: float = 0.05,
    seed: int = 1,
) -> Outcome:
    """Write ``items`` 1-WCU items; ``clock`` must be the limiter's clock."""
    rng = random.Random(seed)
    left = items
    requests = written = 0
    rates: list[tuple[float, float | None]] = []
    # (time, worker, units in flight, the limiter's generation when they were sent)
    events: list[tuple[float, int, int, int]] = [(0.0, w, 0, 0) for w in range(workers)]
    stalls = [0] * workers
    while events:
        at, worker, in_flight, generation = heapq.heappop(events)
        clock.now = at
        if in_flight:
            back = service.write(at, in_flight)
            requests += 1
            written += in_flight - back
            limiter.record(in_flight, back, generation)
            rates.append((at, limiter.rate))
            left += back
            if back:
                stalls[worker] = stalls[worker] + 1 if back == in_flight else 0
                heapq.heappush(events, (at + rng.uniform(0, backoff_s * 2 ** stalls[worker]), worker, 0, 0))
                continue
            stalls[worker] = 0
        if left <= 0:
            continue
        units = min(BATCH, left)
        wait = limiter.wait_s(units)
        if wait > 0:
            heapq.heappush(events, (at + min(wait, 0.5), worker, 0, 0))
            continue
        left -= units
        heapq.heappush(events, (at + latency_s * rng.uniform(0.5, 1.5), worker, units, limiter.generation))
    return Outcome(clock.now, requests, written, rates)
