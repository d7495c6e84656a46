"""`pollen status` at 12,000 assets: wall time on the embedded stack and read units by DynamoDB's rules."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pollen import wiring
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.codec import item_size
from pollen.jobs.pollenate import AssetResult, PollenateReport, TableResult
from pollen.jobs.runs import RunLog, record_for, to_item
from pollen.jobs.scheduler import EARNINGS_LOOKBACK_DAYS
from pollen.jobs.status import CALENDAR_AHEAD_DAYS, CHART_DAYS
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import SyncEarningsCalendar
from pollen.local.simulator.market import START_DATE
from pollen.local.stack import EmbeddedStack
from pollen.observability import MemorySink, MetricsRecorder
from pollen.settings import Settings

MARKET = 12_000
#: Pollenate records a deployment writes per day (the hourly scheduler, 10 per run, one Lambda run per message).
POLLENATE_RUNS_PER_DAY = 240
#: DynamoDB charges an eventually consistent read 0.5 RCU per 4 KB, a Query or Scan by the bytes of the items it
#: reads (whole items, whatever the projection), rounded up per request.
RCU_BYTES = 4096


def units(sizes: list[int]) -> float:
    """Read units of one eventually consistent Query/Scan that reads these items (1 MB pages)."""
    total, pages, page = 0.0, [], 0
    for size in sizes:
        if page + size > 1_048_576:
            pages.append(page)
            page = 0
        page += size
    pages.append(page)
    for bytes_read in pages:
        total += 0.5 * max(1, math.ceil(bytes_read / RCU_BYTES))
    return total


def scan_sizes(client: Any, table: str) -> list[tuple[dict[str, Any], int]]:
    found: list[tuple[dict[str, Any], int]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        found += [(item, item_size(item)) for item in page["Items"]]
    return found


def plant_run_records(log: RunLog, now: dt.datetime) -> int:
    """Fourteen days of Lambda pollenate runs (one per message) plus the daily syncs, as a deployment has them."""
    items = []
    for day in range(CHART_DAYS):
        for n in range(POLLENATE_RUNS_PER_DAY):
            started = now - dt.timedelta(days=day, minutes=6 * n)
            report = PollenateReport(duration_s=4.2)
            report.add(
                AssetResult(
                    symbol=f"S{n}",
                    ok=True,
                    status="pollenated",
                    calls=5,
                    tables={t: TableResult(outcome="written", written=4) for t in ("earnings", "cashFlow")},
                )
            )
            record = record_for(report, started_at=started, ended_at=started, source="lambda", dead_letters_to="q")
            assert record is not None
            items.append(to_item(record, retention=log.retention))
    outcome = log.store.upsert("pollenControl", items)
    assert outcome.ok
    return len(items)


def main() -> str:
    clock = lambda: dt.datetime.combine(START_DATE, dt.time(12), dt.UTC)  # noqa: E731
    with (
        tempfile.TemporaryDirectory() as home,
        EmbeddedStack(home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}) as stack,
    ):
        env = stack.environment()
        settings = Settings(**env)  # type: ignore[arg-type]
        metrics = MetricsRecorder(MemorySink())
        store = wiring.build_store(settings, metrics)
        assets, fundamentals = wiring.build_sources(settings, metrics)
        log = wiring.build_run_log(settings, metrics, store, clock)
        started = clock()
        log.record(SyncAssets(store, assets, metrics=metrics, clock=clock).run(), started_at=started)
        log.record(
            SyncEarningsCalendar(store, fundamentals, metrics=metrics, clock=clock).run("12month"), started_at=started
        )
        planted = plant_run_records(log, clock())

        collector = wiring.build_status(settings, metrics, clock=clock, store=store)
        timings = []
        for _ in range(2):
            began = time.perf_counter()
            report = collector.collect(snapshot=False)
            timings.append(time.perf_counter() - began)

        # Read units by DynamoDB's rules, from the sizes of the whole items each of status's requests reads.
        client = make_client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
        prefix = settings.table_prefix
        asset_items = scan_sizes(client, f"{prefix}assets")
        calendar = scan_sizes(client, f"{prefix}earningsCalendar")
        control = scan_sizes(client, f"{prefix}pollenControl")
    today = clock().date()
    first, last = (today - dt.timedelta(days=EARNINGS_LOOKBACK_DAYS)), (today + dt.timedelta(days=CALENDAR_AHEAD_DAYS))
    by_month: dict[str, list[int]] = defaultdict(list)
    for item, size in calendar:
        by_month[item["earnings_month"]["S"]].append(size)
    window = [m for m in by_month if first.isoformat()[:7] <= m <= last.isoformat()[:7]]
    calendar_units = sum(units(by_month[m]) for m in window)
    probes = int(report.reads[1].split(", ")[-1].split()[0])
    by_job: dict[str, list[int]] = defaultdict(list)
    since = (clock() - dt.timedelta(days=CHART_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for item, size in control:
        if item["pk"]["S"].startswith("run#") and item["sk"]["S"] >= since:
            by_job[item["pk"]["S"]].append(size)
    jobs_queried = 10  # every recorded job and the status snapshots, one Query each
    control_units = sum(units(sizes) for sizes in by_job.values()) + 0.5 * (jobs_queried - len(by_job))
    asset_units = units([s for _, s in asset_items])
    total = asset_units + calendar_units + 0.5 * probes + control_units
    asset_bytes = sum(s for _, s in asset_items)
    window_items = sum(len(by_month[m]) for m in window)
    window_bytes = sum(sum(by_month[m]) for m in window)
    control_bytes = sum(sum(v) for v in by_job.values())
    return "\n".join(
        [
            "## pollen status: 12,000 assets, read units and time",
            "",
            f"Method: the simulator's full market ({MARKET:,} assets) and moto's server on this machine; SyncAssets, "
            "SyncEarningsCalendar with the 12month horizon (the largest calendar), and 14 days of run records as a "
            f"deployment writes them ({planted:,} pollenate runs, one per Lambda message, plus the syncs). "
            "`StatusCollector.collect` timed twice (no snapshot). Read units: the whole items each request reads, "
            "sized by DynamoDB's rules (`codec.item_size`), 0.5 RCU per 4 KB per eventually consistent request "
            "(1 MB pages), whatever the projection; DescribeTable and stream reads cost no read units.",
            "",
            "| read | items | bytes | read units |",
            "| --- | ---: | ---: | ---: |",
            f"| assets: Scan (projected) | {len(asset_items):,} | {asset_bytes:,} | {asset_units:,.1f} |",
            f"| earningsCalendar: Query per month, {len(window)} months | {window_items:,} | {window_bytes:,} | "
            f"{calendar_units:,.1f} |",
            f"| earningsCalendar: one-item probes for the range | {probes} | | {0.5 * probes:,.1f} |",
            f"| pollenControl: Query per job, 14 days | {sum(len(v) for v in by_job.values()):,} | {control_bytes:,} | "
            f"{control_units:,.1f} |",
            f"| **total** | | | **{total:,.0f}** (limit 2,000) |",
            "",
            f"Calendar: {len(calendar):,} items in all, {window_items:,} of them in the window read. "
            f"Time: {timings[0]:.1f} s, then {timings[1]:.1f} s (limit 30 s). Health: `{report.health_line}`.",
        ]
    )


if __name__ == "__main__":
    print(main())
