"""Issue 5's end-to-end scenarios on the embedded stack: the real store over moto's HTTP server, the real clients
over the simulator's HTTP server, the jobs in between."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pollen.errors import TransientError
from pollen.jobs.check import ConsistencyCheck
from pollen.jobs.pollenate import PollenateAsset
from pollen.jobs.scheduler import Scheduler
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import SyncEarningsCalendar, earnings_between
from pollen.tables import NEVER_POLLENATED, STATEMENT_TABLES
from tests.e2e.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BOOKKEEPING = {"lastSyncDate"}


def content(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in BOOKKEEPING}


def sync_assets(world: World) -> Any:
    return SyncAssets(world.store, world.assets, metrics=world.metrics, clock=world.clock).run()


def by_symbol(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        grouped[item["symbol"]].append(item)
    assert all(len(group) == 1 for group in grouped.values()), "more than one item for a symbol"
    return {symbol: group[0] for symbol, group in grouped.items()}


def test_sync_assets_writes_all_then_nothing_then_only_the_deltas(full_world: World) -> None:
    world = full_world
    first = sync_assets(world)
    assert first.ok, first.errors
    day0 = by_symbol(world.scan("assets"))
    assert len(day0) == first.fetched - first.invalid >= 11_000
    assert first.written == len(day0) and first.new == len(day0)
    assert all(item["lastPollenationDate"] == NEVER_POLLENATED for item in day0.values())
    assert all(item["status"] == "active" for item in day0.values())
    assert sum(1 for i in day0.values() if i["volume"] > 0) > 0.8 * len(day0)

    again = sync_assets(world)
    assert again.ok and again.written == 0 and again.unchanged == len(day0)
    stamps = {i["symbol"]: i["lastSyncDate"] for i in world.store.scan("assets", attributes=("symbol", "lastSyncDate"))}
    assert stamps == {s: i["lastSyncDate"] for s, i in day0.items()}  # not one lastSyncDate moved

    world.set_day(1)
    raw_day1 = {a["symbol"] for a in world.assets.active_assets()}
    next_day = sync_assets(world)
    assert next_day.ok, next_day.errors
    day1 = by_symbol(world.scan("assets"))
    changed = {s for s in day1 if s not in day0 or content(day1[s]) != content(day0[s])}
    assert next_day.written == len(changed)
    assert 0 < len(changed) < len(day1)
    for symbol, item in day1.items():
        moved = item["lastSyncDate"] != day0.get(symbol, {}).get("lastSyncDate")
        assert moved == (symbol in changed), symbol
    vanished = set(day0) - raw_day1
    assert vanished, "the simulator delists some assets from day to day"
    assert all(day1[s]["status"] == "inactive" for s in vanished)
    assert next_day.deactivated == len(vanished)
    assert {s for s, i in day1.items() if i["status"] == "active"} <= raw_day1


def test_gsi_answers_equal_a_full_scan(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert sync_assets(world).ok
    assert (
        SyncEarningsCalendar(world.store, world.fundamentals, metrics=world.metrics, clock=world.clock)
        .run("12month")
        .ok
    )
    everything = world.scan("assets")
    by_volume = sorted((i for i in everything if i["status"] == "active"), key=lambda i: i["volume"], reverse=True)
    top = list(
        world.store.query("assets", partition=("status", "active"), index="status-index", descending=True, limit=100)
    )
    assert [i["volume"] for i in top] == [i["volume"] for i in by_volume[:100]]
    all_active = list(world.store.query("assets", partition=("status", "active"), index="status-index"))
    assert sorted(i["symbol"] for i in all_active) == sorted(i["symbol"] for i in by_volume)

    today = world.clock().date()
    start, end = today + dt.timedelta(days=3), today + dt.timedelta(days=75)
    through_index = [(i["asset_symbol"], i["earnings_date"]) for i in earnings_between(world.store, start, end)]
    calendar = world.scan("earningsCalendar")
    expected = sorted(
        (i["asset_symbol"], i["earnings_date"])
        for i in calendar
        if start.isoformat() <= i["earnings_date"] <= end.isoformat()
    )
    assert len(expected) > 100
    assert sorted(through_index) == expected
    assert [d for _, d in through_index] == sorted(d for _, d in through_index)  # in date order


def test_a_rescheduled_report_leaves_one_item_per_fiscal_period(new_world: Callable[[], World]) -> None:
    world = new_world()
    job = SyncEarningsCalendar(world.store, world.fundamentals, metrics=world.metrics, clock=world.clock)
    assert job.run("12month").ok
    before = world.scan("earningsCalendar")
    world.set_day(40)
    later = job.run("12month")
    assert later.ok, later.errors
    after = world.scan("earningsCalendar")
    periods = Counter((i["asset_symbol"], i["fiscal_date_ending"]) for i in after)
    assert later.rescheduled > 0 and later.stale_removed > 0
    assert max(periods.values()) == 1
    after_keys = {(i["asset_symbol"], i["earnings_date"]) for i in after}
    removed = [i for i in before if (i["asset_symbol"], i["earnings_date"]) not in after_keys]
    assert len(removed) == later.stale_removed
    # Only moved reports were removed: each has its replacement for the same fiscal period, at another date.
    replacement = {(i["asset_symbol"], i["fiscal_date_ending"]): i["earnings_date"] for i in after}
    for item in removed:
        new_date = replacement[(item["asset_symbol"], item["fiscal_date_ending"])]
        assert new_date != item["earnings_date"]
    for item in after:
        assert item["earnings_month"] == item["earnings_date"][:7]


def _due_symbol(world: World) -> str:
    """The most due asset that Alpha Vantage has fundamentals for (OTC names and crypto have none)."""
    for due in Scheduler(world.store, metrics=world.metrics, clock=world.clock).next_due(40):
        if world.fundamentals.overview(due.symbol) is not None:
            return due.symbol
    raise AssertionError("no due asset with fundamentals")


def _asset_items(world: World, symbol: str) -> list[dict[str, Any]]:
    return list(world.store.query("assets", partition=("symbol", symbol)))


def test_pollenate_writes_five_tables_and_moves_the_sort_key(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert sync_assets(world).ok
    symbol = _due_symbol(world)
    report = PollenateAsset(world.store, world.fundamentals, metrics=world.metrics, clock=world.clock).run([symbol])
    assert report.ok and report.pollenated == 1, report.errors
    (asset,) = _asset_items(world, symbol)
    assert asset["lastPollenationDate"] == world.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    overview = world.store.get("companyOverview", {"symbol": symbol})
    assert overview is not None and overview["symbol"] == symbol
    for table in STATEMENT_TABLES:
        items = list(world.store.query(table.name, partition=("symbol", symbol)))
        periods = {i["period"] for i in items}
        assert periods == {"annual", "quarterly"}, table.name
        assert all(i["fiscalPeriod"].startswith(("ANNUAL#", "QUARTERLY#")) for i in items)
        assert all(not isinstance(v, float) for i in items for v in i.values())
    assert any(isinstance(v, Decimal) for v in overview.values())


class FailingMoves:
    """The real store, except that the sort-key transaction fails (a fault between the writes and the move)."""

    def __init__(self, store: Any, fail_tables: set[str] | None = None) -> None:
        self._store = store
        self._fail_tables = fail_tables or set()
        self.fail_moves = fail_tables is None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def move_sort_key(self, table: str, old_key: dict[str, Any], new_sort: Any, **options: Any) -> Any:
        if self.fail_moves:
            raise TransientError("injected: TransactWriteItems timed out", keys=[old_key])
        return self._store.move_sort_key(table, old_key, new_sort, **options)

    def upsert(self, table: str, items: Any, **kwargs: Any) -> Any:
        if table in self._fail_tables:
            raise TransientError(f"injected: {table} unavailable")
        return self._store.upsert(table, items, **kwargs)


def test_a_fault_at_the_move_leaves_one_consistent_asset_item(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert sync_assets(world).ok
    symbol = _due_symbol(world)
    (before,) = _asset_items(world, symbol)
    failing = FailingMoves(world.store)
    report = PollenateAsset(failing, world.fundamentals, metrics=world.metrics, clock=world.clock).run([symbol])  # type: ignore[arg-type]
    assert not report.ok and report.stays_due == 1
    assert _asset_items(world, symbol) == [before]
    # The next run completes it, and the symbol still has exactly one item.
    retry = PollenateAsset(world.store, world.fundamentals, metrics=world.metrics, clock=world.clock).run([symbol])
    assert retry.ok, retry.errors
    (after,) = _asset_items(world, symbol)
    assert after["lastPollenationDate"] > before["lastPollenationDate"]
    assert content(after) | {"lastPollenationDate": None} == content(before) | {"lastPollenationDate": None}


def test_a_failing_statement_table_leaves_the_asset_due(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert sync_assets(world).ok
    symbol = _due_symbol(world)
    failing = FailingMoves(world.store, fail_tables={"cashFlow"})
    report = PollenateAsset(failing, world.fundamentals, metrics=world.metrics, clock=world.clock).run([symbol])  # type: ignore[arg-type]
    assert not report.ok
    (result,) = report.assets
    assert result.tables["cashFlow"].outcome == "failed"
    assert all(
        result.tables[t].outcome in ("written", "unchanged") for t in ("earnings", "balanceSheet", "incomeStatement")
    )
    (asset,) = _asset_items(world, symbol)
    assert asset["lastPollenationDate"] == NEVER_POLLENATED
    assert symbol in {d.symbol for d in Scheduler(world.store, metrics=world.metrics, clock=world.clock).next_due(5)}


def test_the_consistency_check_finds_and_repairs_planted_defects(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert sync_assets(world).ok
    assert SyncEarningsCalendar(world.store, world.fundamentals, metrics=world.metrics, clock=world.clock).run().ok
    assets = world.scan("assets")
    victim = assets[0]
    twin = {**victim, "lastPollenationDate": "2024-01-01T00:00:00Z", "lastSyncDate": "2024-01-01T00:00:00Z"}
    assert world.store.upsert("assets", [twin]).ok
    entry = world.scan("earningsCalendar")[0]
    stale_date = (dt.date.fromisoformat(entry["earnings_date"]) - dt.timedelta(days=9)).isoformat()
    stale = {
        **entry,
        "earnings_date": stale_date,
        "earnings_month": stale_date[:7],
        "lastSyncDate": "2024-01-01T00:00:00Z",
    }
    assert world.store.upsert("earningsCalendar", [stale]).ok

    check = ConsistencyCheck(world.store, metrics=world.metrics, clock=world.clock)
    found = check.run(repair=False)
    assert not found.ok
    assert found.duplicate_symbols == 1 and found.stale_calendar == 1
    assert len(_asset_items(world, victim["symbol"])) == 2  # a check without --repair changes nothing

    repaired = check.run(repair=True)
    assert repaired.repaired >= 2 and repaired.unrepaired == 0
    # The newest sort key stays, holding the most recently synced content.
    (kept,) = _asset_items(world, victim["symbol"])
    assert kept["lastPollenationDate"] == twin["lastPollenationDate"]
    assert content(kept) | {"lastPollenationDate": None} == content(victim) | {"lastPollenationDate": None}
    periods = Counter((i["asset_symbol"], i["fiscal_date_ending"]) for i in world.scan("earningsCalendar"))
    assert max(periods.values()) == 1
    assert check.run(repair=False).ok
