"""SyncAssets on the full simulated market (12,000 assets) against the raw write time of the same items, and the
read units of a no-op daily cycle (sync assets, sync earnings, the scheduler) by DynamoDB's rules.

Run against another source tree (e.g. ``PYTHONPATH=/tmp/old/src python -m bench bench_sync_assets``) to measure an
older version the same way: it uses only pollen's public entry points and records at the client."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pollen import wiring
from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.jobs.scheduler import Scheduler
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import SyncEarningsCalendar
from pollen.local.simulator.market import START_DATE
from pollen.local.stack import EmbeddedStack
from pollen.observability import MemorySink, MetricsRecorder
from pollen.settings import Settings
from pollen.tables import ASSETS, EARNINGS_CALENDAR

MARKET = 12_000
RCU_BYTES = 4096
READS = {"scan", "query", "batch_get_item", "get_item"}


class ReadLog:
    """Every read call: operation, table, whether strongly consistent, and the keys of each page's items."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pages: list[tuple[str, str, bool, list[tuple[str, ...]]]] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.key_names: dict[str, tuple[str, ...]] = {}

    def record(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        if operation not in READS:
            return
        if operation == "batch_get_item":
            for table, request in params.get("RequestItems", {}).items():
                items = response.get("Responses", {}).get(table, [])
                self._page(operation, table, bool(request.get("ConsistentRead")), items)
            return
        table = params["TableName"]
        items = response.get("Items", []) if operation != "get_item" else [response.get("Item")] * ("Item" in response)
        self._page(operation, table, bool(params.get("ConsistentRead")), items)

    def _page(self, operation: str, table: str, consistent: bool, items: list[dict[str, Any]]) -> None:
        names = self.key_names.get(table.split("-", 1)[-1], ())
        keys = [codec.key_signature(i, names) for i in items if all(n in i for n in names)]
        with self.lock:
            self.calls[(operation, table)] += 1
            self.pages.append((operation, table, consistent, keys))

    def clear(self) -> None:
        with self.lock:
            self.pages.clear()
            self.calls.clear()

    def read_units(self, sizes: dict[str, dict[tuple[str, ...], int]]) -> dict[str, float]:
        """Read units per table: items by key round up to 4 KB each; a Scan or Query page rounds up the sum of the
        (whole, not projected) item sizes it read; eventually consistent reads cost half."""
        units: dict[str, float] = defaultdict(float)
        for operation, table, consistent, keys in self.pages:
            table_sizes = sizes.get(table, {})
            mean = sum(table_sizes.values()) / len(table_sizes) if table_sizes else 0
            item_sizes = [table_sizes.get(k, mean) for k in keys]
            factor = 1.0 if consistent else 0.5
            if operation in ("batch_get_item", "get_item"):
                units[table] += factor * sum(math.ceil(s / RCU_BYTES) for s in item_sizes)
            else:
                units[table] += factor * max(1, math.ceil(sum(item_sizes) / RCU_BYTES))
        return dict(units)


class Recording:
    def __init__(self, inner: Any, log: ReadLog) -> None:
        self.inner, self.log = inner, log

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in READS:
            return attribute

        def call(**params: Any) -> Any:
            response = attribute(**params)
            self.log.record(name, params, response)
            return response

        return call


def table_sizes(client: Any, tables: dict[str, tuple[str, ...]]) -> dict[str, dict[tuple[str, ...], int]]:
    """Each item's size by DynamoDB's rules, from a full Scan of each table."""
    sizes: dict[str, dict[tuple[str, ...], int]] = {}
    for table, names in tables.items():
        found: dict[tuple[str, ...], int] = {}
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                found[codec.key_signature(item, names)] = codec.item_size(item)
        sizes[table] = found
    return sizes


def main() -> str:
    with (
        tempfile.TemporaryDirectory() as home,
        EmbeddedStack(
            home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}, create_tables=False
        ) as stack,
    ):
        env = stack.environment()
        endpoint = env["AWS_ENDPOINT_URL_DYNAMODB"]
        client = make_client("dynamodb", endpoint_url=endpoint)
        ensure_tables(client, "sync-")
        ensure_tables(client, "raw-", [ASSETS])
        metrics = MetricsRecorder(MemorySink())
        settings = Settings(**{**env, "POLLEN_TABLE_PREFIX": "sync-"})  # type: ignore[arg-type]
        reads = ReadLog()
        reads.key_names = {ASSETS.name: ASSETS.key_names, EARNINGS_CALENDAR.name: EARNINGS_CALENDAR.key_names}
        inner: Callable[[], Any] = wire_client_factory(region=settings.region, endpoint_url=endpoint)
        store = wiring.build_store(settings, metrics, client_factory=lambda: Recording(inner(), reads))
        assets, fundamentals = wiring.build_sources(settings, metrics)
        clock = lambda: dt.datetime.combine(START_DATE, dt.time(12), dt.UTC)  # noqa: E731

        # The simulator builds a market day's listing and snapshots on their first request, as Alpaca serves them
        # from its own caches: asked for once first, so that the timed runs measure pollen, not the stand-in's start.
        listed = assets.active_assets()
        assets.daily_volumes([str(asset["symbol"]) for asset in listed])
        started = time.perf_counter()
        first = SyncAssets(store, assets, metrics=metrics, clock=clock).run()
        sync_s = time.perf_counter() - started
        first_reads = Counter(reads.calls)
        reads.clear()
        started = time.perf_counter()
        second = SyncAssets(store, assets, metrics=metrics, clock=clock).run()
        resync_s = time.perf_counter() - started
        resync_calls = Counter(reads.calls)

        items = list(store.scan("assets"))
        raw_store = wiring.build_store(Settings(**{**env, "POLLEN_TABLE_PREFIX": "raw-"}), metrics)  # type: ignore[arg-type]
        started = time.perf_counter()
        raw = raw_store.upsert("assets", items, compare=False)  # type: ignore[call-arg]
        raw_s = time.perf_counter() - started

        # The no-op daily cycle: the calendar synced once, then each job again on the same day.
        earnings = SyncEarningsCalendar(store, fundamentals, metrics=metrics, clock=clock).run("3month")
        reads.clear()
        cycle: dict[str, list[tuple[str, str, bool, list[tuple[str, ...]]]]] = {}
        cycle_s: dict[str, float] = {}
        jobs: dict[str, Callable[[], Any]] = {
            "SyncAssets": SyncAssets(store, assets, metrics=metrics, clock=clock).run,
            "SyncEarningsCalendar": lambda: SyncEarningsCalendar(store, fundamentals, metrics=metrics, clock=clock).run(
                "3month"
            ),
            "Scheduler (next 10)": lambda: Scheduler(store, metrics=metrics, clock=clock).next_due(10),
        }
        for name, job in jobs.items():
            started = time.perf_counter()
            job()
            cycle_s[name] = time.perf_counter() - started
            cycle[name] = list(reads.pages)
            reads.clear()
        physical = {
            f"sync-{ASSETS.name}": ASSETS.key_names,
            f"sync-{EARNINGS_CALENDAR.name}": EARNINGS_CALENDAR.key_names,
        }
        sizes = table_sizes(client, physical)

    assert first.ok and second.ok and raw.ok and earnings.ok
    mean_asset = sum(sizes["sync-assets"].values()) / max(1, len(sizes["sync-assets"]))
    lines = [
        "## SyncAssets: 12,000-asset market against the raw write of the same items",
        "",
        f"Method: the simulator's default market ({MARKET:,} assets, {first.fetched:,} active) and moto's server, "
        "each in a child process, on this machine. SyncAssets runs end to end (fetch the active assets, daily "
        "volumes in batches of 200 symbols, the read of what is stored, the upsert, the consistency check), then "
        "again on the same simulated day (nothing changed). The raw write is the store's upsert of the same final "
        "items into an empty table with the comparison read switched off (`compare=False`): the least any sync of "
        "these items can cost against this server. Read calls are recorded at the client. The simulator is asked "
        "for the day's listing and snapshots once before the first run (it builds them on their first request; "
        "Alpaca serves them from its caches).",
        "",
        "| run | seconds | items written | items/s | read calls on assets |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| raw write of the same items | {raw_s:.1f} | {raw.written:,} | {raw.written / raw_s:,.0f} | - |",
        f"| SyncAssets, first run | {sync_s:.1f} | {first.written:,} | {first.written / sync_s:,.0f} | "
        f"{_calls(first_reads, 'sync-assets')} |",
        f"| SyncAssets, same day again | {resync_s:.1f} | {second.written:,} | - | {_calls(resync_calls, 'sync-assets')} |",
        "",
        f"- first run / raw write: **{sync_s / raw_s:.2f}x**",
        f"- unchanged re-sync / raw write: **{resync_s / raw_s:.2f}x**, writing nothing ({second.unchanged:,} unchanged)",
        "",
        "### Read units of a no-op daily cycle",
        "",
        f"Each job run again on the same simulated day after a first run ({len(sizes['sync-assets']):,} asset items, "
        f"mean {mean_asset:.0f} bytes; {len(sizes['sync-earningsCalendar']):,} calendar items). Read units by "
        "DynamoDB's rules from the recorded pages and each item's size in the table: by key, 4 KB per item rounded "
        "up; Scan and Query pages, the sum of the whole items read (a projection does not lower it) rounded up to "
        "4 KB; eventually consistent reads half. Consistency as the calls asked for it.",
        "",
        "| job | seconds | read calls | read units |",
        "| --- | ---: | --- | ---: |",
    ]
    total = 0.0
    for name, pages in cycle.items():
        log = ReadLog()
        log.pages = pages
        units = sum(log.read_units(sizes).values())
        total += units
        calls = Counter((p[0], p[1]) for p in pages)
        lines.append(f"| {name} | {cycle_s[name]:.1f} | {_calls(calls)} | {units:,.0f} |")
    lines += [f"| **no-op daily cycle** | {sum(cycle_s.values()):.1f} | | **{total:,.0f}** |", ""]
    return "\n".join(lines)


def _calls(calls: Counter[tuple[str, str]], table: str | None = None) -> str:
    shown = sorted((op, t, n) for (op, t), n in calls.items() if table is None or t == table)
    return ", ".join(f"{op} {t.removeprefix('sync-')} x{n}" for op, t, n in shown) or "none"
