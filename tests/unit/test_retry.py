"""Retry policy (full jitter, budget in rounds without progress) and the AIMD rate limiter, on a fake clock."""

from __future__ import annotations

from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter, RetryPolicy
from pollen.deadline import Deadline


def test_full_jitter_is_uniform_up_to_a_capped_exponential() -> None:
    calls: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        calls.append((low, high))
        return high

    policy = RetryPolicy(base_s=0.1, cap_s=1.0, max_stalls=3, rng=rng)
    assert [policy.delay_s(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(low == 0.0 for low, _ in calls)
    assert not policy.exhausted(3)
    assert policy.exhausted(4)


def test_real_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(base_s=0.05, cap_s=0.4)
    for stalls in range(10):
        delay = policy.delay_s(stalls)
        assert 0.0 <= delay <= min(0.4, 0.05 * 2**stalls)


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


def test_capacity_pushback_cuts_the_rate_and_success_restores_it() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep, epoch_s=0.5)
    # The service accepts only 400 WCU/s: at 1,000 sent, 60% comes back.
    for _ in range(20):
        clock.now += 0.025
        limiter.record(25, 15)
    assert limiter.rate is not None and limiter.rate < 1000
    first_cut = limiter.rate
    # Slowing down keeps the accepted rate (a real capacity limit): the cut stays and the next one follows.
    for _ in range(20):
        clock.now += 0.05
        limiter.record(25, 5)
    assert limiter.rate <= first_cut
    assert limiter.noise == 0.0
    # Then everything goes through: the rate climbs back towards the ceiling, never above it.
    for _ in range(400):
        clock.now += 0.05
        limiter.record(25, 0)
    assert limiter.rate == 1000


def test_losses_that_do_not_depend_on_the_rate_become_noise() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep, epoch_s=0.5)
    for _ in range(20):  # 30% random losses at full speed
        clock.now += 0.025
        limiter.record(25, 7.5)
    cut = limiter.rate
    assert cut is not None and cut < 1000
    for _ in range(20):  # slowed down, still 30% lost: the accepted rate fell with the cut
        clock.now += 0.025 * 1000 / cut
        limiter.record(25, 7.5)
    assert limiter.noise > 0.25
    assert limiter.rate == 1000


def test_without_a_ceiling_nothing_is_limited_until_pushback() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        assert limiter.acquire(25)
    assert clock.now == 0.0
    for _ in range(20):
        clock.now += 0.025
        limiter.record(25, 25)
    assert limiter.rate is not None
