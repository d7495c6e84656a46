"""PollenateAsset and the scheduler against the in-memory store and a fake Alpha Vantage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pollen.backoff import Backoff
from pollen.deadline import Deadline
from pollen.domain.assets import asset_item, parse_asset
from pollen.errors import AuthError, PermanentError
from pollen.jobs.check import ASSETS_LEASE
from pollen.jobs.pollenate import PollenateAsset
from pollen.jobs.scheduler import DueAsset, Scheduler, pollenate_next
from pollen.observability import MetricsRecorder
from pollen.ports import Item
from pollen.tables import NEVER_POLLENATED
from tests import payloads
from tests.clocks import ManualClock
from tests.fakes import FakeFundamentals, InMemoryStore, transient

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW_ISO = "2026-11-20T12:00:00Z"
FIVE = ("companyOverview", "earnings", "cashFlow", "balanceSheet", "incomeStatement")


def add_asset(
    store: InMemoryStore, symbol: str, *, volume: int = 0, key: str = NEVER_POLLENATED, status: str = "active"
) -> None:
    item = asset_item(
        parse_asset(payloads.alpaca_asset(symbol, status=status)),
        volume=volume,
        last_sync="2026-11-01T00:00:00Z",
        last_pollenation=key,
    )
    store.put_raw("assets", item)


def company(source: FakeFundamentals, symbol: str, quarter: str = "2026-09-30") -> None:
    source.add_company(
        symbol,
        overview=payloads.overview(symbol, quarter),
        earnings=payloads.earnings(symbol, quarter),
        statements=payloads.statement(symbol, quarter),
    )


def job(store: InMemoryStore, source: FakeFundamentals, when: datetime = NOW) -> PollenateAsset:
    return PollenateAsset(store, source, metrics=MetricsRecorder(), clock=lambda: when)


def setup(symbol: str = "IBM") -> tuple[InMemoryStore, FakeFundamentals]:
    store, source = InMemoryStore(), FakeFundamentals()
    add_asset(store, symbol, volume=100)
    company(source, symbol)
    return store, source


# --- PollenateAsset ----------------------------------------------------------------------------------------------


def test_pollenate_writes_the_five_tables_then_moves_the_sort_key() -> None:
    store, source = setup()
    result = job(store, source).pollenate("IBM")
    assert result.ok and result.status == "pollenated", result
    assert {t: r.outcome for t, r in result.tables.items()} == dict.fromkeys(FIVE, "written")
    assert result.calls == 5
    (overview,) = store.items("companyOverview")
    assert overview["symbol"] == "IBM" and overview["52WeekHigh"] == Decimal("239.35")
    assert len(store.items("cashFlow")) == 11 and len(store.items("earnings")) == 11
    assert store.get("incomeStatement", {"symbol": "IBM", "fiscalPeriod": "QUARTERLY#2026-09-30"}) is not None
    (asset,) = store.by("assets", symbol="IBM")
    assert asset["lastPollenationDate"] == NOW_ISO
    assert asset["volume"] == 100 and asset["lastSyncDate"] == "2026-11-01T00:00:00Z"  # content kept
    assert store.moves == 1


def test_unchanged_latest_quarter_already_stored_skips_the_four_statement_calls() -> None:
    store, source = setup()
    job(store, source).pollenate("IBM")
    source.calls.clear()
    result = job(store, source, datetime(2026, 11, 27, tzinfo=UTC)).pollenate("IBM")
    assert result.ok
    assert source.calls == [("OVERVIEW", "IBM")]
    assert result.calls_skipped == 4
    assert {t: r.outcome for t, r in result.tables.items()}["cashFlow"] == "skipped"
    assert store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == "2026-11-27T00:00:00Z"


def test_a_new_latest_quarter_fetches_everything_again() -> None:
    store, source = setup()
    job(store, source).pollenate("IBM")
    company(source, "IBM", "2026-12-31")
    source.calls.clear()
    result = job(store, source, datetime(2027, 2, 1, tzinfo=UTC)).pollenate("IBM")
    assert result.ok and len(source.calls) == 5
    assert store.get("cashFlow", {"symbol": "IBM", "fiscalPeriod": "QUARTERLY#2026-12-31"}) is not None


def test_a_table_missing_the_quarter_is_fetched_even_when_latest_quarter_is_unchanged() -> None:
    store, source = setup()
    job(store, source).pollenate("IBM")
    del store.tables["balanceSheet"][("IBM", "QUARTERLY#2026-09-30")]
    source.calls.clear()
    job(store, source, datetime(2026, 11, 27, tzinfo=UTC)).pollenate("IBM")
    assert source.calls == [("OVERVIEW", "IBM"), ("BALANCE_SHEET", "IBM")]


def test_a_failing_table_does_not_stop_the_others_and_the_asset_stays_due() -> None:
    store, source = setup()
    store.fail_upsert["balanceSheet"] = transient("throttled after retries")
    result = job(store, source).pollenate("IBM")
    assert not result.ok and result.status == "stays due"
    outcomes = {t: r.outcome for t, r in result.tables.items()}
    assert outcomes == {**dict.fromkeys(FIVE, "written"), "balanceSheet": "failed"}
    assert "balanceSheet" in (result.error or "")
    assert len(store.items("incomeStatement")) == 11
    assert store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == NEVER_POLLENATED
    assert store.moves == 0


def test_items_failing_inside_a_table_also_keep_the_asset_due() -> None:
    store, source = setup()
    store.fail_items.add("earnings")
    result = job(store, source).pollenate("IBM")
    assert result.tables["earnings"].outcome == "failed" and result.tables["earnings"].failed == 11
    assert store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == NEVER_POLLENATED


def test_an_upstream_error_fails_only_its_table() -> None:
    store, source = setup()
    source.errors[("CASH_FLOW", "IBM")] = transient("503 from Alpha Vantage")
    result = job(store, source).pollenate("IBM")
    assert result.tables["cashFlow"].outcome == "failed"
    assert result.tables["incomeStatement"].outcome == "written"
    assert not result.ok


def test_a_failed_transaction_leaves_exactly_one_consistent_asset_item() -> None:
    store, source = setup()
    store.fail_moves = PermanentError("TransactionCanceledException", code="TransactionCanceledException")
    result = job(store, source).pollenate("IBM")
    assert not result.ok and "sort key not moved" in (result.error or "")
    (asset,) = store.by("assets", symbol="IBM")
    assert asset["lastPollenationDate"] == NEVER_POLLENATED
    store.fail_moves = None
    assert job(store, source, datetime(2026, 11, 21, tzinfo=UTC)).pollenate("IBM").ok
    assert len(store.by("assets", symbol="IBM")) == 1


def test_a_move_refused_while_sync_assets_runs_waits_for_the_sync_and_then_goes_through() -> None:
    store, source = setup()
    sync = store.lease(ASSETS_LEASE, 60)
    sync.__enter__()
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # no real waiting: the sync ends during the second wait
        waits.append(seconds)
        if len(waits) == 2:
            sync.__exit__(None, None, None)

    metrics = MetricsRecorder()
    pollenate = PollenateAsset(
        store, source, metrics=metrics, clock=lambda: NOW, sync_wait=Backoff(1.0, 10.0, 30, sleeper=sleep)
    )
    result = pollenate.pollenate("IBM")
    assert result.ok and result.status == "pollenated" and not result.move_deferred, result
    assert len(waits) == 2 and metrics.total("MoveWaitedForSync") == 2
    (asset,) = store.by("assets", symbol="IBM")
    assert asset["lastPollenationDate"] == NOW_ISO and store.moves == 1


def test_a_sync_still_running_at_the_deadline_leaves_the_asset_due_with_its_tables_written() -> None:
    store, source = setup()
    store.lease(ASSETS_LEASE, 300).__enter__()  # a sync that outlasts the pollenation's deadline
    clock = ManualClock()
    metrics = MetricsRecorder()
    pollenate = PollenateAsset(
        store, source, metrics=metrics, clock=lambda: NOW, sync_wait=Backoff(1.0, 10.0, 1000, sleeper=clock.advance)
    )
    report = pollenate.run(["IBM"], Deadline.after(45, clock=clock))
    (result,) = report.assets
    assert not result.ok and result.status == "stays due" and result.move_deferred
    assert "SyncAssets" in (result.error or "") and "sort key not moved" in (result.error or "")
    assert {t: r.outcome for t, r in result.tables.items()} == dict.fromkeys(FIVE, "written")
    assert (report.moves_deferred, report.stays_due, report.failed, report.ok) == (1, 1, 1, False)
    assert metrics.total("MoveDeferred") == 1 and metrics.total("MoveWaitedForSync") >= 1
    assert clock() == pytest.approx(1_900_000_045.0)  # waited until the deadline, not past it
    (asset,) = store.by("assets", symbol="IBM")
    assert asset["lastPollenationDate"] == NEVER_POLLENATED and store.moves == 0  # still due


def test_no_data_is_a_success_and_invalid_reports_are_counted() -> None:
    store, source = setup()
    source.payloads[("CASH_FLOW", "IBM")] = None  # {} from the API
    bad = payloads.statement("IBM")
    bad["quarterlyReports"][1]["totalRevenue"] = "garbage"
    source.payloads[("INCOME_STATEMENT", "IBM")] = bad
    del source.payloads[("BALANCE_SHEET", "IBM")]  # "Error Message": NotFound
    result = job(store, source).pollenate("IBM")
    assert result.ok, result
    assert result.tables["cashFlow"].outcome == "no data"
    assert result.tables["balanceSheet"].outcome == "no data"
    assert result.tables["incomeStatement"].invalid == 1
    assert len(store.items("incomeStatement")) == 10


def test_an_invalid_overview_fails_its_table() -> None:
    store, source = setup()
    source.payloads[("OVERVIEW", "IBM")] = payloads.overview("IBM", PERatio="abc")
    result = job(store, source).pollenate("IBM")
    assert result.tables["companyOverview"].outcome == "invalid"
    assert result.tables["earnings"].outcome == "written"
    assert not result.ok


def test_unknown_and_invalid_symbols() -> None:
    store, source = setup()
    assert job(store, source).pollenate("NOPE").status == "unknown asset"
    assert job(store, source).pollenate("IB M\n").status == "invalid symbol"
    assert source.calls == []


def test_quota_exhausted_stops_the_run_and_what_is_left_stays_due() -> None:
    store, source = setup()
    add_asset(store, "MSFT")
    company(source, "MSFT")
    source.quota = 7  # IBM's 5 calls, then 2 of MSFT's
    report = job(store, source).run(["IBM", "MSFT"])
    assert report.stopped == "quota" and report.not_started == ["MSFT"]
    assert report.pollenated == 1 and not report.ok
    assert store.by("assets", symbol="MSFT")[0]["lastPollenationDate"] == NEVER_POLLENATED
    assert store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == NOW_ISO


def test_auth_errors_end_the_run() -> None:
    store, source = setup()
    source.errors[("OVERVIEW", "IBM")] = AuthError("the API key was refused")
    with pytest.raises(AuthError):
        job(store, source).pollenate("IBM")


def test_a_queued_request_for_an_asset_pollenated_since_is_skipped() -> None:
    store, source = setup()
    job(store, source).pollenate("IBM")
    source.calls.clear()
    result = job(store, source, datetime(2026, 11, 20, 13, tzinfo=UTC)).pollenate(
        "IBM", not_pollenated_since="2026-11-20T11:00:00Z"
    )
    assert result.ok and result.status == "already pollenated" and source.calls == []


def test_report_counts_and_per_table_outcomes() -> None:
    store, source = setup()
    report = job(store, source).run(["IBM", "NOPE"])
    assert report.pollenated == 1 and report.failed == 1 and not report.ok
    assert report.written == 1 + 11 * 4
    assert report.assets[0].tables["cashFlow"].written == 11
    assert any("NOPE" in e for e in report.errors)


def test_pollenation_marks_past_calendar_entries() -> None:
    store, source = setup()
    store.put_raw(
        "earningsCalendar",
        {
            "asset_symbol": "IBM",
            "earnings_date": "2026-11-18",
            "fiscal_date_ending": "2026-09-30",
            "earnings_month": "2026-11",
            "lastSyncDate": "2026-11-01T00:00:00Z",
        },
    )
    store.put_raw(
        "earningsCalendar",
        {
            "asset_symbol": "IBM",
            "earnings_date": "2027-01-18",
            "fiscal_date_ending": "2026-12-31",
            "earnings_month": "2027-01",
            "lastSyncDate": "2026-11-01T00:00:00Z",
        },
    )
    result = job(store, source).pollenate("IBM")
    assert result.calendar_marked == 1
    past, future = store.by("earningsCalendar", asset_symbol="IBM")
    assert past["pollenatedAt"] == NOW_ISO and "pollenatedAt" not in future
    assert past["lastSyncDate"] == "2026-11-01T00:00:00Z"


# --- scheduler ---------------------------------------------------------------------------------------------------


def scheduled_market() -> InMemoryStore:
    store = InMemoryStore()
    add_asset(store, "NEVER_LOW".replace("_", "-"), volume=10)
    add_asset(store, "NEVER-HIGH", volume=1000)
    add_asset(store, "OLD", volume=5, key="2026-10-01T00:00:00Z")
    add_asset(store, "OLDER", volume=5, key="2026-09-01T00:00:00Z")
    add_asset(store, "FRESH", volume=5, key="2026-11-20T06:00:00Z")
    add_asset(store, "REPORTED", volume=1, key="2026-11-10T00:00:00Z")
    add_asset(store, "DEAD", volume=10**9, status="inactive")
    add_asset(store, "HANDLED", volume=1, key="2026-11-10T00:00:00Z")
    for symbol, day, extra in (
        ("REPORTED", "2026-11-18", {}),  # after its last pollenation: due
        ("HANDLED", "2026-11-18", {"pollenatedAt": "2026-11-19T00:00:00Z"}),  # marked
        ("OLD", "2026-09-15", {}),  # before its last pollenation
        ("FRESH", "2026-11-25", {}),  # future
        ("DEAD", "2026-11-18", {}),  # inactive
    ):
        store.put_raw(
            "earningsCalendar",
            {
                "asset_symbol": symbol,
                "earnings_date": day,
                "earnings_month": day[:7],
                "fiscal_date_ending": "2026-09-30",
                **extra,
            },
        )
    return store


def test_scheduler_order_earnings_then_never_by_volume_then_stalest() -> None:
    due = Scheduler(scheduled_market(), metrics=MetricsRecorder(), clock=lambda: NOW).next_due(10)
    assert [(d.symbol, d.reason) for d in due] == [
        ("REPORTED", "earnings"),
        ("NEVER-HIGH", "never pollenated"),
        ("NEVER-LOW", "never pollenated"),
        ("OLDER", "stalest"),
        ("OLD", "stalest"),
        ("HANDLED", "stalest"),
    ]  # FRESH was pollenated hours ago; DEAD is inactive
    assert due[0].report_date == "2026-11-18"


def test_scheduler_takes_only_n() -> None:
    due = Scheduler(scheduled_market(), metrics=MetricsRecorder(), clock=lambda: NOW).next_due(2)
    assert [d.symbol for d in due] == ["REPORTED", "NEVER-HIGH"]
    assert Scheduler(scheduled_market(), metrics=MetricsRecorder(), clock=lambda: NOW).next_due(0) == []


def test_pollenate_next_pollenates_in_schedule_order_and_marks_the_triggering_entry() -> None:
    store = scheduled_market()
    source = FakeFundamentals()
    for symbol in ("REPORTED", "NEVER-HIGH", "NEVER-LOW"):
        company(source, symbol)
    report = pollenate_next(store, source, 3, metrics=MetricsRecorder(), clock=lambda: NOW)
    assert report.ok, report.errors
    assert [a.symbol for a in report.assets] == ["REPORTED", "NEVER-HIGH", "NEVER-LOW"]
    assert [d.reason for d in report.schedule] == ["earnings", "never pollenated", "never pollenated"]
    assert store.by("earningsCalendar", asset_symbol="REPORTED")[0]["pollenatedAt"] == NOW_ISO
    again = Scheduler(store, metrics=MetricsRecorder(), clock=lambda: NOW).next_due(2)
    assert [d.symbol for d in again] == ["OLDER", "OLD"]


class CountingStore(InMemoryStore):
    """Counts the items the scheduler takes from each query (a real store reads a page only when it is reached)."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: dict[tuple[str, str], int] = {}

    def query(self, table: str, **kwargs: Any) -> Iterator[Item]:
        label = (table, str(kwargs.get("index") or kwargs["partition"][0]))
        for item in super().query(table, **kwargs):
            self.taken[label] = self.taken.get(label, 0) + 1
            yield item


