# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""The write engine under injected faults (the issue's "Done when" scenarios), through the fault proxy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import read_dead_letter_file
from pollen.adapters.dynamodb import reader as reader_module
from pollen.adapters.dynamodb.codec import dumps_plain, loads_plain
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.deadline import Deadline
from pollen.observability import MetricsRecorder
from tests.clocks import ManualClock
from tests.integration.store_support import key_of, make_store, proxy, statement, store, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration


@pytest.fixture
def direct(endpoint: str, tables: str, tmp_path: Path) -> Iterator[DynamoStore]:
    """A store straight on the server (no proxy, the wire transport, eight workers), to read back what a test wrote:
    the check does not depend on the proxy or the transport under test, and costs less than reading through them."""
    with make_store(endpoint, tables, tmp_path / "direct", transport="wire", concurrency=8) as reader:
        yield reader


def _stored(store: DynamoStore) -> list[dict[str, Any]]:
    return list(store.scan("earnings", segments=4))


def _stored_by_key(store: DynamoStore, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The stored items of these keys, and how many items the table holds: moto's Scan walks the whole table for
    every page (a Scan of 50,000 items takes minutes), while reads by key and moto's live ItemCount are quick."""
    found = store.batch_get("earnings", [{"symbol": i["symbol"], "fiscalPeriod": i["fiscalPeriod"]} for i in items])
    table = store.client().describe_table(TableName=store.table_info("earnings").physical)["Table"]
    return found, int(table["ItemCount"])


@pytest.mark.timeout(900)  # 50,000 items through moto's one core: minutes when the machine is busy
def test_50000_items_under_heavy_faults_all_arrive_exactly_once(
    proxy: FaultProxy, tables: str, tmp_path: Path, direct: DynamoStore
) -> None:
    items = [statement(i) for i in range(50_000)]
    proxy.faults = Faults(unprocessed=0.30, throttle=0.05, server_error=0.02, reset=0.01, seed=7)
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics, concurrency=8) as store:
        report = store.upsert("earnings", items)
    stored, held = _stored_by_key(direct, items)
    assert report.ok, report.error_lines()[:5]
    # The counts add up: every input item is counted once, as written.
    assert (report.written, report.failed, report.invalid, report.unchanged) == (50_000, 0, 0, 0)
    assert (report.duplicates, report.stale, report.failures) == (0, 0, [])
    assert report.total == len(items)
    assert metrics.total("DynamoWriteSuccess") == 50_000 and metrics.total("DynamoWriteFailure") == 0
    counts = Counter(key_of(item) for item in stored)
    assert len(counts) == 50_000 and max(counts.values()) == 1 and held == 50_000
    assert sorted(stored, key=key_of) == items
    # Every kind of fault really happened, and the engine retried them.
    assert {"unprocessed", "throttle", "server_error", "reset"} <= set(proxy.injected)
    assert metrics.total("DynamoRetries") > 0 and metrics.total("DynamoThrottles") > 0


def test_three_permanent_failures_are_isolated_dead_lettered_and_replayable(
    proxy: FaultProxy, tables: str, tmp_path: Path, direct: DynamoStore
) -> None:
    items = [statement(i) for i in range(10_000)]
    poisoned = {17, 5_003, 9_998}
    for i in poisoned:
        items[i]["poison"] = "yes"
    proxy.faults = Faults(poison_attribute="poison")
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        report = store.upsert("earnings", items)
        assert (report.written, report.failed, report.invalid, report.ok) == (9_997, 3, 0, False)
        assert report.total == 10_000
        assert sorted(f.key["symbol"] for f in report.failures) == sorted(f"S{i:05d}" for i in poisoned)
        assert all("ValidationException" in f.reason and "poison" in f.reason for f in report.failures)
        assert len(report.error_lines()) == 3
        dead_file = tmp_path / "dead-letters" / "earnings-run.jsonl"
        header, dead = read_dead_letter_file(dead_file)
        assert header == ("put", "earnings")
        assert sorted(dead, key=key_of) == [items[i] for i in sorted(poisoned)]  # the whole items, exactly
        # The other 9,997 (the failing items' batch neighbours too) are written, with their content.
        assert sorted(_stored(direct), key=key_of) == [item for i, item in enumerate(items) if i not in poisoned]
        # Fix the file (drop the offending attribute) and replay it as is.
        fixed = tmp_path / "fixed.jsonl"
        fixed.write_text("".join(dumps_plain({k: v for k, v in d.items() if k != "poison"}) + "\n" for d in dead))
        replay = store.upsert("earnings", [loads_plain(line) for line in fixed.read_text().splitlines()])
        assert (replay.written, replay.failed, replay.ok) == (3, 0, True)
        expected = [{k: v for k, v in item.items() if k != "poison"} for item in items]
        assert sorted(_stored(direct), key=key_of) == expected


