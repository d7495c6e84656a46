"""The crash suite: `pollen load` and `pollen sync assets` run as child processes against the embedded moto server
and the simulator, are killed with SIGKILL at several moments, and are run again at once. The re-run must not wait
for the dead run's lease (it takes it over and says so) and must leave the table exactly as a run without a crash
would: every item, the right content, one item per key.

The moments are defined by progress, not time: a proxy between the child and moto counts the writes and, once the
moment is reached (the lease taken, part of the writes done, every write done and the sync's consistency check to
come), holds every further request of the child, which therefore cannot get past the moment before the kill lands
(however slowly the machine runs). The held requests are dropped: a killed process's requests never arrive.
CI time: twelve CLI starts (six kills, six re-runs) and one in-process reference sync of 400 assets: about 50 s of
CPU; measured 5.5 min of wall time on a two-core machine at a load average of 16-25 (other suites running).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.codec import dumps_plain
from pollen.local.simulator.server import SimulatorProcess
from tests.conftest import run_pollen
from tests.e2e.conftest import World, make_world
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.e2e

#: A small market: enough writes for a kill to land among them.
CRASH_MARKET = 400
LOAD_ITEMS = 1_500
#: How long a child may take to reach a moment before the test gives up on it (only a hung child comes near it).
MOMENT_LIMIT_S = 300.0


class HoldAtMoment(FaultProxy):
    """Forwards requests until ``moment`` holds, then holds every request that arrives until ``release``; a held
    request is then dropped (its connection reset). In-flight requests are answered as usual."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.moment: Callable[[], bool] = lambda: False
        self.reached = threading.Event()
        self._released = threading.Event()

    def handle(self, operation: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if not self._released.is_set() and (self.reached.is_set() or self.moment()):
            self.reached.set()
            self._released.wait()
            return None
        return super().handle(operation, body, headers)

    def release(self) -> None:
        """Drop the held requests; from now on every request is forwarded."""
        self._released.set()


@pytest.fixture(scope="module")
def crash_simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=CRASH_MARKET) as sim:
        sim.configure(day=0, error_rate=0.0, latency_ms=0.0)
        yield sim


@pytest.fixture
def holding_proxy(endpoint: str) -> Iterator[HoldAtMoment]:
    proxy = HoldAtMoment(endpoint)
    with proxy:
        try:
            yield proxy
        finally:
            proxy.release()


def _world(endpoint: str, simulator: SimulatorProcess, home: Path) -> World:
    return make_world(endpoint, simulator, home, prefix=f"c{uuid.uuid4().hex[:8]}-")


def _env(world: World, proxy: FaultProxy) -> dict[str, str]:
    """The child's environment: the world's, with DynamoDB reached through the proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "ALPACA_", "ALPHAVANTAGE_"))}
    env.update(world.environment)
    env["AWS_ENDPOINT_URL_DYNAMODB"] = proxy.endpoint
    return env


def _kill_at(args: list[str], env: dict[str, str], proxy: HoldAtMoment, moment: Callable[[], bool]) -> bool:
    """Start ``pollen *args``, SIGKILL it once it reaches ``moment`` (the proxy holds it there); True when it was
    still running then."""
    proxy.moment = moment
    child = subprocess.Popen(
        [sys.executable, "-m", "pollen", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(int(MOMENT_LIMIT_S)):  # a child that fails early ends the wait
            if proxy.reached.wait(1.0) or child.poll() is not None:
                break
        reached = proxy.reached.is_set()
        running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        return reached and running
    finally:
        if child.poll() is None:
            child.kill()
        proxy.release()


def _lease(world: World, job: str) -> dict[str, Any] | None:
    return world.store.get("pollenControl", {"pk": f"lease#{job}", "sk": "lease"})


def _rerun(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = run_pollen(*args, "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"], report["errors"]
    return report


def _check_takeover(report: dict[str, Any], lease_before: dict[str, Any] | None) -> None:
    """A re-run that found the dead run's lease took it over at once and said so."""
    if lease_before is None:
        assert report["lease_notes"] == []
    else:
        (note,) = report["lease_notes"]
        assert f"dead run (process {lease_before['pid']}" in note


