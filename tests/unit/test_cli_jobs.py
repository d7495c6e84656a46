"""The job commands in-process (typer's runner) with the in-memory store and fake sources behind pollen.wiring."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pollen.cli.app import app
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals, InMemoryStore, transient


class World:
    def __init__(self) -> None:
        self.store = InMemoryStore()
        today = date.today()
        self.assets = FakeAssetSource(
            [payloads.alpaca_asset(s) for s in ("IBM", "MSFT", "BRK.B")], {"IBM": 300, "MSFT": 900, "BRK.B": 5}
        )
        soon = (today + timedelta(days=3)).isoformat()
        later = (today + timedelta(days=40)).isoformat()
        self.fundamentals = FakeFundamentals(
            [payloads.calendar_row("IBM", soon, "2026-09-30"), payloads.calendar_row("MSFT", later, "2026-09-30")]
        )
        for symbol in ("IBM", "MSFT", "BRK.B"):
            self.fundamentals.add_company(
                symbol,
                overview=payloads.overview(symbol),
                earnings=payloads.earnings(symbol),
                statements=payloads.statement(symbol),
            )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World()
    monkeypatch.setattr("pollen.wiring.build_store", lambda settings, metrics, **_: world.store)
    monkeypatch.setattr("pollen.wiring.build_sources", lambda settings, metrics: (world.assets, world.fundamentals))
    return world


def invoke(tmp_path: Path, *args: str) -> Any:
    runner = CliRunner(env={"POLLEN_HOME": str(tmp_path / "home"), "POLLEN_TABLE_PREFIX": ""})
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def report(result: Any) -> dict[str, Any]:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data: dict[str, Any] = json.loads(lines[0])
    return data


CONTRACT_KEYS = {"ok", "written", "unchanged", "failed", "invalid", "duration_s", "errors"}


def test_sync_assets_json_report_has_the_contract_keys(world: World, tmp_path: Path) -> None:
    result = invoke(tmp_path, "sync", "assets", "--json")
    assert result.exit_code == 0, result.output
    data = report(result)
    assert set(data) >= CONTRACT_KEYS
    assert data["ok"] is True and data["written"] == 3 and data["fetched"] == 3
    assert (tmp_path / "home" / "metrics.jsonl").exists()


def test_sync_earnings_then_the_earnings_query_defaults_to_the_next_14_days(world: World, tmp_path: Path) -> None:
    result = invoke(tmp_path, "sync", "earnings", "--horizon", "6month", "--json")
    assert result.exit_code == 0, result.output
    assert report(result)["written"] == 2 and world.fundamentals.horizons == ["6month"]
    listing = report(invoke(tmp_path, "earnings", "--json"))
    assert [e["asset_symbol"] for e in listing["earnings"]] == ["IBM"]
    wide = report(
        invoke(
            tmp_path,
            "earnings",
            "--from",
            date.today().isoformat(),
            "--to",
            (date.today() + timedelta(days=100)).isoformat(),
            "--json",
        )
    )
    assert sorted(e["asset_symbol"] for e in wide["earnings"]) == ["IBM", "MSFT"]
    assert isinstance(wide["earnings"][0]["estimate"], float)


def test_pollenate_symbols_and_next(world: World, tmp_path: Path) -> None:
    invoke(tmp_path, "sync", "assets", "--json")
    result = invoke(tmp_path, "pollenate", "IBM", "--json")
    assert result.exit_code == 0, result.output
    data = report(result)
    assert set(data) >= CONTRACT_KEYS
    assert data["pollenated"] == 1 and data["assets"][0]["tables"]["cashFlow"]["outcome"] == "written"
    nxt = report(invoke(tmp_path, "pollenate", "--next", "2", "--json"))
    assert [a["symbol"] for a in nxt["assets"]] == ["MSFT", "BRK.B"]  # never pollenated, by volume
    assert [d["reason"] for d in nxt["schedule"]] == ["never pollenated", "never pollenated"]
    assert nxt["schedule"][0]["volume"] == 900


def test_assets_listing_by_volume_and_status(world: World, tmp_path: Path) -> None:
    invoke(tmp_path, "sync", "assets", "--json")
    data = report(invoke(tmp_path, "assets", "--limit", "2", "--json"))
    assert [a["symbol"] for a in data["assets"]] == ["MSFT", "IBM"]
    assert data["assets"][0]["volume"] == 900
    assert report(invoke(tmp_path, "assets", "--status", "inactive", "--json"))["count"] == 0


def test_pollenate_failure_exits_1_with_the_report(world: World, tmp_path: Path) -> None:
    invoke(tmp_path, "sync", "assets", "--json")
    world.store.fail_upsert["cashFlow"] = transient()
    result = invoke(tmp_path, "pollenate", "IBM", "--json")
    assert result.exit_code == 1
    data = report(result)
    assert data["ok"] is False and data["stays_due"] == 1
    assert data["assets"][0]["tables"]["cashFlow"]["outcome"] == "failed"


def test_check_and_repair(world: World, tmp_path: Path) -> None:
    invoke(tmp_path, "sync", "assets", "--json")
    (ibm,) = world.store.by("assets", symbol="IBM")
    world.store.put_raw("assets", {**ibm, "lastPollenationDate": "2026-01-01T00:00:00Z"})
    found = invoke(tmp_path, "check", "--json")
    assert found.exit_code == 1 and report(found)["duplicate_symbols"] == 1
    fixed = invoke(tmp_path, "check", "--repair", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert report(fixed)["repaired"] == 1
    assert len(world.store.by("assets", symbol="IBM")) == 1


def test_human_output_renders_tables(world: World, tmp_path: Path) -> None:
    result = invoke(tmp_path, "sync", "assets")
    assert result.exit_code == 0 and "sync-assets" in result.stdout
    result = invoke(tmp_path, "pollenate", "IBM")
    assert result.exit_code == 0 and "IBM" in result.stdout and "pollenated" in result.stdout
    assert invoke(tmp_path, "assets").exit_code == 0
    assert invoke(tmp_path, "check").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sync", "earnings", "--horizon", "1week"), "unknown horizon"),
        (("pollenate", "IBM", "--next", "3"), "not both"),
        (("pollenate",), "SYMBOL"),
        (("pollenate", "IB M"), "invalid symbol"),
        (("assets", "--status", "gone"), "unknown status"),
        (("earnings", "--from", "2026-13-01"), "--from must be a date"),
        (("earnings", "--from", "2026-12-01", "--to", "2026-11-01"), "before"),
    ],
)
def test_bad_usage_exits_2_with_one_line(world: World, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke(tmp_path, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
