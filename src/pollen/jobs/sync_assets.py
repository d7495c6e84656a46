"""SyncAssets (seeds 004, 000): Alpaca's active assets into ``assets``, one item per symbol.

- A new symbol gets the sort key ``NEVER_POLLENATED``; an existing item keeps its sort key (the current items are
  read first), so the sync never moves an asset in the pollenation order.
- Items whose content is unchanged are not sent at all (and keep their ``lastSyncDate``); the store compares
  again on its side.
- A symbol listed more than once keeps the listing of the greatest :func:`pollen.domain.assets.listing_rank`
  (active, tradable, greatest ``id``): the feed's order never decides, so the same feed in another order writes
  nothing new.
- An asset stored as active and missing from Alpaca's active list is kept with ``status = "inactive"``. A feed
  that would deactivate more than half of the active assets is treated as a bad feed: nothing is deactivated.
- Writes go in chunks; when the deadline comes the run stops between chunks and reports what is left: the next
  run finds those items still different and completes the work.
- Afterwards the consistency check (``pollen.jobs.check``) repairs what it finds.

What it reads: ``assets`` once, by one strongly consistent parallel Scan projected onto :data:`STORED_ATTRIBUTES`
(the key, status, volume, what the check needs, and the store's content hash with ``lastSyncDate``), made while the
feed and the volumes are fetched (it needs neither: the two latencies overlap instead of adding up). That read
gives each symbol's sort key and volume, the active symbols (for deactivations), and the stored versions the upsert
compares with (``upsert(stored=...)``: nothing is read again by key). Strongly consistent because it decides what
is written: an eventually consistent Scan could miss a pollenation's sort-key move of the last second. The
consistency check runs on the same read with what the run wrote laid over it; only when some item was not written
(failed, invalid or stale) does it scan again. Whole items are read by key only for symbols being deactivated and
for the symbols the check finds defective.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from pydantic import Field

from pollen.deadline import Deadline
from pollen.domain.assets import AlpacaAsset, asset_item, listing_rank, parse_asset
from pollen.domain.values import is_valid_symbol, timestamp
from pollen.errors import AuthError, ConfigError, InvalidRecord, PollenError
from pollen.jobs.check import (
    ASSET_CHECK_ATTRIBUTES,
    ASSETS_LEASE,
    CheckReport,
    check_assets,
    scan_assets_for_check,
)
from pollen.jobs.common import Clock, chunks, fold, utc_now
from pollen.observability import MetricsRecorder
from pollen.ports import VERSION_ATTRIBUTES, AssetSource, Item, ItemStore
from pollen.report import JobReport, Stopwatch, note_lease
from pollen.tables import ASSETS, NEVER_POLLENATED

log = logging.getLogger(__name__)

JOB = "SyncAssets"
LEASE = ASSETS_LEASE
SORT_KEY = "lastPollenationDate"
#: Items per store call: small enough that a deadline is checked often, large enough to keep batches full.
WRITE_CHUNK = 500
#: A feed that would deactivate more than this share of the active assets is not trusted.
MAX_DEACTIVATED_SHARE = 0.5

Progress = Callable[[int, int], None]


#: What SyncAssets reads of every stored asset: for the sync, the check, and the upsert's comparison.
STORED_ATTRIBUTES = tuple(
    dict.fromkeys(("symbol", SORT_KEY, "status", "volume", *ASSET_CHECK_ATTRIBUTES, *VERSION_ATTRIBUTES))
)


class SyncAssetsReport(JobReport):
    job: str = "sync-assets"
    sync_time: str = ""
    fetched: int = 0
    new: int = 0
    deactivated: int = 0
    duplicates: int = 0
    volumes_known: int = 0
    complete: bool = True
    remaining: int = 0
    check: dict[str, Any] = Field(default_factory=dict)


class SyncAssets:
    def __init__(
        self,
        store: ItemStore,
        source: AssetSource,
        *,
        metrics: MetricsRecorder,
        clock: Clock = utc_now,
        progress: Progress | None = None,
        force_lease: bool = False,
    ) -> None:
        self.store = store
        #: Take the lease even from a live holder (the CLI's ``--force``).
        self.force_lease = force_lease
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self.progress = progress

    def run(self, deadline: Deadline | None = None) -> SyncAssetsReport:
        deadline = deadline or Deadline.never()
        watch = Stopwatch()
        report = SyncAssetsReport(sync_time=timestamp(self.clock()))
        # A short lease, renewed while the run lasts: a crash blocks the next run for one TTL at most.
        with self.store.lease(LEASE, force=self.force_lease) as lease, self.metrics.timer("SyncDuration", job=JOB):
            self._run(report, deadline)
        note_lease(report, lease)
        report.duration_s = watch.elapsed_s
        self.metrics.count("AssetsWritten", report.written, job=JOB)
        self.metrics.count("AssetsUnchanged", report.unchanged, job=JOB)
        self.metrics.count("AssetsInvalid", report.invalid, job=JOB)
        self.metrics.count("AssetsFailed", report.failed, job=JOB)
        self.metrics.count("AssetsDeactivated", report.deactivated, job=JOB)
        self.metrics.count("SyncIncomplete" if not report.complete else "SyncComplete", 1, job=JOB)
        log.info("sync assets finished", extra=report.model_dump(exclude={"errors", "check"}))
        return report

    def _run(self, report: SyncAssetsReport, deadline: Deadline) -> None:
        now_iso = report.sync_time
        # The read of what is stored does not depend on the feed: it runs while the feed and volumes are fetched.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-assets-read") as reader:
            stored_read = reader.submit(self._current_items)
            with self.metrics.timer("UpstreamDuration", job=JOB, call="active_assets"):
                raw_assets = self.source.active_assets()
            report.fetched = len(raw_assets)
            self.metrics.count("AssetsFetched", len(raw_assets), job=JOB)
            log.info("active assets fetched", extra={"count": len(raw_assets)})

            assets, seen_symbols = self._validate(raw_assets, report)
            volumes = self._volumes(list(assets), report)
            current = stored_read.result()

        desired: list[Item] = []
        for symbol, asset in assets.items():
            stored = current.get(symbol, [])
            keeper = max(stored, key=lambda i: str(i[SORT_KEY])) if stored else None
            volume = volumes.get(symbol)
            if volume is None:
                volume = keeper.get("volume", 0) if keeper is not None else 0
            item = asset_item(
                asset,
                volume=Decimal(volume),
                last_sync=now_iso,
                last_pollenation=str(keeper[SORT_KEY]) if keeper is not None else NEVER_POLLENATED,
            )
            if keeper is None:
                report.new += 1
            # Unchanged items are recognised by the store (content without lastSyncDate), which neither rewrites
            # them nor moves their lastSyncDate, and counts them.
            desired.append(item)
        desired += self._deactivations(current, seen_symbols, report, now_iso)

        all_settled = self._write(desired, current, report, deadline)
        if report.complete and not deadline.expired():
            self._check(report, now_iso, self._after_write(current, desired) if all_settled else None)
        elif report.complete:
            report.check = {"skipped": "deadline"}

    def _validate(self, raw_assets: list[Any], report: SyncAssetsReport) -> tuple[dict[str, AlpacaAsset], set[str]]:
        assets: dict[str, AlpacaAsset] = {}
        seen: set[str] = set()  # every plausible symbol in the feed, valid or not: none of them has vanished
        for raw in raw_assets:
            symbol = raw.get("symbol") if isinstance(raw, dict) else None
            if is_valid_symbol(symbol):
                seen.add(str(symbol))
            try:
                asset = parse_asset(raw)
            except InvalidRecord as exc:
                report.invalid += 1
                report.add_error(str(exc))
                log.warning("invalid asset skipped", extra={"error": str(exc)})
                continue
            kept = assets.get(asset.symbol)
            if kept is not None:
                report.duplicates += 1
                if listing_rank(kept) >= listing_rank(asset):
                    continue
            assets[asset.symbol] = asset
        return assets, seen

    def _volumes(self, symbols: list[str], report: SyncAssetsReport) -> dict[str, int]:
        if not symbols:
            return {}
        try:
            with self.metrics.timer("UpstreamDuration", job=JOB, call="daily_volumes"):
                volumes = self.source.daily_volumes(symbols)
        except (AuthError, ConfigError):
            raise
        except PollenError as exc:
            # Enrichment only: the assets are still written, keeping the volumes already stored.
            report.add_error(f"daily volumes unavailable, stored volumes kept: {exc}")
            self.metrics.count("VolumeEnrichmentFailed", 1, job=JOB)
            return {}
        known = {s: v for s, v in volumes.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
        report.volumes_known = len(known)
        return known

    def _current_items(self) -> dict[str, list[Item]]:
        """What is stored, per symbol, projected onto STORED_ATTRIBUTES: the run's only read of the whole table."""
        current: dict[str, list[Item]] = defaultdict(list)
        for item in self.store.scan(ASSETS.name, segments=4, attributes=STORED_ATTRIBUTES, consistent=True):
            current[str(item.get("symbol"))].append(item)
        return current

    @staticmethod
    def _after_write(current: dict[str, list[Item]], written: list[Item]) -> list[Item]:
        """The table as the check would scan it after a run in which every item was written or unchanged: the
        stored items with the written ones laid over them (by key)."""

        def key(item: Item) -> tuple[str, str]:
            return str(item["symbol"]), str(item[SORT_KEY])

        table = {key(i): i for items in current.values() for i in items}
        for item in written:
            table[key(item)] = {name: item[name] for name in ASSET_CHECK_ATTRIBUTES if name in item}
        return list(table.values())

    def _deactivations(
        self, current: dict[str, list[Item]], seen: set[str], report: SyncAssetsReport, now_iso: str
    ) -> list[Item]:
        active = {s for s, items in current.items() if any(i.get("status") == "active" for i in items)}
        vanished = sorted(active - seen)
        if not vanished:
            return []
        if not seen or len(vanished) > MAX_DEACTIVATED_SHARE * len(active):
            report.add_error(
                f"feed would deactivate {len(vanished)} of {len(active)} active assets; nothing deactivated"
            )
            report.ok = False
            return []
        keepers = [ASSETS.key_of(max(current[s], key=lambda i: str(i[SORT_KEY]))) for s in vanished]
        whole = self.store.batch_get(ASSETS.name, keepers)
        items = [
            {**item, "status": "inactive", "lastSyncDate": now_iso} for item in whole if item.get("status") == "active"
        ]
        report.deactivated = len(items)
        log.info("assets deactivated", extra={"count": len(items), "symbols": vanished[:20]})
        return items

    def _write(
        self, items: list[Item], current: dict[str, list[Item]], report: SyncAssetsReport, deadline: Deadline
    ) -> bool:
        """Upsert in chunks, each compared with the stored versions of its symbols as read; True when every item
        was written or found unchanged."""
        done = 0
        all_settled = True
        for chunk in chunks(items, WRITE_CHUNK):
            if deadline.expired():
                report.complete = False
                report.remaining = len(items) - done
                report.add_error(f"deadline reached: {report.remaining} assets left for the next run")
                log.warning("sync assets stopped at the deadline", extra={"remaining": report.remaining})
                self.metrics.count("DeadlineReached", 1, job=JOB)
                return False
            stored = [
                s for symbol in dict.fromkeys(str(i.get("symbol")) for i in chunk) for s in current.get(symbol, [])
            ]
            # The store names and dead-letters every item it does not write; what it raises ends the run.
            with self.metrics.timer("WriteDuration", job=JOB, table=ASSETS.name):
                outcome = self.store.upsert(ASSETS.name, chunk, deadline=deadline, stored=stored)
            fold(report, outcome, table=ASSETS.name)
            all_settled = all_settled and not (outcome.failed or outcome.invalid or outcome.stale)
            done += len(chunk)
            if self.progress is not None:
                self.progress(done, len(items))
        return all_settled

    def _check(self, report: SyncAssetsReport, now_iso: str, table: list[Item] | None) -> None:
        """The consistency check over ``table`` (this run's read and writes), or over a fresh Scan without it."""
        check = CheckReport(job="check", repair=True)
        try:
            items = table if table is not None else scan_assets_for_check(self.store)
            check_assets(self.store, items, check, repair=True, now_iso=now_iso)
        except PollenError as exc:
            report.add_error(f"consistency check failed: {exc}")
            report.check = {"error": str(exc)}
            return
        report.check = check.model_dump(
            include={"duplicate_symbols", "missing_attributes", "repaired", "unrepaired", "defects"}
        )
        self.metrics.count("ConsistencyDefects", check.duplicate_symbols + check.missing_attributes, job=JOB)
        self.metrics.count("ConsistencyChecked", check.assets_checked, job=JOB)
        self.metrics.count("ConsistencyRepaired", check.repaired, job=JOB)
        if check.unrepaired:
            report.add_error(f"consistency check: {check.unrepaired} defects left (pollen check shows them)")