def test_reloading_the_same_items_issues_no_write(store: DynamoStore, proxy: FaultProxy) -> None:
    items = [statement(i) for i in range(10_000)]
    first = store.upsert("earnings", items)
    assert first.written == 10_000
    proxy.reset_counters()
    again = store.upsert("earnings", [dict(item) for item in items])
    assert (again.unchanged, again.written, again.ok) == (10_000, 0, True)
    assert proxy.write_requests() == 0
    # 10,000 small items: one projected Scan reads them for fewer units than 10,000 reads by key.
    assert proxy.requests["BatchGetItem"] == 0 and proxy.requests["Scan"] >= 1


#: The deadline of the test below, on a clock that counts the items the proxy has written.
DEADLINE_AT_ITEMS = 500


def test_at_the_deadline_no_new_write_starts_and_the_report_says_exactly_what_is_left(
    proxy: FaultProxy, tables: str, tmp_path: Path, direct: DynamoStore
) -> None:
    items = [statement(i) for i in range(3_000)]
    written_items = lambda: float(proxy.written_items)  # noqa: E731  (the deadline's clock: progress, not time)
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        report = store.upsert("earnings", items, deadline=Deadline.after(DEADLINE_AT_ITEMS, clock=written_items))
        concurrency = store.concurrency
    stored = {key_of(item) for item in _stored(direct)}
    # Once the deadline passed no batch started: only those already in flight (one per worker) were written.
    assert DEADLINE_AT_ITEMS <= report.written < DEADLINE_AT_ITEMS + concurrency * 25, report.written
    assert report.deadline_reached and not report.ok
    assert report.written + report.failed == 3_000
    failed = {(f.key["symbol"], f.key["fiscalPeriod"]) for f in report.failures}
    assert len(failed) == report.failed == len(report.failures)
    assert all("deadline" in f.reason for f in report.failures)
    assert stored == {key_of(item) for item in items} - failed
    _, dead = read_dead_letter_file(tmp_path / "dead-letters" / "earnings-run.jsonl")
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

    clock = ManualClock()
    proxy.clock = clock  # the bucket refills only when the test moves this clock, however slow the machine is
    proxy.faults = Faults(wcu_per_s=5, burst_s=6.0)  # 30 WCU deep, refilled at one unit per 200 ms
    client = make_client("dynamodb", endpoint_url=proxy.endpoint)
    table = f"{tables}earnings"
    batch = [{"PutRequest": {"Item": {"symbol": {"S": f"S{i}"}, "fiscalPeriod": {"S": "A"}}}} for i in range(25)]
    first = client.batch_write_item(RequestItems={table: batch})
    assert first["UnprocessedItems"] == {}
    second = client.batch_write_item(RequestItems={table: batch})
    assert len(second["UnprocessedItems"][table]) == 20  # 5 WCU left in the bucket
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        client.batch_write_item(RequestItems={table: batch})
    clock.advance(1.0)  # five units back
    third = client.batch_write_item(RequestItems={table: batch})
    assert len(third["UnprocessedItems"][table]) == 20


# --- reads through a failing index ---------------------------------------------------------------------------------

STATUS_INDEX = frozenset({"status-index"})


def _assets(n: int, *, ties: bool = False) -> list[dict[str, Any]]:
    """Assets, three in four active, with distinct volumes (the index's sort key), or with ``ties`` three each (their
    order within a tie is the index's own, so only a whole answer can be compared then)."""
    return [
        {
            "symbol": f"A{i:04d}",
            "lastPollenationDate": "1970-01-01T00:00:00Z",
            "status": "active" if i % 4 else "inactive",
            "volume": (i // 3 if ties else i) * 10,
        }
        for i in range(n)
    ]


QUERIES: list[dict[str, Any]] = [
    {"partition": ("status", "active"), "descending": True},
    {"partition": ("status", "active"), "descending": True, "limit": 7},
    {"partition": ("status", "inactive"), "sort_between": (300, 900)},
]


def _ask(store: DynamoStore, query: dict[str, Any]) -> list[dict[str, Any]]:
    return list(store.query("assets", index="status-index", **query))


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        (Faults(server_error=1.0, indexes=STATUS_INDEX), "unavailable"),
        (Faults(throttle=1.0, indexes=STATUS_INDEX), "throttled"),
        (Faults(reset=1.0, indexes=STATUS_INDEX), "unavailable"),
    ],
    ids=["500s", "throttled", "resets"],
)
def test_a_failing_index_is_retried_briefly_then_answered_by_a_scan(
    proxy: FaultProxy, tables: str, tmp_path: Path, faults: Faults, reason: str
) -> None:
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        store.upsert("assets", _assets(120))
        answers = [_ask(store, query) for query in QUERIES]
        assert [len(a) for a in answers] == [90, 7, 15]
        assert metrics.total("GsiFallback") == 0
        proxy.faults = faults
        proxy.reset_counters()
        assert [_ask(store, query) for query in QUERIES] == answers
        # Only the index fails: the table itself still answers a query on its own key.
        assert [a["symbol"] for a in store.query("assets", partition=("symbol", "A0005"))] == ["A0005"]
    # Each query: one try and 3 retries with backoff (a small budget: waits capped at 1 s), then one Scan. The lean
    # transport also sends a request once more, uncounted, when a kept-alive connection drops it before any answer
    # (what a server's idle close looks like): a reset can cost one extra Query per try on a reused connection.
    index_queries = proxy.requests["Query"] - 1  # less the base-table query, which is not faulted
    assert sum(proxy.injected.values()) == index_queries
    assert 3 * 4 <= index_queries <= (3 * 4 * 2 if faults.reset else 3 * 4)
    assert proxy.requests["Scan"] == 3
    assert metrics.total("DynamoRetries", operation="Query") == 3 * 3
    assert metrics.total("GsiQueryFailure", reason=reason) == 3
    assert metrics.total("GsiFallback", index="status-index") == 3
    if reason == "throttled":
        assert metrics.total("DynamoThrottles", operation="Query") == 3 * 4


