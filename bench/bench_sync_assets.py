"""SyncAssets on the full simulated market (12,000 assets) against the raw write time of the same items."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from pollen import wiring
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.jobs.sync_assets import SyncAssets
from pollen.local.simulator.market import START_DATE
from pollen.local.stack import EmbeddedStack
from pollen.observability import MemorySink, MetricsRecorder
from pollen.settings import Settings
from pollen.tables import ASSETS

MARKET = 12_000


def main() -> str:
    with (
        tempfile.TemporaryDirectory() as home,
        EmbeddedStack(
            home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}, create_tables=False
        ) as stack,
    ):
        env = stack.environment()
        client = make_client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
        ensure_tables(client, "sync-")
        ensure_tables(client, "raw-", [ASSETS])
        metrics = MetricsRecorder(MemorySink())
        settings = Settings(**{**env, "POLLEN_TABLE_PREFIX": "sync-"})  # type: ignore[arg-type]
        store = wiring.build_store(settings, metrics)
        assets, _ = wiring.build_sources(settings, metrics)
        clock = lambda: dt.datetime.combine(START_DATE, dt.time(12), dt.UTC)  # noqa: E731

        started = time.perf_counter()
        first = SyncAssets(store, assets, metrics=metrics, clock=clock).run()
        sync_s = time.perf_counter() - started
        started = time.perf_counter()
        second = SyncAssets(store, assets, metrics=metrics, clock=clock).run()
        resync_s = time.perf_counter() - started

        items = list(store.scan("assets"))
        raw_store = wiring.build_store(Settings(**{**env, "POLLEN_TABLE_PREFIX": "raw-"}), metrics)  # type: ignore[arg-type]
        started = time.perf_counter()
        raw = raw_store.upsert("assets", items, compare=False)  # type: ignore[call-arg]
        raw_s = time.perf_counter() - started

    assert first.ok and second.ok and raw.ok
    return "\n".join(
        [
            "## SyncAssets: 12,000-asset market against the raw write of the same items",
            "",
            f"Method: the simulator's default market ({MARKET:,} assets, {first.fetched:,} active) and moto's server, "
            "each in a child process, on this machine. SyncAssets runs end to end (fetch the active assets, daily "
            "volumes in batches of 200 symbols, a projected Scan of what is stored, the upsert, the consistency "
            "check on a projected Scan), then again on the same simulated day (nothing changed). The raw write is "
            "the store's upsert of the same final items into an empty table with the comparison read switched "
            "off (`compare=False`): the least any sync of these items can cost against this server.",
            "",
            "| run | seconds | items written | items/s |",
            "| --- | ---: | ---: | ---: |",
            f"| raw write of the same items | {raw_s:.1f} | {raw.written:,} | {raw.written / raw_s:,.0f} |",
            f"| SyncAssets, first run | {sync_s:.1f} | {first.written:,} | {first.written / sync_s:,.0f} |",
            f"| SyncAssets, same day again | {resync_s:.1f} | {second.written:,} | - |",
            "",
            f"- first run / raw write: **{sync_s / raw_s:.2f}x** (the rest is fetching, validation, volumes and the "
            "check)",
            f"- unchanged re-sync / raw write: **{resync_s / raw_s:.2f}x**, writing nothing "
            f"({second.unchanged:,} unchanged)",
            "",
        ]
    )
