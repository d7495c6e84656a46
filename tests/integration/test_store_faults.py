# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""The write engine under injected faults (the issue's "Done when" scenarios), through the fault proxy."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.codec import dumps_plain, loads_plain
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.deadline import Deadline
from pollen.local.faultproxy import FaultProxy, Faults
from pollen.observability import MetricsRecorder
from tests.integration.store_support import key_of, make_store, proxy, statement, store, tables  # noqa: F401

pytestmark = pytest.mark.integration


def _stored(store: DynamoStore) -> list[dict[str, Any]]:
    return list(store.scan("earnings", segments=4))


def test_50000_items_under_heavy_faults_all_arrive_exactly_once(proxy: FaultProxy, tables: str, tmp_path: Path) -> None:
    items = [statement(i) for i in range(50_000)]
    proxy.faults = Faults(unprocessed=0.30, throttle=0.05, server_error=0.02, reset=0.01, seed=7)
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics, concurrency=8) as store:
        report = store.upsert("earnings", items)
        proxy.faults = Faults()
        stored = _stored(store)
    assert report.ok, report.error_lines()[:5]
    assert (report.written, report.failed, report.invalid, report.unchanged) == (50_000, 0, 0, 0)
    assert report.total == len(items)
    counts = Counter(key_of(item) for item in stored)
    assert len(counts) == 50_000 and max(counts.values()) == 1
    assert sorted(stored, key=key_of) == items
    # Every kind of fault really happened, and the engine retried them.
    assert {"unprocessed", "throttle", "server_error", "reset"} <= set(proxy.injected)
    assert metrics.total("DynamoRetries") > 0 and metrics.total("DynamoThrottles") > 0


def test_three_permanent_failures_are_isolated_dead_lettered_and_replayable(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(10_000)]
    poisoned = {17, 5_003, 9_998}
    for i in poisoned:
        items[i]["poison"] = "yes"
    proxy.faults = Faults(poison_attribute="poison")
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        report = store.upsert("earnings", items)
        assert (report.written, report.failed, report.ok) == (9_997, 3, False)
        assert sorted(f.key["symbol"] for f in report.failures) == sorted(f"S{i:05d}" for i in poisoned)
        assert all("ValidationException" not in f.reason or "poison" in f.reason for f in report.failures)
        dead_file = tmp_path / "dead-letters" / "earnings-run.jsonl"
        dead = [loads_plain(line) for line in dead_file.read_text().splitlines()]
        assert sorted(d["symbol"] for d in dead) == sorted(f"S{i:05d}" for i in poisoned)
        assert len(_stored(store)) == 9_997
        # Fix the file (drop the offending attribute) and replay it as is.
        fixed = tmp_path / "fixed.jsonl"
        fixed.write_text("".join(dumps_plain({k: v for k, v in d.items() if k != "poison"}) + "\n" for d in dead))
        replay = store.upsert("earnings", [loads_plain(line) for line in fixed.read_text().splitlines()])
        assert (replay.written, replay.ok) == (3, True)
        assert len(_stored(store)) == 10_000


def test_reloading_the_same_items_issues_no_write(store: DynamoStore, proxy: FaultProxy) -> None:
    items = [statement(i) for i in range(10_000)]
    first = store.upsert("earnings", items)
    assert first.written == 10_000
    proxy.reset_counters()
    again = store.upsert("earnings", [dict(item) for item in items])
    assert (again.unchanged, again.written, again.ok) == (10_000, 0, True)
    assert proxy.write_requests() == 0
    assert proxy.requests["BatchGetItem"] == 100  # 100 keys per read, nothing else


def test_deadline_behind_a_slow_proxy_stops_in_time_and_reports_exactly_what_is_left(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(10_000)]
    proxy.faults = Faults(latency_s=0.15)
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        started = time.monotonic()
        report = store.upsert("earnings", items, deadline=Deadline.after(2.0))
        elapsed = time.monotonic() - started
        proxy.faults = Faults()
        stored = {key_of(item) for item in _stored(store)}
    # In-flight requests (0.15 s each) finish and ~9,000 failures are dead-lettered after the deadline; the whole
    # load would take about 19 s at this latency, so this bound shows the run stopped (with slack for a busy machine).
    assert elapsed < 2.0 + 1.5, elapsed
    assert report.deadline_reached and not report.ok
    assert 0 < report.written < 10_000
    assert report.written + report.failed == 10_000
    failed = {(f.key["symbol"], f.key["fiscalPeriod"]) for f in report.failures}
    assert len(failed) == report.failed
    assert stored == {key_of(item) for item in items} - failed
    dead = [loads_plain(line) for line in (tmp_path / "dead-letters" / "earnings-run.jsonl").read_text().splitlines()]
    assert {key_of(d) for d in dead} == failed


def test_proxy_rejects_what_real_dynamodb_rejects(proxy: FaultProxy, tables: str) -> None:
    from botocore.exceptions import ClientError

    from pollen.adapters.dynamodb.client import make_client

    client = make_client("dynamodb", endpoint_url=proxy.endpoint)
    table = f"{tables}earnings"

    def put(i: int, **extra: Any) -> dict[str, Any]:
        item = {"symbol": {"S": f"S{i}"}, "fiscalPeriod": {"S": "A"}, **extra}
        return {"PutRequest": {"Item": item}}

    with pytest.raises(ClientError, match="less than or equal to 25"):
        client.batch_write_item(RequestItems={table: [put(i) for i in range(26)]})
    delete = {"DeleteRequest": {"Key": {"symbol": {"S": "S1"}, "fiscalPeriod": {"S": "A"}}}}
    with pytest.raises(ClientError, match="duplicates"):
        client.batch_write_item(RequestItems={table: [put(1), delete]})
    with pytest.raises(ClientError, match="maximum allowed size"):
        client.batch_write_item(RequestItems={table: [put(2, blob={"S": "x" * 410_000})]})
    with pytest.raises(ClientError, match="maximum allowed size"):
        client.put_item(TableName=table, Item=put(3, blob={"S": "x" * 410_000})["PutRequest"]["Item"])
    assert client.batch_write_item(RequestItems={table: [put(i) for i in range(25)]})["UnprocessedItems"] == {}
    assert (proxy.requests["BatchWriteItem"], proxy.requests["PutItem"]) == (4, 1)


def test_proxy_enforces_a_write_budget(proxy: FaultProxy, tables: str) -> None:
    from botocore.exceptions import ClientError

    from pollen.adapters.dynamodb.client import make_client

    proxy.faults = Faults(wcu_per_s=30, burst_s=1.0)
    client = make_client("dynamodb", endpoint_url=proxy.endpoint)
    table = f"{tables}earnings"
    batch = [{"PutRequest": {"Item": {"symbol": {"S": f"S{i}"}, "fiscalPeriod": {"S": "A"}}}} for i in range(25)]
    first = client.batch_write_item(RequestItems={table: batch})
    assert first["UnprocessedItems"] == {}
    second = client.batch_write_item(RequestItems={table: batch})
    assert len(second["UnprocessedItems"][table]) == 20  # 5 WCU left in the bucket
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        client.batch_write_item(RequestItems={table: batch})
