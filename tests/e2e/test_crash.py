"""The crash suite: `pollen load` and `pollen sync assets` run as child processes against the embedded moto server
and the simulator, are killed with SIGKILL at several moments, and are run again at once. The re-run must not wait
for the dead run's lease (it takes it over and says so) and must leave the table exactly as a run without a crash
would: every item, the right content, one item per key.

The moments are defined by progress, not time: a fault proxy between the child and moto counts the writes, and the
child is killed once its lease is taken, part-way through its writes, and after its writes (during the sync's
consistency check). A small latency on BatchWriteItem keeps the writes from finishing before the kill lands.
CI time: twelve CLI starts (six kills, six re-runs) and one in-process reference sync of 400 assets: about 50 s of
CPU; measured 5.5 min of wall time on a two-core machine at a load average of 16-25 (other suites running).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.e2e

#: A small market: enough writes for a kill to land among them.
CRASH_MARKET = 400
LOAD_ITEMS = 1_500
#: Slows the writes (not the reads) so that each moment is reached while the child still runs.
SLOW_WRITES = Faults(latency_s=0.01, operations=frozenset({"BatchWriteItem"}))


@pytest.fixture(scope="module")
def crash_simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=CRASH_MARKET) as sim:
        sim.configure(day=0, error_rate=0.0, latency_ms=0.0)
        yield sim


@pytest.fixture
def slow_proxy(endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint, SLOW_WRITES) as proxy:
        yield proxy


def _world(endpoint: str, simulator: SimulatorProcess, home: Path) -> World:
    return make_world(endpoint, simulator, home, prefix=f"c{uuid.uuid4().hex[:8]}-")


def _env(world: World, proxy: FaultProxy) -> dict[str, str]:
    """The child's environment: the world's, with DynamoDB reached through the proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "ALPACA_", "ALPHAVANTAGE_"))}
    env.update(world.environment)
    env["AWS_ENDPOINT_URL_DYNAMODB"] = proxy.endpoint
    return env


def _kill_when(args: list[str], env: dict[str, str], reached: Callable[[], bool]) -> bool:
    """Start ``pollen *args``, SIGKILL it as soon as ``reached()``; True when it was still running then."""
    child = subprocess.Popen(
        [sys.executable, "-m", "pollen", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stop = time.monotonic() + 120
        while not reached() and child.poll() is None and time.monotonic() < stop:
            time.sleep(0.005)
        running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        return running
    finally:
        if child.poll() is None:
            child.kill()


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
    endpoint: str, crash_simulator: SimulatorProcess, slow_proxy: FaultProxy, tmp_path: Path, moment: str
) -> None:
    world = _world(endpoint, crash_simulator, tmp_path / "home")
    items = _statements()
    source = tmp_path / "statements.jsonl"
    source.write_text("".join(dumps_plain(item) + "\n" for item in items), encoding="utf-8")
    env = _env(world, slow_proxy)
    args = ["load", "earnings", str(source)]

    assert _kill_when(args, env, lambda: LOAD_MOMENTS[moment](slow_proxy)), "finished before the kill"
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
    slow_proxy: FaultProxy,
    reference_assets: dict[str, dict[str, Any]],
    tmp_path: Path,
    moment: str,
) -> None:
    world = _world(endpoint, crash_simulator, tmp_path / "home")
    env = _env(world, slow_proxy)
    args = ["sync", "assets"]

    total = len(reference_assets)
    assert _kill_when(args, env, lambda: SYNC_MOMENTS[moment](slow_proxy, total)), "finished before the kill"
    lease_before = _lease(world, "sync-assets")
    report = _rerun(args, env)
    _check_takeover(report, lease_before)

    assert _assets(world) == reference_assets
    assert _lease(world, "sync-assets") is None
