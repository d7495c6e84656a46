# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""DynamoStore semantics against the moto server over HTTP (through a fault-free proxy)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import read_dead_letter_file
from pollen.adapters.dynamodb.reports import WriteReport
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import WireClient
from pollen.errors import LeaseHeld, NotFound, PollenError
from pollen.observability import MetricsRecorder
from pollen.ports import ItemStore, WriteOutcome
from pollen.report import JobReport
from tests.clocks import ManualClock
from tests.integration.store_support import make_store, proxy, statement, store, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


def test_implements_the_ports(store: DynamoStore) -> None:
    as_port: ItemStore = store
    outcome: WriteOutcome = store.upsert("earnings", [])
    assert as_port is store
    assert outcome.ok and outcome.error_lines() == []


def test_the_store_runs_on_the_transport_under_test(store: DynamoStore, store_transport: str) -> None:
    assert isinstance(store.client(), WireClient) == (store_transport == "wire")
    assert store.upsert("earnings", [statement(1)]).written == 1


def test_upsert_writes_exact_values_and_skips_unchanged(store: DynamoStore, proxy: FaultProxy) -> None:
    items = [statement(i) for i in range(60)]
    report = store.upsert("earnings", items)
    assert (report.written, report.unchanged, report.failed, report.ok) == (60, 0, 0, True)
    stored = store.get("earnings", {"symbol": "S00003", "fiscalPeriod": "ANNUAL#2025-12-31"})
    assert stored == items[3]
    assert stored["reportedEPS"] == Decimal(3) / Decimal(7)

    proxy.reset_counters()
    later = [dict(item, lastSyncDate="2026-02-01T00:00:00Z") for item in items]
    later[5]["period"] = "quarterly"
    report = store.upsert("earnings", later)
    assert (report.written, report.unchanged) == (1, 59)
    assert proxy.requests["BatchWriteItem"] == 1
    # An unchanged item keeps its stored lastSyncDate; the changed one carries the new one.
    assert store.get("earnings", {"symbol": "S00000", "fiscalPeriod": "ANNUAL#2025-12-31"})["lastSyncDate"] == (
        "2026-01-01T00:00:00Z"
    )
    assert store.get("earnings", {"symbol": "S00005", "fiscalPeriod": "ANNUAL#2025-12-31"})["period"] == "quarterly"


def test_older_items_are_stale_and_duplicates_resolved(store: DynamoStore) -> None:
    store.upsert("earnings", [statement(1, value=Decimal(1), sync="2026-03-01T00:00:00Z")])
    older = statement(1, value=Decimal(2), sync="2026-02-01T00:00:00Z")
    report = store.upsert("earnings", [older])
    assert (report.stale, report.written) == (1, 0)
    assert store.get("earnings", {"symbol": "S00001", "fiscalPeriod": "ANNUAL#2025-12-31"})["reportedEPS"] == 1

    newest = statement(2, value=Decimal(30), sync="2026-03-02T00:00:00Z")
    report = store.upsert(
        "earnings",
        [statement(2, value=Decimal(10), sync="2026-03-01T00:00:00Z"), newest, statement(2, value=Decimal(20))],
    )
    assert (report.duplicates, report.written) == (2, 1)
    assert store.get("earnings", {"symbol": "S00002", "fiscalPeriod": "ANNUAL#2025-12-31"})["reportedEPS"] == 30


def test_invalid_items_are_reported_and_dead_lettered(store: DynamoStore, tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        statement(1),
        {"symbol": "S2", "period": "annual"},  # no sort key
        {"symbol": "S3", "fiscalPeriod": "Q", "blob": "x" * 410_000},  # over 400 KB
        {"symbol": "S4", "fiscalPeriod": "Q", "eps": float("nan")},
        {"symbol": "", "fiscalPeriod": "Q"},
    ]
    report = store.upsert("earnings", items)
    assert (report.written, report.invalid, report.ok) == (1, 4, False)
    lines = report.error_lines()
    assert any("S3" in line and "400 KB" in line for line in lines)
    assert any("fiscalPeriod" in line and "missing" in line for line in lines)
    dead = (tmp_path / "dead-letters" / "earnings-run.jsonl").read_text().splitlines()[1:]  # after the header
    assert len(dead) == 3  # the NaN item cannot be written as JSON: its reason is kept alone
    reasons = (tmp_path / "dead-letters" / "earnings-run.reasons.jsonl").read_text().splitlines()
    assert len(reasons) == 4
    job = JobReport(job="t")
    report.add_to(job)
    assert (job.written, job.invalid, job.ok, len(job.errors)) == (1, 4, False, 4)


def test_delete_and_batch_get(store: DynamoStore) -> None:
    store.upsert("earnings", [statement(i) for i in range(150)])
    keys = [{"symbol": f"S{i:05d}", "fiscalPeriod": "ANNUAL#2025-12-31"} for i in range(0, 150, 2)]
    got = store.batch_get("earnings", [*keys, {"symbol": "nope", "fiscalPeriod": "x"}])
    assert [item["symbol"] for item in got] == [k["symbol"] for k in keys]
    report = store.delete("earnings", [*keys, keys[0]])
    assert (report.written, report.duplicates, report.ok) == (75, 1, True)
    assert store.batch_get("earnings", keys) == []
    assert len(list(store.scan("earnings", segments=3))) == 75


