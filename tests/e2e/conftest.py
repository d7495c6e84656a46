"""End-to-end fixtures: the real store over the moto server (HTTP) and the real clients over the simulator (HTTP)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pollen import wiring
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.local.simulator.market import START_DATE
from pollen.local.simulator.server import SimulatorProcess
from pollen.observability import MemorySink, MetricsRecorder
from pollen.ports import AssetSource, FundamentalsSource, ItemStore
from pollen.settings import Settings

#: The full market (the scenario "syncing 12,000 assets writes them all").
FULL_MARKET = 12_000
#: The other scenarios use a smaller market: moto answers every Query by walking the whole table.
SMALL_MARKET = 2_000


@pytest.fixture(scope="session")
def full_simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=FULL_MARKET) as sim:
        yield sim


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=SMALL_MARKET) as sim:
        yield sim


@dataclass
class World:
    """One pollen deployment on the embedded stack: its settings, adapters and a clock that follows the simulator."""

    settings: Settings
    environment: dict[str, str]
    store: ItemStore
    assets: AssetSource
    fundamentals: FundamentalsSource
    metrics: MetricsRecorder
    simulator: SimulatorProcess
    day: int = 0

    def clock(self) -> dt.datetime:
        today = START_DATE + dt.timedelta(days=self.day)
        return dt.datetime.combine(today, dt.time(12, 0), tzinfo=dt.UTC)

    def set_day(self, day: int) -> None:
        self.simulator.configure(day=day)
        self.day = day

    def scan(self, table: str) -> list[dict[str, Any]]:
        return list(self.store.scan(table))


def make_world(endpoint: str, simulator: SimulatorProcess, home: Path, prefix: str | None = None) -> World:
    prefix = prefix or f"e{uuid.uuid4().hex[:8]}-"
    environment = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint,
        "AWS_REGION": "us-east-1",
        "POLLEN_TABLE_PREFIX": prefix,
        "POLLEN_HOME": str(home),
        **simulator.environment(),
    }
    settings = Settings(**environment)  # type: ignore[arg-type]
    ensure_tables(make_client("dynamodb", endpoint_url=endpoint), prefix)
    metrics = MetricsRecorder(MemorySink())
    store = wiring.build_store(settings, metrics)
    assets, fundamentals = wiring.build_sources(settings, metrics)
    return World(settings, environment, store, assets, fundamentals, metrics, simulator)


@pytest.fixture
def new_world(endpoint: str, simulator: SimulatorProcess, tmp_path: Path) -> Callable[[], World]:
    """A fresh deployment (own table prefix and home) on the small market, back at day 0."""

    def build() -> World:
        simulator.configure(day=0, error_rate=0.0, latency_ms=0.0)
        return make_world(endpoint, simulator, tmp_path / uuid.uuid4().hex[:6])

    return build


@pytest.fixture
def full_world(endpoint: str, full_simulator: SimulatorProcess, tmp_path: Path) -> World:
    """A fresh deployment on the full 12,000-asset market, at day 0."""
    full_simulator.configure(day=0, error_rate=0.0, latency_ms=0.0)
    return make_world(endpoint, full_simulator, tmp_path / "full")
