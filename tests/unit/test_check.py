"""The consistency check finds and repairs planted defects."""

from __future__ import annotations

from datetime import UTC, datetime

from pollen.errors import PermanentError
from pollen.jobs.check import ConsistencyCheck
from pollen.observability import MetricsRecorder
from tests.fakes import InMemoryStore
from tests.unit.test_pollenate import add_asset

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def check(store: InMemoryStore, repair: bool):  # type: ignore[no-untyped-def]
    return ConsistencyCheck(store, metrics=MetricsRecorder(), clock=lambda: NOW).run(repair=repair)


def planted() -> InMemoryStore:
    store = InMemoryStore()
    add_asset(store, "IBM", volume=5)
    add_asset(store, "OK", volume=5)
    (ibm,) = store.by("assets", symbol="IBM")
    # Two items for one symbol: an older key with newer synced content, a newer key with older content.
    store.put_raw(
        "assets",
        {**ibm, "lastPollenationDate": "2026-11-10T00:00:00Z", "lastSyncDate": "2026-10-01T00:00:00Z", "volume": 1},
    )
    store.put_raw("assets", {**ibm, "lastSyncDate": "2026-11-15T00:00:00Z", "volume": 9})
    add_asset(store, "NOVOL", volume=1)
    del store.tables["assets"][("NOVOL", "1970-01-01T00:00:00Z")]["volume"]
    add_asset(store, "NOID", volume=1)
    del store.tables["assets"][("NOID", "1970-01-01T00:00:00Z")]["id"]
    base = {"asset_symbol": "IBM", "fiscal_date_ending": "2026-09-30", "name": "IBM"}
    store.put_raw(
        "earningsCalendar",
        {**base, "earnings_date": "2026-11-20", "earnings_month": "2026-11", "lastSyncDate": "2026-11-01T00:00:00Z"},
    )
    store.put_raw(
        "earningsCalendar",
        {**base, "earnings_date": "2026-11-27", "earnings_month": "2026-11", "lastSyncDate": "2026-11-05T00:00:00Z"},
    )
    store.put_raw(
        "earningsCalendar",
        {
            **base,
            "asset_symbol": "X",
            "earnings_date": "2026-12-01",
            "earnings_month": "2026-11",
            "lastSyncDate": "2026-11-05T00:00:00Z",
        },
    )
    return store


def test_check_finds_planted_defects_without_changing_anything() -> None:
    store = planted()
    before = {t: store.items(t) for t in ("assets", "earningsCalendar")}
    report = check(store, repair=False)
    assert not report.ok
    assert report.duplicate_symbols == 1
    assert report.missing_attributes == 2
    assert report.stale_calendar == 1
    assert report.bad_calendar == 1
    assert any("IBM: 2 items" in d for d in report.defects)
    assert {t: store.items(t) for t in before} == before


def test_repair_fixes_what_it_can_and_reports_the_rest() -> None:
    store = planted()
    report = check(store, repair=True)
    (ibm,) = store.by("assets", symbol="IBM")
    assert ibm["lastPollenationDate"] == "2026-11-10T00:00:00Z"  # the newest pollenation
    assert ibm["volume"] == 9  # the newest synced content
    assert store.by("assets", symbol="NOVOL")[0]["volume"] == 0
    assert [i["earnings_date"] for i in store.by("earningsCalendar", asset_symbol="IBM")] == ["2026-11-27"]
    assert store.by("earningsCalendar", asset_symbol="X")[0]["earnings_month"] == "2026-12"
    assert report.repaired == 4
    assert report.unrepaired == 1  # NOID: only the next sync can restore its id
    assert not report.ok
    second = check(store, repair=False)
    assert second.duplicate_symbols == second.stale_calendar == second.bad_calendar == 0
    assert second.missing_attributes == 1


def test_a_clean_store_is_ok() -> None:
    store = InMemoryStore()
    add_asset(store, "IBM")
    report = check(store, repair=False)
    assert report.ok and report.assets_checked == 1 and not report.defects


def test_a_failed_fold_is_reported() -> None:
    store = planted()
    store.fail_moves = PermanentError("TransactionCanceledException")
    report = check(store, repair=True)
    assert len(store.by("assets", symbol="IBM")) == 2
    assert any("could not fold" in e for e in report.errors)
    assert not report.ok


def test_the_calendar_is_scanned_projected_and_a_repair_rewrites_the_whole_item() -> None:
    store = planted()
    check(store, repair=True)
    (fixed,) = store.by("earningsCalendar", asset_symbol="X")
    # The check reads a projection; the repaired item keeps what the projection left out.
    assert fixed["earnings_month"] == "2026-12" and fixed["name"] == "IBM"
    assert fixed["fiscal_date_ending"] == "2026-09-30"
