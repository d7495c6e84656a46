"""Lambda handlers leave run records in pollenControl, and the scheduler logs the one-line health."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pollen.handlers import pollenate, schedule_pollenation, sync_assets, sync_earnings
from pollen.handlers.common import Dependencies
from pollen.jobs.runs import RunLog
from pollen.jobs.status import StatusCollector
from tests.unit.test_handlers import MODULES, NOW, World, call, scheduled_event, sqs_event


@pytest.fixture
def world_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """As tests/unit/test_handlers.py's `world`: fakes behind every handler's build_dependencies seam."""
    monkeypatch.setenv("POLLEN_HOME", str(tmp_path))
    monkeypatch.setenv("POLLEN_POLLENATE_QUEUE_URL", "http://127.0.0.1:1/123456789012/pollenate")
    world = World()
    for module in MODULES:
        module.STATE.reset()
        monkeypatch.setattr(module, "build_dependencies", world.dependencies)
        monkeypatch.setattr(module, "clock", lambda: NOW)
    yield world
    for module in MODULES:
        module.STATE.reset()


def records(world: World, job: str) -> list[dict[str, Any]]:
    return world.store.by("pollenControl", pk=f"run#{job}")


def test_each_handler_run_leaves_a_record(world_fixture: World) -> None:
    world = world_fixture
    call(sync_assets, scheduled_event())
    call(sync_earnings, scheduled_event())
    call(pollenate, sqs_event("IBM", "MSFT"))
    call(pollenate, {"symbol": "AAPL"})
    (assets,) = records(world, "sync-assets")
    assert (assets["ok"], assets["written"], assets["source"]) == (True, 3, "lambda")
    assert assets["tables"] == {"assets": {"written": 3}}
    assert assets["dead_letters_to"].endswith("dead-letters")
    assert assets["expiresAt"] > int(NOW.timestamp())
    assert len(records(world, "sync-earnings")) == 1
    batch, direct = sorted(records(world, "pollenate"), key=lambda r: r["pollenated"], reverse=True)
    assert (batch["pollenated"], direct["pollenated"]) == (2, 1)
    assert batch["calls"] == 10 and batch["tables"]["incomeStatement"]["written"] > 0


def test_the_scheduler_logs_the_health_line(
    world_fixture: World, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    world = world_fixture

    class Counts:
        def item_count(self, table: str) -> int:
            return 0

    def dependencies(settings: Any, metrics: Any) -> Dependencies:
        collector = StatusCollector(world.store, Counts(), RunLog(world.store), clock=lambda: NOW)
        return Dependencies(store=world.store, queue=world.queue, status=collector.collect)

    call(sync_assets, scheduled_event())
    monkeypatch.setattr(schedule_pollenation, "build_dependencies", dependencies)
    capfd.readouterr()
    call(schedule_pollenation, {"count": 2})
    captured = capfd.readouterr()
    lines = [json.loads(line) for line in (captured.out + captured.err).splitlines() if '"health"' in line]
    assert len(lines) == 1
    assert lines[0]["message"].startswith("health: ok; 3 active assets, 0% pollenated, backlog 3")
    assert lines[0]["health"] == "ok"
    assert len(records(world, "status")) == 1  # its snapshot feeds the charts over time