# --- pollen load --------------------------------------------------------------------------------------------------


def _statements() -> list[dict[str, Any]]:
    return [
        {
            "symbol": f"K{i:05d}",
            "fiscalPeriod": "ANNUAL#2025-12-31",
            "period": "annual",
            "reportedEPS": Decimal(i) / Decimal(8),
            "lastSyncDate": "2026-01-01T00:00:00Z",
        }
        for i in range(LOAD_ITEMS)
    ]


LOAD_MOMENTS: dict[str, Callable[[FaultProxy], bool]] = {
    "lease taken": lambda proxy: proxy.requests["PutItem"] >= 1,
    "a third written": lambda proxy: proxy.written_items >= LOAD_ITEMS // 3,
    "two thirds written": lambda proxy: proxy.written_items >= 2 * LOAD_ITEMS // 3,
}


@pytest.mark.parametrize("moment", list(LOAD_MOMENTS))
def test_a_load_killed_at_any_moment_is_completed_exactly_by_an_immediate_rerun(
    endpoint: str, crash_simulator: SimulatorProcess, holding_proxy: HoldAtMoment, tmp_path: Path, moment: str
) -> None:
    world = _world(endpoint, crash_simulator, tmp_path / "home")
    items = _statements()
    source = tmp_path / "statements.jsonl"
    source.write_text("".join(dumps_plain(item) + "\n" for item in items), encoding="utf-8")
    env = _env(world, holding_proxy)
    args = ["load", "earnings", str(source)]

    assert _kill_at(args, env, holding_proxy, lambda: LOAD_MOMENTS[moment](holding_proxy)), "not held at the moment"
    lease_before = _lease(world, "load:earnings")
    report = _rerun(args, env)
    _check_takeover(report, lease_before)

    stored = {(i["symbol"], i["fiscalPeriod"]): i for i in world.scan("earnings")}
    assert stored == {(i["symbol"], i["fiscalPeriod"]): i for i in items}
    assert report["written"] + report["unchanged"] == LOAD_ITEMS
    assert _lease(world, "load:earnings") is None


# --- pollen sync assets -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_assets(
    endpoint: str, crash_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The assets table after one uncrashed sync of the crash market (content without lastSyncDate)."""
    from pollen.jobs.sync_assets import SyncAssets

    world = _world(endpoint, crash_simulator, tmp_path_factory.mktemp("reference"))
    assert SyncAssets(world.store, world.assets, metrics=world.metrics).run().ok
    return _assets(world)


def _assets(world: World) -> dict[str, dict[str, Any]]:
    items = world.scan("assets")
    by_symbol = {i["symbol"]: {k: v for k, v in i.items() if k != "lastSyncDate"} for i in items}
    assert len(by_symbol) == len(items), "more than one item for a symbol"
    return by_symbol


SYNC_MOMENTS: dict[str, Callable[[FaultProxy, int], bool]] = {
    "lease taken": lambda proxy, total: proxy.requests["PutItem"] >= 1,
    "half written": lambda proxy, total: proxy.written_items >= CRASH_MARKET // 2,
    # Every asset written; the check (from the run's own read), the run record and the release are still to come.
    "all written": lambda proxy, total: proxy.written_items >= total,
}


@pytest.mark.parametrize("moment", list(SYNC_MOMENTS))
def test_a_sync_killed_at_any_moment_is_completed_exactly_by_an_immediate_rerun(
    endpoint: str,
    crash_simulator: SimulatorProcess,
    holding_proxy: HoldAtMoment,
    reference_assets: dict[str, dict[str, Any]],
    tmp_path: Path,
    moment: str,
) -> None:
    world = _world(endpoint, crash_simulator, tmp_path / "home")
    env = _env(world, holding_proxy)
    args = ["sync", "assets"]

    total = len(reference_assets)
    moment_reached = lambda: SYNC_MOMENTS[moment](holding_proxy, total)  # noqa: E731
    assert _kill_at(args, env, holding_proxy, moment_reached), "not held at the moment"
    lease_before = _lease(world, "sync-assets")
    report = _rerun(args, env)
    _check_takeover(report, lease_before)

    assert _assets(world) == reference_assets
    assert _lease(world, "sync-assets") is None