def big_market() -> CountingStore:
    store = CountingStore()
    for n in range(40):
        add_asset(store, f"N{n:02d}", volume=1000 - n)
    add_asset(store, "OLDEST", volume=2000, key="2026-01-01T00:00:00Z")
    add_asset(store, "LOWREP", volume=1)  # named by an open report, met last by volume: read by key
    add_asset(store, "GONE", volume=5000, status="inactive")
    for symbol in ("LOWREP", "GONE", "NOSUCH"):
        store.put_raw(
            "earningsCalendar",
            {
                "asset_symbol": symbol,
                "earnings_date": "2026-11-18",
                "earnings_month": "2026-11",
                "fiscal_date_ending": "2026-09-30",
            },
        )
    return store


def test_the_scheduler_stops_reading_the_index_once_the_order_is_settled() -> None:
    store = big_market()
    due = Scheduler(store, metrics=MetricsRecorder(), clock=lambda: NOW).next_due(3)
    assert [(d.symbol, d.reason) for d in due] == [
        ("LOWREP", "earnings"),
        ("N00", "never pollenated"),
        ("N01", "never pollenated"),
    ]
    # OLDEST (pollenated) and N00..N02 (never) are the highest volumes: the index read stops at the third one.
    assert store.taken[("assets", "status-index")] == 4
    # The reported assets not met are read by key: LOWREP (kept), GONE (inactive); NOSUCH is not stored.
    assert store.taken[("assets", "symbol")] == 2


def test_the_scheduler_reads_every_active_asset_when_the_stalest_are_needed() -> None:
    store = big_market()
    due = Scheduler(store, metrics=MetricsRecorder(), clock=lambda: NOW).next_due(43)
    assert [d.symbol for d in due][:2] == ["LOWREP", "N00"]
    assert due[-1] == DueAsset(symbol="OLDEST", reason="stalest", volume=2000, last_pollenation="2026-01-01T00:00:00Z")
    assert store.taken[("assets", "status-index")] == 42
