"""The AIMD rate limiter, on a fake clock (the backoff between retries: test_backoff.py)."""

from __future__ import annotations

import random

import pytest

from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter
from pollen.deadline import Deadline
from tests.unit.write_sim import Outcome, Service, SimClock, simulate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_paces_to_the_ceiling() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep)
    for _ in range(400):  # 10,000 WCU at 1,000 WCU/s, the first second's worth at once: about 9 seconds
        assert limiter.acquire(25)
    assert 8.9 <= clock.now <= 9.1


def test_acquire_gives_up_at_the_deadline() -> None:
    limiter = AdaptiveRateLimiter(10, burst_s=0.1)
    assert limiter.acquire(25)
    assert not limiter.acquire(25, Deadline.after(0.01))


def test_without_a_ceiling_nothing_is_limited_until_pushback() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        assert limiter.acquire(25)
    assert clock.now == 0.0
    for _ in range(20):
        clock.now += 0.025
        limiter.record(25, 25)
    assert limiter.rate is not None and limiter.rate < 1000


def test_capacity_pushback_cuts_to_the_measured_capacity_then_probes_upward() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(2000, clock=clock, sleep=clock.sleep, epoch_s=0.25)
    # Sent at 1,000 WCU/s, the service took 600 WCU/s: 40% came back. The rate goes just under 600.
    for _ in range(12):
        clock.now += 0.025
        limiter.record(25, 10)
    assert limiter.capacity is not None and abs(limiter.capacity - 600) < 1
    assert limiter.rate is not None and 560 <= limiter.rate <= 580
    cut, cut_at = limiter.rate, clock.now
    # Everything goes through: the rate grows by 10% of the capacity per second (additive increase) ...
    while clock.now < cut_at + 1.0:
        clock.now += 25 / cut
        limiter.record(25, 0)
    assert cut + 40 <= limiter.rate <= cut + 60
    # ... and, once past the capacity measured, by 10% of the rate: a risen capacity is found in seconds, not minutes.
    while clock.now < cut_at + 6:
        clock.now += 25 / cut
        limiter.record(25, 0)
    assert 850 <= limiter.rate <= 1050
    assert limiter.noise == 0.0 and limiter.noise_findings == 0


def test_one_epoch_cuts_the_rate_by_half_at_most() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep, epoch_s=0.25)
    for _ in range(12):  # 90% comes back
        clock.now += 0.025
        limiter.record(25, 22.5)
    assert limiter.rate == 500


def test_losses_that_do_not_depend_on_the_rate_become_noise() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep, epoch_s=0.25)
    rates = []
    while clock.now < 10:  # 30% comes back whatever the rate
        assert limiter.rate is not None
        clock.now += 25 / limiter.rate
        limiter.record(25, 7.5)
        rates.append(limiter.rate)
    assert limiter.noise_findings == 1 and abs(limiter.noise - 0.3) < 1e-9
    assert limiter.cut_count <= 4  # found within a few epochs, then left alone
    assert rates[-1] == 1000 and min(rates) > 100


# End to end on a simulated clock: workers, the limiter and a DynamoDB-like service (tests/unit/write_sim.py).


def _simulated(
    service: Service, items: int, *, ceiling: float | None = None, workers: int = 4, seed: int = 1
) -> tuple[AdaptiveRateLimiter, Outcome]:
    clock = SimClock()
    limiter = AdaptiveRateLimiter(ceiling, clock=clock, sleep=clock.sleep)
    return limiter, simulate(limiter, clock, service, items=items, workers=workers, seed=seed)


