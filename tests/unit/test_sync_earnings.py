"""SyncEarningsCalendar and date-range queries against the in-memory store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from pollen.errors import DeadLettersLost, InvalidRecord
from pollen.jobs.sync_earnings import SyncEarningsCalendar, earnings_between, months_between
from pollen.observability import MetricsRecorder
from tests import payloads
from tests.fakes import FakeFundamentals, InMemoryStore, transient

NOV2 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def run(store: InMemoryStore, rows: list[dict[str, str]], when: datetime = NOV2, horizon: str = "3month"):  # type: ignore[no-untyped-def]
    source = FakeFundamentals(rows)
    report = SyncEarningsCalendar(store, source, metrics=MetricsRecorder(), clock=lambda: when).run(horizon)  # type: ignore[arg-type]
    assert source.horizons == [horizon]
    return report


CALENDAR = [
    payloads.calendar_row("IBM", "2026-11-20", "2026-09-30"),
    payloads.calendar_row("AAPL", "2026-12-01", "2026-09-30", estimate="", timeOfTheDay=""),
    payloads.calendar_row("BRK.B", "2027-01-15", "2026-12-31"),
    payloads.calendar_row("MSFT", "2026-11-05", "2026-09-30"),
]


def test_rows_become_items_with_earnings_month_and_blank_values_absent() -> None:
    store = InMemoryStore()
    report = run(store, CALENDAR)
    assert report.ok and report.written == 4 and report.rows == 4
    (aapl,) = store.by("earningsCalendar", asset_symbol="AAPL")
    assert aapl["earnings_month"] == "2026-12"
    assert "estimate" not in aapl and "time_of_the_day" not in aapl
    (ibm,) = store.by("earningsCalendar", asset_symbol="IBM")
    assert ibm["estimate"] == Decimal("1.23") and ibm["lastSyncDate"] == "2026-11-02T06:00:00Z"


def test_a_lease_lost_during_the_run_makes_the_report_say_so() -> None:
    store = InMemoryStore()
    store.lose_leases = "lease of job 'sync-earnings' lost (now held by host:other)"
    report = run(store, CALENDAR)
    assert report.written == 4 and not report.ok
    assert report.errors == ["lease of job 'sync-earnings' lost (now held by host:other)"]


def test_a_second_sync_writes_nothing() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    report = run(store, CALENDAR, datetime(2026, 11, 3, tzinfo=UTC))
    assert report.written == 0 and report.unchanged == 4
    assert {i["lastSyncDate"] for i in store.items("earningsCalendar")} == {"2026-11-02T06:00:00Z"}


def test_a_rescheduled_report_leaves_exactly_one_item_for_its_fiscal_period() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    moved = [dict(r) for r in CALENDAR]
    moved[0]["reportDate"] = "2027-01-22"  # IBM moved to another month
    report = run(store, moved, datetime(2026, 11, 3, tzinfo=UTC))
    assert report.rescheduled == 1 and report.stale_removed == 1
    (ibm,) = store.by("earningsCalendar", asset_symbol="IBM")
    assert ibm["earnings_date"] == "2027-01-22" and ibm["earnings_month"] == "2027-01"


def test_a_report_moved_after_its_old_date_passed_is_still_replaced_but_history_is_kept() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    # MSFT reported on 11-05 (history: the next calendar no longer lists it); IBM's 11-20 moves to 11-25 after it passed.
    later = [payloads.calendar_row("IBM", "2026-11-25", "2026-09-30")]
    report = run(store, later, datetime(2026, 11, 21, tzinfo=UTC))
    assert report.stale_removed == 1
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="IBM")] == ["2026-11-25"]
    assert store.by("earningsCalendar", asset_symbol="MSFT")  # past report kept


def test_duplicates_and_bad_rows_are_counted_and_skipped() -> None:
    store = InMemoryStore()
    rows = [
        *CALENDAR,
        payloads.calendar_row("IBM", "2026-11-21", "2026-09-30"),  # same fiscal period listed twice: last wins
        payloads.calendar_row("BAD SYM", "2026-11-21"),
        payloads.calendar_row("XOM", "2026-02-30"),
    ]
    report = run(store, rows)
    assert report.invalid == 2 and report.duplicates == 1
    assert report.ok  # bad upstream rows are counted, not failures
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="IBM")] == ["2026-11-21"]


def test_the_pollenation_marker_survives_a_resync() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    (ibm,) = store.by("earningsCalendar", asset_symbol="IBM")
    store.upsert("earningsCalendar", [{**ibm, "pollenatedAt": "2026-11-21T00:00:00Z"}])
    report = run(store, CALENDAR, datetime(2026, 11, 3, tzinfo=UTC))
    assert report.written == 0
    assert store.by("earningsCalendar", asset_symbol="IBM")[0]["pollenatedAt"] == "2026-11-21T00:00:00Z"


def test_a_failed_write_keeps_the_stale_item_until_its_replacement_exists() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    moved = [dict(r) for r in CALENDAR]
    moved[0]["reportDate"] = "2026-11-27"
    store.fail_upsert["earningsCalendar"] = transient()
    report = run(store, moved, datetime(2026, 11, 3, tzinfo=UTC))
    assert not report.ok and report.failed == 4
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="IBM")] == ["2026-11-20"]


def test_unknown_horizon_is_rejected() -> None:
    with pytest.raises(InvalidRecord):
        run(InMemoryStore(), [], horizon="1week")


def test_date_range_queries_use_month_buckets_of_the_index_and_equal_a_scan() -> None:
    store = InMemoryStore()
    run(store, CALENDAR)
    found = list(earnings_between(store, date(2026, 11, 3), date(2026, 12, 31)))
    assert [(i["asset_symbol"], i["earnings_date"]) for i in found] == [
        ("MSFT", "2026-11-05"),
        ("IBM", "2026-11-20"),
        ("AAPL", "2026-12-01"),
    ]
    scanned = sorted(
        (i["asset_symbol"], i["earnings_date"])
        for i in store.items("earningsCalendar")
        if "2026-11-03" <= i["earnings_date"] <= "2026-12-31"
    )
    assert sorted((i["asset_symbol"], i["earnings_date"]) for i in found) == scanned
    assert {q for q in store.queries if q[0] == "earningsCalendar"} == {("earningsCalendar", "upcoming-earnings-index")}


def test_months_between_crosses_years() -> None:
    assert months_between(date(2026, 11, 30), date(2027, 2, 1)) == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert months_between(date(2026, 11, 3), date(2026, 11, 3)) == ["2026-11"]


def test_dead_letters_that_no_durable_place_took_fail_the_run() -> None:
    """Other write failures are reported and the run goes on; items neither written nor kept must fail it (in Lambda
    the scheduled invocation then fails and is retried)."""
    store = InMemoryStore()
    store.fail_upsert["earningsCalendar"] = DeadLettersLost("earningsCalendar: 4 dead letters could not be sent")
    with pytest.raises(DeadLettersLost):
        run(store, CALENDAR)


def test_a_report_moved_earlier_than_its_old_date_beyond_every_row_is_replaced() -> None:
    store = InMemoryStore()
    run(store, [payloads.calendar_row("IBM", "2027-01-20", "2026-12-31")])
    # The next calendar lists IBM earlier; its old date lies after every row's date but within the horizon.
    report = run(store, [payloads.calendar_row("IBM", "2026-11-25", "2026-12-31")], datetime(2026, 11, 3, tzinfo=UTC))
    assert (report.rescheduled, report.stale_removed) == (1, 1)
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="IBM")] == ["2026-11-25"]


def test_rows_outside_the_horizons_read_are_compared_with_what_is_stored() -> None:
    store = InMemoryStore()
    rows = [
        payloads.calendar_row("OLD", "2026-08-01", "2026-06-30"),  # before the lookback
        payloads.calendar_row("FAR", "2027-06-01", "2027-03-31"),  # past the 3-month horizon
        *CALENDAR,
    ]
    run(store, rows)
    report = run(store, rows, datetime(2026, 11, 3, tzinfo=UTC))
    assert (report.written, report.unchanged) == (0, 6)
    moved = [payloads.calendar_row("FAR", "2027-06-08", "2027-03-31"), *rows[:1], *CALENDAR]
    report = run(store, moved, datetime(2026, 11, 4, tzinfo=UTC))
    assert (report.written, report.unchanged, report.stale_removed) == (1, 5, 1)
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="FAR")] == ["2027-06-08"]