def test_a_transient_index_error_is_retried_without_a_fallback(proxy: FaultProxy, tables: str, tmp_path: Path) -> None:
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        store.upsert("assets", _assets(40))
        answer = _ask(store, QUERIES[0])
        proxy.faults = Faults(server_error=0.5, indexes=STATUS_INDEX, seed=1)  # seed 1: the first try fails
        proxy.reset_counters()
        assert _ask(store, QUERIES[0]) == answer
    assert (proxy.requests["Query"], proxy.injected["server_error"], proxy.requests["Scan"]) == (2, 1, 0)
    assert metrics.total("DynamoRetries", operation="Query") == 1
    assert metrics.total("GsiQueryFailure") == metrics.total("GsiFallback") == 0


def test_an_index_failing_between_pages_does_not_repeat_or_lose_items(
    proxy: FaultProxy, tables: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "QUERY_PAGE_ITEMS", 50)
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        store.upsert("assets", _assets(200, ties=True))  # 150 active: three pages of 50
        query = {"partition": ("status", "active"), "descending": True, "limit": 1_000}
        answer = _ask(store, query)
        assert len(answer) == 150 and metrics.total("GsiFallback") == 0
        proxy.reset_counters()
        pages = store.query("assets", index="status-index", **query)
        got = [next(pages)]  # the first page is read
        # Meanwhile another writer adds an item that sorts first; then the index fails.
        newcomer = dict(_assets(1)[0], symbol="NEW", status="active", volume=10**6)
        store.upsert("assets", [newcomer])
        proxy.faults = Faults(server_error=1.0, indexes=STATUS_INDEX)
        got += list(pages)
    assert (proxy.requests["Query"], proxy.requests["Scan"]) == (1 + 4, 1)
    assert metrics.total("GsiFallback") == 1
    # The first page as the index gave it, then the Scan's answer without the items already given: nothing is
    # repeated or lost (skipping by count instead would repeat one item and lose the newcomer).
    assert got == [*answer[:50], newcomer, *answer[50:]]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        # What real DynamoDB answers (moto does not): the index exists but is still being built.
        (("ValidationException", "Cannot read from backfilling global secondary index: status-index"), "backfilling"),
        (("ValidationException", "The table does not have the specified index: status-index"), "missing"),
    ],
    ids=["backfilling", "missing"],
)
def test_an_index_that_cannot_serve_reads_is_answered_by_a_scan_at_once(
    proxy: FaultProxy, tables: str, tmp_path: Path, error: tuple[str, str], reason: str
) -> None:
    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        store.upsert("assets", _assets(40))
        answer = _ask(store, QUERIES[1])
        proxy.faults = Faults(error=error, indexes=STATUS_INDEX)
        proxy.reset_counters()
        assert _ask(store, QUERIES[1]) == answer
    assert (proxy.requests["Query"], proxy.requests["Scan"]) == (1, 1)  # a permanent answer: no retry
    assert metrics.total("GsiQueryFailure", reason=reason) == metrics.total("GsiFallback") == 1


@pytest.mark.parametrize(
    "error",
    [
        ("ValidationException", "One or more parameter values were invalid: Condition parameter type does not match"),
        ("AccessDeniedException", "User is not authorized to perform: dynamodb:Query on resource: .../index/x"),
    ],
    ids=["bad-value", "access-denied"],
)
def test_errors_not_about_the_index_are_raised_not_hidden_by_a_fallback(
    proxy: FaultProxy, tables: str, tmp_path: Path, error: tuple[str, str]
) -> None:
    from pollen.errors import NotFound, PermanentError

    metrics = MetricsRecorder()
    with make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store:
        store.upsert("assets", _assets(12))
        proxy.faults = Faults(error=error, indexes=STATUS_INDEX)
        with pytest.raises(PermanentError, match=error[0]):
            _ask(store, QUERIES[0])
        proxy.faults = Faults()
    with (
        make_store(proxy.endpoint, "no-such-prefix-", tmp_path, metrics=metrics) as missing,
        pytest.raises(NotFound, match="ResourceNotFound"),  # no table at all: a Scan would not help
    ):
        list(missing.query("assets", partition=("status", "active"), index="status-index"))
    assert metrics.total("GsiFallback") == metrics.total("GsiQueryFailure") == 0
    assert proxy.requests["Scan"] == 0
    assert proxy.requests["Query"] == 2  # and none was retried
