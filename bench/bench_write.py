"""Write engine: pollen's store vs boto3's batch_writer on the same 20,000 items, in one run.

Run with ``./dev bench bench_write``. Everything runs against a moto server in a child process (so its CPU is not the
client's): the speed part once on the embedded stack's server (moto's application behind waitress, keep-alive) and
once on ``python -m moto.server`` (werkzeug's development server, a connection per request); the budget part goes
through the fault proxy (in this process) with a WCU/s budget and no other fault.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from tests.support.faultproxy import FaultProxy, Faults

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.codec import encode_item, item_size
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.local.stack import MotoServer
from pollen.tables import EARNINGS

ITEMS = 20_000
BUDGET_WCU = 1_000.0
BURST_S = 1.0
ROUNDS = 3


def make_items(n: int = ITEMS) -> list[dict[str, Any]]:
    """Income-statement-like items of about 300 bytes (1 WCU each), numbers as exact decimals."""
    return [
        {
            "symbol": f"SYM{i // 8:05d}",
            "fiscalPeriod": f"QUARTERLY#20{10 + i % 8:02d}-12-31",
            "period": "quarterly",
            "fiscalDateEnding": f"20{10 + i % 8:02d}-12-31",
            "reportedCurrency": "USD",
            "totalRevenue": Decimal(1_000_000 + i * 37),
            "grossProfit": Decimal(400_000 + i * 11),
            "operatingIncome": Decimal(150_000 + i),
            "netIncome": Decimal(90_000 + i * 3),
            "reportedEPS": Decimal(i % 1000) / Decimal(100),
            "surprisePercentage": Decimal("-1.2345"),
            "ebitda": Decimal(200_000 + i * 7),
            "lastSyncDate": "2026-01-01T00:00:00Z",
        }
        for i in range(n)
    ]


def count_items(client: Any, table: str) -> int:
    total, start = 0, None
    while True:
        kwargs: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def run_batch_writer(endpoint: str, table: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The usual boto3 code: a resource Table's batch_writer; an exception ends the load (as in user code)."""
    resource = boto3.resource(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "legacy"}),
    )
    error = ""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        with resource.Table(table).batch_writer() as writer:
            for item in items:
                writer.put_item(Item=item)
    except Exception as exc:  # what a user's script would die of
        error = f"{type(exc).__name__}: {str(exc)[:80]}"
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu, "error": error}


def run_pollen(
    endpoint: str, prefix: str, items: list[dict[str, Any]], *, wcu_limit: float | None = None
) -> dict[str, Any]:
    store = DynamoStore(
        client_factory=wire_client_factory(region="us-east-1", endpoint_url=endpoint),
        table_prefix=prefix,
        concurrency=4,
        wcu_limit=wcu_limit,
    )
    started, cpu = time.perf_counter(), time.process_time()
    with store:
        report = store.upsert(EARNINGS.name, items)
    return {
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "error": "" if report.ok else "; ".join(report.error_lines(limit=2)),
        "failed": report.failed,
    }


