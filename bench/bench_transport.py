"""DynamoDB transport: the store on the lean wire client against the same store on boto3's client, in one run.

Run with ``./dev bench bench_transport``. The store (``DynamoStore.upsert``, what ``pollen load`` runs) is the same in
both cases; only the per-worker client differs (``build_store(..., transport="wire" | "boto3")`` makes the same
choice). The moto server runs in a child process, so its CPU is not the client's.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.bench_write import count_items, make_items
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.local.stack import MotoServer
from pollen.tables import EARNINGS

ITEMS = 3_000
ROUNDS = 2
CONCURRENCY = 4
TRANSPORTS = ("wire", "boto3")


def _store(endpoint: str, prefix: str, transport: str) -> DynamoStore:
    if transport == "wire":
        factory: Any = wire_client_factory(region="us-east-1", endpoint_url=endpoint)
    else:
        factory = lambda: make_client(  # noqa: E731
            "dynamodb", region="us-east-1", endpoint_url=endpoint, max_pool_connections=2 * CONCURRENCY
        )
    return DynamoStore(client_factory=factory, table_prefix=prefix, concurrency=CONCURRENCY)


def _timed(store: DynamoStore, items: list[dict[str, Any]]) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    report = store.upsert(EARNINGS.name, items)
    return {
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "written": report.written,
        "unchanged": report.unchanged,
        "failed": report.failed,
    }


def measure(endpoint: str, items: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per transport: a load into an empty table (Scan for the comparison, then BatchWriteItems) and a reload of
    the same items (every item unchanged: the comparison read only), rounds alternating between transports."""
    admin = make_client("dynamodb", endpoint_url=endpoint)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {t: {"load": [], "reload": []} for t in TRANSPORTS}
    for _ in range(ROUNDS):
        for transport in TRANSPORTS:
            prefix = f"x{time.monotonic_ns() % 10**9}-"
            ensure_tables(admin, prefix, (EARNINGS,))
            with _store(endpoint, prefix, transport) as store:
                store.get(EARNINGS.name, {"symbol": "warm", "fiscalPeriod": "up"})  # connections, not in the figures
                load = _timed(store, items)
                reload = _timed(store, items)
            load["stored"] = count_items(admin, prefix + EARNINGS.name)
            results[transport]["load"].append(load)
            results[transport]["reload"].append(reload)
    return results


def main() -> str:
    items = make_items(ITEMS)
    load_before = os.getloadavg()[0]
    with MotoServer() as server:
        results = measure(server.endpoint, items)
    return render(results, (load_before, os.getloadavg()[0]))


def render(results: dict[str, dict[str, list[dict[str, Any]]]], load: tuple[float, float]) -> str:
    def median(transport: str, phase: str, key: str) -> float:
        return statistics.median(r[key] for r in results[transport][phase])

    lines = [
        "## DynamoDB transport: lean wire client vs boto3 client",
        "",
        f"The same store (`DynamoStore.upsert`, {CONCURRENCY} workers, one client each) on the embedded stack's moto "
        f"server, {ITEMS:,} items of about 240 bytes, {ROUNDS} alternating rounds per transport, medians reported. "
        "*load*: into an empty table (a projected Scan for the comparison, then BatchWriteItems of 25); *reload*: the "
        "same items again, all unchanged (BatchGetItems of 100 keys for the comparison, nothing written). Client CPU "
        "is `time.process_time()` of this process around the upsert (moto's CPU, in its own process, is not "
        "included). The store produces DynamoDB's wire JSON itself; boto3's client validates and serializes it "
        "again through its service model and parses every response the same way, which is the CPU the lean client "
        "saves. moto on one core is the bottleneck for throughput; the shared two-core machine moves ratios by "
        f"about 0.1 between runs; the 1-minute load average was {load[0]:.1f} at the start of this run and "
        f"{load[1]:.1f} at its end (on {os.cpu_count()} cores), so read the CPU ratios rather than the items/s.",
        "",
        "| phase | transport | items/s | client CPU µs/item | items stored / unchanged |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for phase, count_key in (("load", "stored"), ("reload", "unchanged")):
        for transport in TRANSPORTS:
            wall = median(transport, phase, "wall")
            cpu_us = median(transport, phase, "cpu") / ITEMS * 1e6
            counted = int(median(transport, phase, count_key))
            lines.append(f"| {phase} | {transport} | {ITEMS / wall:,.0f} | {cpu_us:,.0f} | {counted:,} |")
    lines.append("")
    for phase in ("load", "reload"):
        speed = median("boto3", phase, "wall") / median("wire", phase, "wall")
        cpu = median("wire", phase, "cpu") / median("boto3", phase, "cpu")
        lines.append(
            f"- {phase}: throughput wire / boto3 **{speed:.2f}x**; client CPU per item wire / boto3 **{cpu:.2f}**"
        )
    lines += [
        "",
        "`build_store` uses the lean client wherever it connects exactly as boto3 would (botocore's endpoint, region "
        "and CA bundle) and boto3's client where boto3 would use a proxy or a client certificate; the store's "
        "integration tests run on both.",
    ]
    return "\n".join(lines) + "\n"