class _Unlimited(AdaptiveRateLimiter):
    def record(self, sent_units: float, pushed_back_units: float, generation: int | None = None) -> None:
        pass


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("latency_s", [0.02, 0.06])
def test_without_a_limit_set_the_rate_finds_the_budget_within_seconds(seed: int, latency_s: float) -> None:
    """4 workers that could send 1,700-5,000 WCU/s, a budget of 1,000 WCU/s (1 s deep): the issue's target."""
    clock = SimClock()
    limiter = AdaptiveRateLimiter(None, clock=clock, sleep=clock.sleep)
    service = Service(budget=lambda now: 1000.0, rng=random.Random(seed))
    outcome = simulate(limiter, clock, service, items=20_000, latency_s=latency_s, seed=seed)
    assert outcome.written == 20_000
    assert outcome.written / (1000 * outcome.elapsed_s + 1000) >= 0.95  # goodput
    assert outcome.requests <= 1.1 * 800  # the minimum is 800 batches of 25
    # Within 3 s it is near the budget, and stays there (over it at times, while the service's bucket has tokens).
    settled = [rate for at, rate in outcome.rates if at >= 3.0]
    assert settled and all(rate is not None and 750 <= rate <= 1400 for rate in settled)
    assert limiter.noise_findings == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_losses_neither_slow_the_writes_nor_drift_the_rate_to_the_floor(seed: int) -> None:
    """30% unprocessed and 5% throttled whatever the rate (the heavy-fault integration test's mix), no budget."""

    def service() -> Service:
        return Service(budget=lambda now: None, unprocessed=0.3, throttle=0.05, rng=random.Random(seed))

    clock = SimClock()
    free = simulate(_Unlimited(None, clock=clock), clock, service(), items=100_000, workers=8, seed=seed)
    limiter, outcome = _simulated(service(), 100_000, workers=8, seed=seed)
    assert outcome.written == 100_000
    assert outcome.elapsed_s <= 1.1 * free.elapsed_s
    assert limiter.noise_findings >= 1 and 0.25 <= limiter.noise <= 0.45
    late = [rate for at, rate in outcome.rates if at >= outcome.elapsed_s / 2]
    assert all(rate is None or rate > 2000 for rate in late)  # 8 workers send about 5,000 WCU/s


def test_random_losses_under_a_budget_are_told_apart_from_the_budget() -> None:
    """10% unprocessed whatever the rate, plus a budget of 1,000 WCU/s: the rate settles at the budget."""
    service = Service(budget=lambda now: 1000.0, unprocessed=0.1)
    limiter, outcome = _simulated(service, 20_000)
    assert outcome.written / (1000 * outcome.elapsed_s + 1000) >= 0.95
    assert outcome.requests <= 1.2 * 800 / 0.9
    settled = [rate for at, rate in outcome.rates if at >= 3.0]
    assert all(rate is not None and 800 <= rate <= 1400 for rate in settled)
    assert 0.07 <= limiter.noise <= 0.13


def test_the_rate_follows_a_budget_that_rises_and_falls() -> None:
    def budget(now: float) -> float:
        return 500.0 if now < 10 else 1000.0 if now < 30 else 400.0

    _, outcome = _simulated(Service(budget=budget), 40_000)
    assert outcome.written == 40_000
    rate_at = outcome.rate_at
    assert all(400 <= (rate_at(t) or 0) <= 600 for t in (4, 6, 8, 10))
    assert (rate_at(20) or 0) >= 900  # found the new budget within 10 s
    assert all(850 <= (rate_at(t) or 0) <= 1300 for t in (26, 28))
    assert all(320 <= (rate_at(t) or 0) <= 500 for t in (33, 36, 40))  # and the lower one within 3 s


def test_a_ceiling_caps_the_rate_under_random_losses() -> None:
    service = Service(budget=lambda now: None, unprocessed=0.3, throttle=0.05)
    limiter, outcome = _simulated(service, 30_000, ceiling=1500.0)
    assert max(rate or 0 for _, rate in outcome.rates) <= 1500
    assert outcome.written / outcome.elapsed_s >= 0.9 * 1500 * 0.65  # about what the ceiling lets through
    assert limiter.noise_findings >= 1 and limiter.rate == 1500