class StockMotoServer(MotoServer):
    """``python -m moto.server`` as moto ships it (werkzeug's development server)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]


SERVERS: dict[str, type[MotoServer]] = {
    "embedded stack (moto behind waitress)": MotoServer,
    "`python -m moto.server` (werkzeug)": StockMotoServer,
}


def measure_speed(server: MotoServer, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    admin = make_client("dynamodb", endpoint_url=server.endpoint)
    speed: dict[str, list[dict[str, Any]]] = {"batch_writer": [], "pollen": []}
    runners: dict[str, Callable[[str], dict[str, Any]]] = {
        "batch_writer": lambda prefix: run_batch_writer(server.endpoint, prefix + EARNINGS.name, items),
        "pollen": lambda prefix: run_pollen(server.endpoint, prefix, items),
    }
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            prefix = _fresh(admin, "s")
            result = runner(prefix)
            result["stored"] = count_items(admin, prefix + EARNINGS.name)
            speed[name].append(result)
    return speed


def _fresh(admin: Any, tag: str) -> str:
    prefix = f"{tag}{time.monotonic_ns() % 10**9}-"
    ensure_tables(admin, prefix, (EARNINGS,))
    return prefix


def main() -> str:
    items = make_items()
    sizes = [item_size(encode_item(item)) for item in items]
    speeds: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for label, server_class in SERVERS.items():
        with server_class() as server:
            speeds[label] = measure_speed(server, items)
    with MotoServer() as moto:
        admin = make_client("dynamodb", endpoint_url=moto.endpoint)
        budget: dict[str, dict[str, Any]] = {}
        with FaultProxy(moto.endpoint, Faults(wcu_per_s=BUDGET_WCU, burst_s=BURST_S)) as proxy:
            cases: dict[str, Callable[[str], dict[str, Any]]] = {
                "batch_writer": lambda prefix: run_batch_writer(proxy.endpoint, prefix + EARNINGS.name, items),
                "pollen, POLLEN_WCU_LIMIT=1000": lambda prefix: run_pollen(
                    proxy.endpoint, prefix, items, wcu_limit=BUDGET_WCU
                ),
                "pollen, no limit set (adaptive only)": lambda prefix: run_pollen(proxy.endpoint, prefix, items),
            }
            for name, runner in cases.items():
                prefix = _fresh(admin, "g")
                time.sleep(BURST_S)  # let the budget's bucket fill, the same for everyone
                proxy.reset_counters()
                result = runner(prefix)
                result["stored"] = count_items(admin, prefix + EARNINGS.name)
                result["writes"] = proxy.requests["BatchWriteItem"]
                result["reads"] = proxy.requests["BatchGetItem"] + proxy.requests["Scan"]
                budget[name] = result
    return render(speeds, budget, sizes)


def render(
    speeds: dict[str, dict[str, list[dict[str, Any]]]], budget: dict[str, dict[str, Any]], sizes: list[int]
) -> str:
    def rate(result: dict[str, Any]) -> float:
        return ITEMS / result["wall"]

    def cpu_us(result: dict[str, Any]) -> float:
        return result["cpu"] / ITEMS * 1e6

    minimum = -(-ITEMS // 25)
    lines = [
        "## Write engine: pollen store vs boto3 batch_writer",
        "",
        f"{ITEMS:,} income-statement-like items ({min(sizes)}-{max(sizes)} bytes, 1 WCU each), loaded into fresh "
        f"tables, {ROUNDS} alternating rounds per client on each of two moto servers (a child process each), medians "
        "reported. pollen: `DynamoStore.upsert` (what `pollen load` runs) with 4 workers, read-diff-write (the table is "
        "empty, so the comparison read is one projected Scan that finds nothing; then BatchWriteItems of 25). "
        "batch_writer: `boto3.resource(...).Table(...).batch_writer()`, legacy retry mode (boto3's default). Client "
        "CPU is `time.process_time()` of this process around the load (moto's CPU is not included). moto's server is "
        "the bottleneck: on one core it parses and stores every item in Python, so pollen's parallel workers can only "
        "fill the time batch_writer leaves the server idle while it builds its next request. The machine's two cores "
        "are shared with other work, so ratios move by about 0.1 between runs.",
        "",
        "| moto server | client | items/s | client CPU µs/item | items stored |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    summary: list[str] = []
    for label, speed in speeds.items():
        for name, results in speed.items():
            lines.append(
                f"| {label} | {name} | {statistics.median(rate(r) for r in results):,.0f} | "
                f"{statistics.median(cpu_us(r) for r in results):,.0f} | {min(r['stored'] for r in results):,} |"
            )
        bw_rate = statistics.median(rate(r) for r in speed["batch_writer"])
        pl_rate = statistics.median(rate(r) for r in speed["pollen"])
        bw_cpu = statistics.median(cpu_us(r) for r in speed["batch_writer"])
        pl_cpu = statistics.median(cpu_us(r) for r in speed["pollen"])
        summary += [
            f"- {label}: throughput pollen / batch_writer **{pl_rate / bw_rate:.2f}x** (target >= 1.4x: "
            f"{'met' if pl_rate / bw_rate >= 1.4 else 'NOT met'}); CPU per item pollen / batch_writer "
            f"**{pl_cpu / bw_cpu:.2f}** (target <= 0.5: {'met' if pl_cpu / bw_cpu <= 0.5 else 'NOT met'})",
        ]
    lines += ["", *summary, ""]
    lines += [
        f"Against a budget of {BUDGET_WCU:,.0f} WCU/s enforced by the fault proxy (token bucket {BURST_S:g} s deep, "
        "started full; excess requests come back as UnprocessedItems, a batch of which nothing fits is throttled). "
        "Goodput = items stored / (budget x elapsed + the bucket's initial depth), i.e. the share of the capacity "
        f"that was available. Minimum BatchWriteItem requests: {minimum}.",
        "",
        "| client | elapsed s | goodput | items lost | BatchWriteItem requests (x minimum) | reads (BatchGetItem, Scan) | ended by |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in budget.items():
        available = BUDGET_WCU * r["wall"] + BUDGET_WCU * BURST_S
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['stored'] / available:.1%} | {ITEMS - r['stored']:,} | "
            f"{r['writes']:,} ({r['writes'] / minimum:.2f}x) | {r['reads']:,} | {r['error'] or 'completion'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