def test_query_through_the_index_and_fallback_when_missing(
    store: DynamoStore, dynamodb: Any, table_prefix: str, tmp_path: Path, proxy: FaultProxy
) -> None:
    assets = [
        {
            "symbol": f"A{i}",
            "lastPollenationDate": "1970-01-01T00:00:00Z",
            "status": "active" if i % 3 else "inactive",
            "volume": i * 10,
        }
        for i in range(30)
    ]
    store.upsert("assets", assets)
    top = list(store.query("assets", partition=("status", "active"), index="status-index", descending=True, limit=5))
    assert [a["volume"] for a in top] == [290, 280, 260, 250, 230]
    ranged = list(store.query("assets", partition=("status", "inactive"), index="status-index", sort_between=(30, 90)))
    assert [a["volume"] for a in ranged] == [30, 60, 90]

    # The same table without its GSI: the query falls back to a Scan and keeps the order.
    dynamodb.create_table(
        TableName=f"{table_prefix}bare-assets",
        KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "symbol", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, table_prefix, tmp_path, metrics=metrics) as bare:
        bare.upsert("bare-assets", assets)
        bare.catalog.known["bare-assets"] = bare.table_info("bare-assets").__class__(
            "bare-assets",
            f"{table_prefix}bare-assets",
            (("symbol", "S"),),
            {"status-index": (("status", "S"), ("volume", "N"))},
        )
        fallback = list(
            bare.query("bare-assets", partition=("status", "active"), index="status-index", descending=True, limit=5)
        )
    assert [a["volume"] for a in fallback] == [290, 280, 260, 250, 230]
    assert metrics.total("GsiFallback") == 1
    assert metrics.total("GsiQueryFailure") == 1
    assert metrics.total("GsiQueries") >= 1
    # What the alarms and the demo read: batches sent and write units spent (from item sizes, not moto's figure).
    assert metrics.total("BatchWriteRequests") >= 1
    assert metrics.total("WriteCapacityUnits") >= len(assets)
    assert metrics.total("BatchWriteFailures") == 0


def test_move_sort_key_is_one_transaction(store: DynamoStore) -> None:
    old = {"symbol": "AAPL", "lastPollenationDate": "1970-01-01T00:00:00Z", "status": "active", "volume": 1}
    store.upsert("assets", [old])
    new = dict(old, lastPollenationDate="2026-01-01T00:00:00Z")
    moved = store.move_sort_key(
        "assets", {"symbol": "AAPL", "lastPollenationDate": old["lastPollenationDate"]}, new["lastPollenationDate"]
    )
    assert moved == new
    assert list(store.query("assets", partition=("symbol", "AAPL"))) == [new]
    # A move to an older key keeps the newer one; a symbol without items cannot be moved.
    assert store.move_sort_key("assets", {"symbol": "AAPL"}, "2025-01-01T00:00:00Z") == new
    with pytest.raises(NotFound, match="no item to move"):
        store.move_sort_key("assets", {"symbol": "MSFT"}, "2026-02-01T00:00:00Z")
    assert list(store.query("assets", partition=("symbol", "AAPL"))) == [new]


def test_transactions_hold_at_most_100_actions(store: DynamoStore) -> None:
    actions = [store.put_action("earnings", statement(i)) for i in range(101)]
    with pytest.raises(PollenError, match="at most 100"):
        store.transact_write(actions)
    store.transact_write(actions[:100])
    assert len(list(store.scan("earnings"))) == 100


def test_lease_excludes_a_second_run_and_expires(
    store: DynamoStore, proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    with make_store(proxy.endpoint, tables, tmp_path) as other:
        with (
            store.lease("sync-assets", ttl_s=30),
            pytest.raises(LeaseHeld, match="already running"),
            other.lease("sync-assets", ttl_s=30),
        ):
            pass
        with other.lease("sync-assets", ttl_s=30):  # released on exit: free again
            pass
        clock = ManualClock()
        crashed = store.lease("sync-assets", ttl_s=30, heartbeat=False, clock=clock)
        crashed.acquire()  # never released, as if the run crashed
        assert crashed.held
        clock.advance(29)
        with pytest.raises(LeaseHeld):
            other.lease("sync-assets", ttl_s=30, clock=clock).__enter__()
        clock.advance(2)
        with other.lease("sync-assets", ttl_s=30, clock=clock) as taken:  # expired: taken over
            assert taken.held and taken.taken_over is None
        assert store.get("pollenControl", {"pk": "lease#sync-assets", "sk": "lease"}) is None


def test_dead_letter_file_is_what_load_reads(store: DynamoStore, tmp_path: Path) -> None:
    item = statement(9, value=Decimal("123456789012345678901234567890.12345678"))
    item["fiscalPeriod"] = ""
    report = store.upsert("earnings", [item])
    assert report.invalid == 1
    header, dead = read_dead_letter_file(tmp_path / "dead-letters" / "earnings-run.jsonl")
    assert header == ("put", "earnings") and dead == [item]


def test_write_report_satisfies_the_outcome_protocol() -> None:
    report = WriteReport("t", written=2, failed=1)
    outcome: WriteOutcome = report
    assert not outcome.ok
