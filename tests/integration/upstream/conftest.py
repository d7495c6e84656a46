"""Fixtures for the upstream client tests: a simulator per module, reached over HTTP."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pollen.adapters.alpaca import AlpacaClient
from pollen.adapters.alphavantage import AlphaVantageClient
from pollen.adapters.http import RateLimiter
from pollen.backoff import Backoff
from pollen.local.simulator import Simulator
from pollen.observability import MemorySink, MetricsRecorder

SIM_ASSETS = 1500


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with Simulator(asset_count=SIM_ASSETS) as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    """The module's simulator with its knobs back at their defaults."""
    simulator.configure(
        seed=7,
        asset_count=SIM_ASSETS,
        day=0,
        error_rate=0.0,
        truncate_rate=0.0,
        malformed_rate=0.0,
        fault_budget=None,
        latency_ms=0.0,
        alpaca_per_minute=100_000,
        alphavantage_per_minute=100_000,
        alphavantage_per_day=10_000_000,
        quota_window_s=60.0,
        legacy_calendar=False,
    )
    simulator.simulation.stats.clear()
    return simulator


def fast_backoff(max_attempts: int = 5) -> Backoff:
    """Short waits (slept: the simulator's rate-limit windows do pass in real time)."""
    return Backoff(base_s=0.005, cap_s=0.05, max_attempts=max_attempts, uniform=random.Random(1).uniform)


@pytest.fixture
def metrics() -> MetricsRecorder:
    return MetricsRecorder(MemorySink())


@pytest.fixture
def alpaca(sim: Simulator, metrics: MetricsRecorder) -> Iterator[AlpacaClient]:
    env = sim.environment()
    client = AlpacaClient(
        env["ALPACA_API_KEY_ID"],
        env["ALPACA_API_SECRET_KEY"],
        base_url=env["ALPACA_BASE_URL"],
        data_url=env["ALPACA_DATA_URL"],
        metrics=metrics,
        backoff=fast_backoff(),
        snapshot_batch=100,
    )
    yield client
    client.close()


@pytest.fixture
def alphavantage(sim: Simulator, metrics: MetricsRecorder) -> Iterator[AlphaVantageClient]:
    env = sim.environment()
    client = AlphaVantageClient(
        env["ALPHAVANTAGE_API_KEY"],
        base_url=env["ALPHAVANTAGE_BASE_URL"],
        limiter=RateLimiter(10_000, 100_000),
        metrics=metrics,
        backoff=fast_backoff(),
    )
    yield client
    client.close()
