# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""How the upsert reads what is stored before it writes: by key (BatchGetItem) or by one projected Scan, whichever
costs fewer read units; counted at the proxy in front of the moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.upsert import WORK_UNIT
from pollen.adapters.dynamodb.versions import SCAN_COMPARE_MIN_ITEMS
from pollen.adapters.dynamodb.wire import WireClient
from pollen.observability import MetricsRecorder
from tests.integration.store_support import make_store, proxy, statement, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

N = SCAN_COMPARE_MIN_ITEMS + 200


class StaleStatistics:
    """A client whose DescribeTable reports what DynamoDB reports for hours after a table filled: no items."""

    def __init__(self, inner: WireClient) -> None:
        self.inner = inner

    def describe_table(self, **params: Any) -> dict[str, Any]:
        table = self.inner.describe_table(**params)
        table["Table"].update(ItemCount=0, TableSizeBytes=0)
        return table

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_large_upsert_into_a_small_table_reads_it_with_one_scan(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(N)]
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        first = store.upsert("earnings", items)
        assert (first.written, first.unchanged) == (N, 0)
        assert proxy.requests["BatchGetItem"] == 0 and proxy.requests["Scan"] >= 1
        proxy.reset_counters()

        changed = [statement(i, value=i + 1) if i % 100 == 0 else statement(i) for i in range(N)]
        older = statement(1, value=-1, sync="2025-01-01T00:00:00Z")
        again = store.upsert("earnings", [*changed[:1], *changed[2:], older])
    # 1,200 small items are a few dozen read units by Scan, against 1,200 by key.
    assert proxy.requests["BatchGetItem"] == 0 and proxy.requests["Scan"] >= 1
    assert (again.written, again.unchanged, again.stale) == (N // 100, N - 1 - N // 100, 1)
    assert proxy.requests["BatchWriteItem"] == -(-N // WORK_UNIT)  # one partial batch per worker's chunk
    assert metrics.total("UpsertCompareScans") == 2


def test_a_small_upsert_reads_by_key(proxy: FaultProxy, tables: str, tmp_path: Path) -> None:
    items = [statement(i) for i in range(SCAN_COMPARE_MIN_ITEMS - 1)]
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        store.upsert("earnings", items)
        assert proxy.requests["Scan"] == 0 and proxy.requests["DescribeTable"] == 0
        assert proxy.requests["BatchGetItem"] == -(-len(items) // 100)
        proxy.reset_counters()
        again = store.upsert("earnings", items)
    assert again.unchanged == len(items) and proxy.requests["BatchWriteItem"] == 0


def test_a_table_larger_than_the_upsert_is_read_by_key(proxy: FaultProxy, tables: str, tmp_path: Path) -> None:
    # Items of ~5 KB: scanning the table costs more read units than reading the upsert's keys (1 unit each).
    count = SCAN_COMPARE_MIN_ITEMS

    def big(i: int) -> dict[str, Any]:
        return {**statement(i), "notes": "x" * 5_000}

    with make_store(proxy.endpoint, tables, tmp_path) as store:
        store.upsert("earnings", [big(i) for i in range(count)], compare=False)
        proxy.reset_counters()
        report = store.upsert("earnings", [big(i) for i in range(count // 2, count + count // 2)])
    assert proxy.requests["Scan"] == 0 and proxy.requests["DescribeTable"] == 1
    assert proxy.requests["BatchGetItem"] == count // 100
    assert (report.unchanged, report.written) == (count // 2, count // 2)


def test_stale_statistics_stop_the_scan_and_the_reads_go_by_key(proxy: FaultProxy, tables: str, tmp_path: Path) -> None:
    stored = [statement(i) for i in range(2 * N + 200)]
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        store.upsert("earnings", stored, compare=False)
    metrics = MetricsRecorder()
    with DynamoStore(
        client_factory=lambda: StaleStatistics(WireClient(endpoint_url=proxy.endpoint)),
        table_prefix=tables,
        metrics=metrics,
    ) as store:
        proxy.reset_counters()
        report = store.upsert("earnings", stored[:N])
    # The statistics promised an empty table; the Scan stopped after 2 x N items and every key was then read.
    assert report.unchanged == N and report.written == 0
    assert proxy.requests["Scan"] >= 1 and proxy.requests["BatchGetItem"] == -(-N // 100)
    assert metrics.total("UpsertCompareScans") == 0
