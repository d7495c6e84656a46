# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""What the jobs read of DynamoDB, recorded at the client against the moto server: SyncAssets reads ``assets``
with one projected Scan and compares with it (no BatchGetItem), the store compares with what it is handed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import JsonlDeadLetters
from pollen.adapters.dynamodb import upsert as upsert_module
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.jobs.scheduler import Scheduler
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import SyncEarningsCalendar
from pollen.observability import MetricsRecorder
from pollen.ports import VERSION_ATTRIBUTES
from pollen.tables import NEVER_POLLENATED
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals
from tests.integration.store_support import FAST_RETRY, client_factory, proxy, statement, tables  # noqa: F401

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)


class Recording:
    """A client that records every call as (operation, its parameters) and passes it on."""

    def __init__(self, inner: Any, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.inner = inner
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **params: Any) -> Any:
            if name == "call_json":  # the wire client's pre-encoded path: (operation, JSON body)
                operation, body = args
                self.calls.append((re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower(), json.loads(body)))
            else:
                self.calls.append((name, params))
            return attribute(*args, **params)

        return call


def recording_store(endpoint: str, prefix: str, home: Path) -> tuple[DynamoStore, list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    factory: Callable[[], Any] = client_factory(endpoint, "wire")
    store = DynamoStore(
        client_factory=lambda: Recording(factory(), calls),
        table_prefix=prefix,
        metrics=MetricsRecorder(),
        dead_letters=JsonlDeadLetters(home / "dead-letters", run_id="run"),
        retry=FAST_RETRY,
        concurrency=4,
    )
    return store, calls


def market(n: int) -> FakeAssetSource:
    symbols = [f"S{i:03d}" for i in range(n)]
    return FakeAssetSource([payloads.alpaca_asset(s) for s in symbols], {s: 1000 * i for i, s in enumerate(symbols)})


def data_calls(calls: list[tuple[str, dict[str, Any]]], table: str) -> list[tuple[str, dict[str, Any]]]:
    """The calls that read or write ``table`` (the lease's calls on the control table left out)."""
    found = []
    for operation, params in calls:
        names = {params.get("TableName"), *params.get("RequestItems", {})}
        if table in names:
            found.append((operation, params))
    return found


def test_a_same_day_resync_reads_assets_with_one_projected_scan_and_writes_nothing(
    proxy: Any, tables: str, tmp_path: Path
) -> None:
    source = market(120)
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        first = SyncAssets(store, source, metrics=MetricsRecorder(), clock=lambda: DAY1).run()
        assert first.ok, first.errors
        assert (first.written, first.new) == (120, 120)
        stored_before = sorted(store.scan("assets"), key=lambda i: str(i["symbol"]))
        calls.clear()

        again = SyncAssets(store, source, metrics=MetricsRecorder(), clock=lambda: DAY1).run()
        on_assets = data_calls(calls, f"{tables}assets")
        stored_after = sorted(store.scan("assets"), key=lambda i: str(i["symbol"]))

    assert again.ok, again.errors
    assert (again.written, again.unchanged, again.new, again.deactivated) == (0, 120, 0, 0)
    assert again.check["duplicate_symbols"] == 0 and again.check["missing_attributes"] == 0
    assert stored_after == stored_before
    operations = {operation for operation, _ in on_assets}
    assert operations == {"scan"}, operations  # no BatchGetItem, no BatchWriteItem, no second read
    scans = [params for _, params in on_assets]
    # One parallel Scan: each segment started once (pages of a segment carry ExclusiveStartKey).
    starts = sorted(p["Segment"] for p in scans if "ExclusiveStartKey" not in p)
    assert starts == list(range(scans[0]["TotalSegments"]))
    for params in scans:
        assert params["ConsistentRead"] is True
        projected = set(params["ExpressionAttributeNames"].values())
        assert set(VERSION_ATTRIBUTES) <= projected and "name" not in projected


def test_a_resync_with_changes_writes_only_them_without_reading_by_key(proxy: Any, tables: str, tmp_path: Path) -> None:
    symbols = [f"S{i:03d}" for i in range(40)]
    raw = [payloads.alpaca_asset(s) for s in symbols]
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        SyncAssets(store, FakeAssetSource(raw), metrics=MetricsRecorder(), clock=lambda: DAY1).run()
        renamed = {**raw[3], "name": "Renamed Corp"}
        feed = [*raw[:3], renamed, *raw[4:39], payloads.alpaca_asset("NEW")]  # S039 vanished, NEW listed
        calls.clear()
        report = SyncAssets(store, FakeAssetSource(feed), metrics=MetricsRecorder(), clock=lambda: DAY1).run()
        on_assets = data_calls(calls, f"{tables}assets")
        stored = {str(i["symbol"]): i for i in store.scan("assets")}

    assert report.ok, report.errors
    assert (report.written, report.new, report.deactivated, report.unchanged) == (3, 1, 1, 38)
    assert stored["S003"]["name"] == "Renamed Corp"
    assert stored["S039"]["status"] == "inactive" and stored["NEW"]["lastPollenationDate"] == NEVER_POLLENATED
    assert len(stored) == 41
    gets = [params for operation, params in on_assets if operation == "batch_get_item"]
    # Whole items are read by key only for the deactivated symbol.
    assert [len(p["RequestItems"][f"{tables}assets"]["Keys"]) for p in gets] == [1]


def test_the_upsert_compares_with_the_versions_it_is_handed(proxy: Any, tables: str, tmp_path: Path) -> None:
    items = [statement(i) for i in range(10)]
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        store.upsert("earnings", items)
        projection = ["symbol", "fiscalPeriod", *VERSION_ATTRIBUTES]
        stored = sorted(store.scan("earnings", attributes=projection), key=lambda i: str(i["symbol"]))
        assert all(isinstance(i.get("contentHash"), str) for i in stored)
        assert all("contentHash" not in i for i in store.scan("earnings"))
        calls.clear()
        changed = [statement(0, value=99), *items[1:]]
        # Item 9 left out of what was read: taken as new and written again.
        report = store.upsert("earnings", changed, stored=stored[:9])
    assert (report.written, report.unchanged) == (2, 8)
    assert not [operation for operation, _ in calls if operation in ("batch_get_item", "scan", "describe_table")]


def test_items_the_handed_versions_show_unchanged_are_not_encoded(
    proxy: Any, tables: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the stored versions known, an unchanged item is recognised by the hash of its plain content: only the
    items that are written go through the full encoding."""
    items = [statement(i) for i in range(10)]
    store, _ = recording_store(proxy.endpoint, tables, tmp_path)
    encoded: list[str] = []
    full_encoding = upsert_module.complete

    def recording_complete(record: Any, bookkeeping: frozenset[str]) -> None:
        encoded.append(str(record.plain["symbol"]))
        full_encoding(record, bookkeeping)

    with store:
        store.upsert("earnings", items)
        stored = list(store.scan("earnings", attributes=["symbol", "fiscalPeriod", *VERSION_ATTRIBUTES]))
        monkeypatch.setattr(upsert_module, "complete", recording_complete)
        changed = [statement(0, value=99), *[statement(i, sync="2026-02-01T00:00:00Z") for i in range(1, 10)]]
        report = store.upsert("earnings", changed, stored=stored)
        reread = {str(i["symbol"]): i for i in store.scan("earnings")}
    assert (report.written, report.unchanged) == (1, 9)
    assert encoded == ["S00000"]
    assert reread["S00000"]["reportedEPS"] == 99
    assert reread["S00001"]["lastSyncDate"] == "2026-01-01T00:00:00Z"  # unchanged: not rewritten


def test_changed_leaves_out_exactly_what_the_upsert_counts_unchanged_and_reads_nothing(
    proxy: Any, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(8)]
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        store.upsert("earnings", items)
        stored = list(store.scan("earnings", attributes=["symbol", "fiscalPeriod", *VERSION_ATTRIBUTES]))
        incoming = [
            statement(0, sync="2026-03-01T00:00:00Z"),  # only its bookkeeping differs: unchanged
            statement(1, value=Decimal("0.5")),  # new content
            statement(99),  # not stored
            {**statement(2), "contentHash": "mine"},  # reserved attribute: the upsert refuses it
            {**statement(3), "fiscalPeriod": ""},  # no valid key: the upsert refuses it
            *items[4:],
        ]
        calls.clear()
        changed = store.changed("earnings", incoming, stored)
        assert calls == []
        report = store.upsert("earnings", incoming, stored=stored)
    assert changed == incoming[1:5]
    assert report.unchanged == len(incoming) - len(changed)
    assert (report.written, report.invalid) == (2, 2)


def test_an_item_carrying_the_reserved_hash_attribute_is_refused_even_when_its_content_is_unchanged(
    proxy: Any, tables: str, tmp_path: Path
) -> None:
    store, _ = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        store.upsert("earnings", [statement(1)])
        stored = list(store.scan("earnings", attributes=["symbol", "fiscalPeriod", *VERSION_ATTRIBUTES]))
        report = store.upsert("earnings", [{**statement(1), "contentHash": "mine"}], stored=stored)
    assert (report.written, report.unchanged, report.invalid) == (0, 0, 1)
    assert "reserved" in report.failures[0].reason


def test_a_calendar_resync_compares_with_its_window_read_and_a_reschedule_still_replaces(
    proxy: Any, tables: str, tmp_path: Path
) -> None:
    rows = [payloads.calendar_row(f"S{i:03d}", "2026-11-20", "2026-09-30") for i in range(30)]
    nov2 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        SyncEarningsCalendar(store, FakeFundamentals(rows), metrics=MetricsRecorder(), clock=lambda: nov2).run()
        calls.clear()
        moved = [payloads.calendar_row("S000", "2026-12-03", "2026-09-30"), *rows[1:]]
        report = SyncEarningsCalendar(
            store, FakeFundamentals(moved), metrics=MetricsRecorder(), clock=lambda: nov2
        ).run()
        on_calendar = data_calls(calls, f"{tables}earningsCalendar")
        stored = list(store.scan("earningsCalendar"))
    assert report.ok, report.errors
    assert (report.written, report.unchanged, report.rescheduled, report.stale_removed) == (1, 29, 1, 1)
    assert sorted(i["earnings_date"] for i in stored if i["asset_symbol"] == "S000") == ["2026-12-03"]
    assert "batch_get_item" not in {operation for operation, _ in on_calendar}
    queries = [params for operation, params in on_calendar if operation == "query"]
    assert queries and all("contentHash" in p["ExpressionAttributeNames"].values() for p in queries)


def test_the_scheduler_reads_active_assets_projected(proxy: Any, tables: str, tmp_path: Path) -> None:
    store, calls = recording_store(proxy.endpoint, tables, tmp_path)
    with store:
        SyncAssets(store, market(12), metrics=MetricsRecorder(), clock=lambda: DAY1).run()
        calls.clear()
        due = Scheduler(store, metrics=MetricsRecorder(), clock=lambda: DAY1).next_due(3)
    assert [d.symbol for d in due] == ["S011", "S010", "S009"]  # never pollenated, highest volume first
    (query,) = [p for operation, p in data_calls(calls, f"{tables}assets") if operation == "query"]
    assert query["IndexName"] == "status-index"
    assert set(query["ExpressionAttributeNames"].values()) >= {"symbol", "lastPollenationDate", "volume"}
    assert "name" not in query["ExpressionAttributeNames"].values()
