"""Run records and `pollen status`'s figures over the in-memory store (the embedded-stack check is in tests/e2e)."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollen.cli.status_page import render_page
from pollen.domain.values import timestamp
from pollen.errors import TransientError
from pollen.jobs.pollenate import AssetResult, PollenateReport, TableResult
from pollen.jobs.runs import RunLog, RunRecord, from_item, record_for, to_item
from pollen.jobs.status import (
    DeadLetterCount,
    QuotaSettings,
    StatusCollector,
    StatusReport,
    percentile,
)
from pollen.report import JobReport
from pollen.tables import NEVER_POLLENATED
from tests.fakes import InMemoryStore

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class Counts:
    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts or {}

    def item_count(self, table: str) -> int | None:
        return self.counts.get(table, 0)


def asset(symbol: str, last: str, status: str = "active", synced: str = "2025-03-01T10:00:00Z") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "lastPollenationDate": last,
        "status": status,
        "volume": Decimal(1),
        "lastSyncDate": synced,
    }


def calendar(symbol: str, day: str, **extra: Any) -> dict[str, Any]:
    return {
        "asset_symbol": symbol,
        "earnings_date": day,
        "earnings_month": day[:7],
        "lastSyncDate": "2025-03-02T10:00:00Z",
        **extra,
    }


def ago(days: float) -> str:
    return timestamp(NOW - timedelta(days=days))


def collector(store: InMemoryStore, **options: Any) -> StatusCollector:
    return StatusCollector(store, Counts(), RunLog(store, clock=lambda: NOW), clock=lambda: NOW, **options)


def pollenate_report(symbols: dict[str, int], *, ok: bool = True) -> PollenateReport:
    report = PollenateReport()
    for symbol, calls in symbols.items():
        report.add(
            AssetResult(
                symbol=symbol,
                ok=ok,
                status="pollenated" if ok else "stays due",
                calls=calls,
                tables={"companyOverview": TableResult(outcome="written", written=1)},
            )
        )
    report.duration_s = 5.0 * len(symbols)
    return report


# --- run records ---------------------------------------------------------------------------------------------------


def test_a_run_record_keeps_counts_tables_first_errors_and_expires_after_the_retention() -> None:
    report = pollenate_report({"IBM": 5, "MSFT": 2})
    report.add(AssetResult(symbol="AAPL", ok=False, error="x" * 500))
    record = record_for(
        report, started_at=NOW, ended_at=NOW + timedelta(seconds=4), source="cli", dead_letters_to="/h/dead-letters"
    )
    assert record is not None
    assert (record.job, record.pollenated, record.calls, record.ok) == ("pollenate", 2, 7, False)
    assert record.tables["companyOverview"].written == 2
    assert record.errors == ["AAPL: " + "x" * 194]  # cut short
    item = to_item(record, retention=timedelta(days=30))
    assert item["pk"] == "run#pollenate" and item["sk"].startswith("2025-03-10T12:00:00Z#")
    assert item["expiresAt"] == int((NOW + timedelta(days=30, seconds=4)).timestamp())
    assert from_item(item) == record


def test_commands_that_are_not_job_runs_leave_no_record() -> None:
    assert (
        record_for(JobReport(job="tables create"), started_at=NOW, ended_at=NOW, source="cli", dead_letters_to=None)
        is None
    )
    assert record_for(JobReport(job="demo"), started_at=NOW, ended_at=NOW, source="cli", dead_letters_to=None) is None


def test_a_record_that_cannot_be_written_never_fails_the_run() -> None:
    store = InMemoryStore()
    store.fail_upsert["pollenControl"] = TransientError("throttled")
    log = RunLog(store, clock=lambda: NOW)
    assert log.record(JobReport(job="sync-assets"), started_at=NOW) is not None  # no exception
    assert store.items("pollenControl") == []


# --- status figures ------------------------------------------------------------------------------------------------


def build_world() -> InMemoryStore:
    store = InMemoryStore()
    for item in (
        asset("NEW1", NEVER_POLLENATED),
        asset("NEW2", NEVER_POLLENATED),
        asset("FRESH", ago(1), synced="2025-03-05T10:00:00Z"),
        asset("OLD", ago(40)),
        asset("EARN", ago(20)),
        asset("GONE", ago(90), status="inactive", synced="2025-02-01T10:00:00Z"),
    ):
        store.put_raw("assets", item)
    store.put_raw("earningsCalendar", calendar("EARN", "2025-03-03"))  # after its last pollenation: due
    store.put_raw("earningsCalendar", calendar("FRESH", "2025-03-03"))  # pollenated since: not due
    store.put_raw("earningsCalendar", calendar("OLD", "2025-03-01", pollenatedAt="2025-03-02T00:00:00Z"))
    store.put_raw("earningsCalendar", calendar("NEW1", "2025-05-20"))  # upcoming
    store.put_raw("earningsCalendar", calendar("NEW2", "2024-10-15"))  # history, before the window read
    log = RunLog(store, clock=lambda: NOW)
    log.record(pollenate_report({"A": 4, "B": 2}), started_at=NOW - timedelta(hours=3))
    failed = JobReport(job="sync-earnings", ok=False)
    failed.add_error("calendar download cut")
    log.record(failed, started_at=NOW - timedelta(hours=2))
    log.record(JobReport(job="sync-assets", written=6), started_at=NOW - timedelta(hours=1))
    return store


def test_status_figures_from_a_small_world() -> None:
    store = build_world()
    report = collector(
        store,
        quota=QuotaSettings(per_minute=6, per_day=300, concurrency=1),
        dead_letters=[lambda: DeadLetterCount(waiting=2, where="/h/dead-letters")],
    ).collect()

    fresh = report.freshness
    assert (fresh.assets_active, fresh.assets_inactive, fresh.asset_items) == (5, 1, 6)
    assets_row = fresh.tables[0]
    assert (assets_row.newest_sync, assets_row.oldest_sync) == ("2025-03-05T10:00:00Z", "2025-02-01T10:00:00Z")
    assert (fresh.calendar_first, fresh.calendar_last) == ("2024-10-15", "2025-05-20")

    p = report.pollination
    assert (p.active, p.pollenated, p.coverage) == (5, 3, 0.6)
    assert (p.age_median_days, p.age_p90_days, p.age_oldest_days) == (20.0, 40.0, 40.0)
    assert (p.due.earnings, p.due.never_pollenated, p.due.stale) == (1, 2, 1)
    assert p.backlog == 4
    assert p.calls_per_pollenation == 3.0 and p.calls_measured_over == 2
    # 300 calls a day at 3 calls each: 100 pollenations a day; 4 take 0.04 days.
    assert p.pollenations_per_day == 100.0
    assert p.eta_s == pytest.approx(4 / 100 * 86400)
    assert p.seconds_per_pollenation == 5.0

    assert set(report.runs.last) == {"pollenate", "sync-earnings", "sync-assets"}
    assert report.runs.failures_24h == 1 and report.runs.failed_runs_24h[0].startswith("sync-earnings at ")
    assert report.health == "failing"
    assert report.reasons == ["last sync-earnings run failed", "2 dead letters waiting"]
    assert report.health_line.startswith("health: failing (last sync-earnings run failed; 2 dead letters waiting)")
    # Never a full read of the fundamentals tables, and the calendar only through its index.
    assert store.scans == ["assets"]
    assert {q for q in store.queries if q[0] == "earningsCalendar"} == {("earningsCalendar", "upcoming-earnings-index")}


def test_status_keeps_a_snapshot_that_the_next_status_charts() -> None:
    store = build_world()
    first = collector(store).collect()
    later = StatusCollector(store, Counts(), RunLog(store), clock=lambda: NOW + timedelta(hours=1)).collect(
        snapshot=False
    )
    assert [s["coverage"] for s in later.series.snapshots] == [first.pollination.coverage] * 2
    assert len(store.by("pollenControl", pk="run#status")) == 1  # --no-snapshot wrote nothing
    assert later.series.calls_per_day == [
        {"day": "2025-03-10", "calls": 7, "quota": 25_000}
    ]  # 6 pollenate + 1 calendar
    assert [p.written for p in later.series.tables_per_day["assets"]] == [6]


def test_health_is_ok_when_runs_are_fine_and_nothing_waits() -> None:
    store = InMemoryStore()
    store.put_raw("assets", asset("IBM", ago(1)))
    RunLog(store, clock=lambda: NOW).record(JobReport(job="sync-assets"), started_at=NOW - timedelta(hours=2))
    report = collector(store).collect()
    assert (report.health, report.reasons, report.ok) == ("ok", [], True)


def test_health_asks_for_attention_when_assets_were_not_synced_lately() -> None:
    store = InMemoryStore()
    store.put_raw("assets", asset("IBM", ago(1)))
    report = collector(store).collect()
    assert report.health == "attention" and report.reasons == ["no sync-assets run in 36 h"]


symbols = st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=3)
ages = st.one_of(st.none(), st.floats(min_value=0, max_value=400, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(symbols, st.tuples(st.sampled_from(["active", "inactive"]), ages), max_size=30),
    st.lists(st.tuples(symbols, st.integers(min_value=0, max_value=120), st.booleans()), max_size=30),
)
def test_pollination_figures_equal_a_direct_count(
    assets: dict[str, tuple[str, float | None]], entries: list[tuple[str, int, bool]]
) -> None:
    store = InMemoryStore()
    for symbol, (status, age) in assets.items():
        store.put_raw("assets", asset(symbol, NEVER_POLLENATED if age is None else ago(age), status))
    for symbol, days_back, processed in entries:
        day = (NOW - timedelta(days=days_back)).date().isoformat()
        store.put_raw("earningsCalendar", calendar(symbol, day, **({"pollenatedAt": ago(0)} if processed else {})))
    report = collector(store).collect(snapshot=False)

    active = {s: age for s, (status, age) in assets.items() if status == "active"}
    stored = {s: store.by("assets", symbol=s)[0]["lastPollenationDate"] for s in active}
    ages_days = sorted(
        (NOW - datetime.fromisoformat(v.replace("Z", "+00:00"))).total_seconds() / 86400
        for s, v in stored.items()
        if v != NEVER_POLLENATED
    )
    lookback = (NOW - timedelta(days=92)).date().isoformat()
    earnings = {
        s
        for s, days_back, processed in entries
        if s in active
        and not processed
        and lookback <= (day := (NOW - timedelta(days=days_back)).date().isoformat()) <= NOW.date().isoformat()
        and day > stored[s][:10]
    }
    p = report.pollination
    assert p.active == len(active) and p.pollenated == len(ages_days)
    assert p.due.earnings == len(earnings)
    assert p.due.never_pollenated == sum(1 for s, v in stored.items() if v == NEVER_POLLENATED and s not in earnings)
    assert p.due.stale == sum(
        1 for s, v in stored.items() if v != NEVER_POLLENATED and v < ago(30) and s not in earnings
    )
    if ages_days:
        assert p.age_median_days == round(statistics.median(ages_days), 2)
        assert p.age_oldest_days == round(ages_days[-1], 2)
        assert p.age_p90_days is not None and sum(a <= p.age_p90_days + 0.01 for a in ages_days) >= 0.9 * len(ages_days)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
def test_percentile_is_a_value_with_the_share_at_or_below_it(values: list[float]) -> None:
    ordered = sorted(values)
    p90 = percentile(ordered, 0.9)
    assert p90 in ordered
    assert sum(v <= p90 for v in ordered) >= 0.9 * len(ordered)
    assert sum(v < p90 for v in ordered) < 0.9 * len(ordered)


# --- the page ------------------------------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_every_chart_has_data() -> None:
    store = build_world()
    report = collector(store).collect()
    page = render_page(report)
    charts = re.findall(r'data-chart="([^"]+)" data-points="(\d+)"', page)
    assert {name for name, _ in charts} >= {"coverage", "age", "items-assets", "items-companyOverview", "calls"}
    assert all(int(points) > 0 for _, points in charts)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched at view time
    assert "default-src 'none'" in page
    assert len(page) < 60_000


def test_the_page_escapes_what_it_shows() -> None:
    report = StatusReport(generated_at="2025-03-10T12:00:00Z")
    report.reasons = ["<script>alert(1)</script>"]
    report.health_line = "health: attention (<script>alert(1)</script>)"
    assert "<script>alert(1)" not in render_page(report)


def test_run_record_model_round_trips_snapshots() -> None:
    record = RunRecord(
        job="status",
        run_id="snapshot",
        started_at="2025-03-10T12:00:00Z",
        ended_at="2025-03-10T12:00:01Z",
        duration_s=0.5,
        ok=True,
        snapshot={"coverage": 0.25, "age_median_days": None},
    )
    assert from_item(to_item(record, retention=timedelta(days=1))).snapshot == {"coverage": 0.25}


class ProjectionRecordingStore(InMemoryStore):
    """Records the projection of every query of the calendar."""

    def __init__(self) -> None:
        super().__init__()
        self.calendar_projections: list[Any] = []

    def query(self, table: str, **kwargs: Any) -> Any:
        if table == "earningsCalendar":
            self.calendar_projections.append(kwargs.get("attributes"))
        return super().query(table, **kwargs)


def test_status_reads_the_calendar_months_projected() -> None:
    store = ProjectionRecordingStore()
    store.put_raw("assets", asset("IBM", NEVER_POLLENATED))
    store.put_raw("earningsCalendar", calendar("IBM", "2025-03-05", name="International Business Machines " * 20))
    store.put_raw("earningsCalendar", calendar("IBM", "2024-11-05", pollenatedAt="2024-11-06T00:00:00Z"))
    report = collector(store).collect(snapshot=False)
    assert store.calendar_projections and all(store.calendar_projections)
    assert all("name" not in projection for projection in store.calendar_projections)
    assert (report.freshness.calendar_first, report.freshness.calendar_last) == ("2024-11-05", "2025-03-05")
    assert report.pollination.due.earnings == 1
    assert report.freshness.tables[1].newest_sync == "2025-03-02T10:00:00Z"
