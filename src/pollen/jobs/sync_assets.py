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
- Writes go in chunks, a few in flight at once; when the deadline comes no further chunk starts, the run reports
  what is left, and the next run finds those items still different and completes the work.
- Afterwards the consistency check (``pollen.jobs.check``) repairs what it finds.
- It holds the ``sync-assets`` lease from before its Scan until its last write. A pollenation's sort-key move is
  conditional on that lease being free (``move_sort_key(..., unless_leased=...)``), so no move commits while the
  sync runs: every move is either in its Scan or comes after its writes, and a write at the sort key it read never
  recreates a moved asset's old key (no second item per symbol). A lost lease (the report says so) lifts that.

What it reads: ``assets`` once, by one strongly consistent parallel Scan projected onto :data:`STORED_ATTRIBUTES`
(the key, status, volume, what the check needs, and the store's content hash with ``lastSyncDate``), made while the
feed and the volumes are fetched (it needs neither: the latencies overlap instead of adding up; the volumes of the
feed's plausible symbols are in turn fetched while the feed is validated). That read gives each symbol's sort key
and volume, the active symbols (for deactivations), and the stored versions the upsert compares with
(``upsert(stored=...)``: nothing is read again by key). Strongly consistent because it decides what is written: an
eventually consistent Scan could miss a pollenation's sort-key move of the last second. The consistency check runs
on the same read with what the run wrote laid over it; only when some item was not written (failed, invalid or
stale) does it scan again. Whole items are read by key only for symbols being deactivated and for the symbols the
check finds defective.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
from pollen.ports import VERSION_ATTRIBUTES, AssetSource, Item, ItemStore, WriteOutcome
from pollen.report import JobReport, Stopwatch, note_lease
from pollen.tables import ASSETS, NEVER_POLLENATED

log = logging.getLogger(__name__)

JOB = "SyncAssets"
LEASE = ASSETS_LEASE
SORT_KEY = "lastPollenationDate"
#: Items per store call: small enough that a deadline is checked often, large enough to keep batches full.
WRITE_CHUNK = 500
#: Chunks being written at once: the client encodes and hashes one while DynamoDB stores another (one at a time,
#: each side waited for the other).
WRITES_IN_FLIGHT = 4
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
        # The read of what is stored does not depend on the feed: it runs while the feed and volumes are fetched;
        # the volumes only need the feed's symbols: they are fetched while the feed is validated.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-assets-read") as reader:
            stored_read = reader.submit(self._current_items)
            with self.metrics.timer("UpstreamDuration", job=JOB, call="active_assets"):
                raw_assets = self.source.active_assets()
            report.fetched = len(raw_assets)
            self.metrics.count("AssetsFetched", len(raw_assets), job=JOB)
            log.info("active assets fetched", extra={"count": len(raw_assets)})

            symbols = _plausible_symbols(raw_assets)
            volumes_read = reader.submit(self._volumes, symbols)
            assets = self._validate(raw_assets, report)
            volumes, volumes_error = volumes_read.result()
            # While the Scan still runs: each listing's item as if new, finished below with what is stored.
            drafts = [
                asset_item(
                    asset,
                    volume=Decimal(volumes.get(symbol, 0)),
                    last_sync=now_iso,
                    last_pollenation=NEVER_POLLENATED,
                )
                for symbol, asset in assets.items()
            ]
            current = stored_read.result()
        if volumes_error is not None:
            report.add_error(volumes_error)
        report.volumes_known = sum(1 for symbol in assets if symbol in volumes)

        desired = [self._desired(draft, current.get(draft["symbol"], []), volumes, report) for draft in drafts]
        desired += self._deactivations(current, set(symbols), report, now_iso)

        all_settled = self._write(desired, current, report, deadline)
        if report.complete and not deadline.expired():
            self._check(report, now_iso, self._after_write(current, desired) if all_settled else None)
        elif report.complete:
            report.check = {"skipped": "deadline"}

    @staticmethod
    def _desired(draft: Item, stored: list[Item], volumes: dict[str, int], report: SyncAssetsReport) -> Item:
        """A listing's item finished with what is stored: a known symbol keeps its sort key (a new one has
        NEVER_POLLENATED) and, without a volume today, its stored volume (a new one: 0). Unchanged items are
        recognised by the store (content without lastSyncDate), which neither rewrites them nor moves their
        lastSyncDate, and counts them."""
        if not stored:
            report.new += 1
            return draft
        keeper = max(stored, key=lambda i: str(i[SORT_KEY]))
        draft[SORT_KEY] = str(keeper[SORT_KEY])
        if draft["symbol"] not in volumes:
            draft["volume"] = Decimal(keeper.get("volume", 0))
        return draft

    def _validate(self, raw_assets: list[Any], report: SyncAssetsReport) -> dict[str, AlpacaAsset]:
        assets: dict[str, AlpacaAsset] = {}
        for raw in raw_assets:
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
        return assets

    def _volumes(self, symbols: list[str]) -> tuple[dict[str, int], str | None]:
        """The day's volumes, or none and why (run in a thread of its own: the report is the caller's to fill)."""
        if not symbols:
            return {}, None
        try:
            with self.metrics.timer("UpstreamDuration", job=JOB, call="daily_volumes"):
                volumes = self.source.daily_volumes(symbols)
        except (AuthError, ConfigError):
            raise
        except PollenError as exc:
            # Enrichment only: the assets are still written, keeping the volumes already stored.
            self.metrics.count("VolumeEnrichmentFailed", 1, job=JOB)
            return {}, f"daily volumes unavailable, stored volumes kept: {exc}"
        known = {s: v for s, v in volumes.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
        return known, None

    def _current_items(self) -> dict[str, list[Item]]:
        """What is stored, per symbol, projected onto STORED_ATTRIBUTES: the run's only read of the whole table."""
        current: dict[str, list[Item]] = defaultdict(list)
        for item in self.store.scan(ASSETS.name, segments=4, attributes=STORED_ATTRIBUTES, consistent=True):
            current[str(item.get("symbol"))].append(item)
        return current

    @staticmethod
    def _after_write(current: dict[str, list[Item]], written: list[Item]) -> list[Item]:
        """The table as the check would scan it after a run in which every item was written or unchanged: the
        stored items with the written ones laid over them (by key; whole, they hold every attribute the check looks
        at, and the check re-reads a defective symbol's items whole before it repairs anything)."""
        table = {(i["symbol"], i[SORT_KEY]): i for items in current.values() for i in items}
        table.update(((i["symbol"], i[SORT_KEY]), i) for i in written)
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
        """Upsert in chunks, up to WRITES_IN_FLIGHT at once, each compared with the stored versions of its symbols
        as read; outcomes are counted in the chunks' order. The items whose content the store recognises as stored
        (``ItemStore.changed``, in this thread, reading nothing) are counted unchanged first and never sent: on a
        day when little changed, the upsert's per-item bookkeeping and threads are spent on the few that did.
        True when every item was written or found unchanged."""
        changed = self._changed(items, current, report)
        done = len(items) - len(changed)
        waiting = deque(chunks(changed, WRITE_CHUNK))
        running: deque[tuple[Future[WriteOutcome], int]] = deque()
        all_settled = True
        with ThreadPoolExecutor(WRITES_IN_FLIGHT, thread_name_prefix="sync-assets-write") as writers:
            while waiting or running:
                while waiting and len(running) < WRITES_IN_FLIGHT and not deadline.expired():
                    chunk = waiting.popleft()
                    running.append((writers.submit(self._upsert, chunk, current, deadline), len(chunk)))
                if not running:
                    break
                future, size = running.popleft()
                # The store names and dead-letters every item it does not write; what it raises ends the run.
                outcome = future.result()
                fold(report, outcome, table=ASSETS.name)
                all_settled = all_settled and not (outcome.failed or outcome.invalid or outcome.stale)
                done += size
                if self.progress is not None:
                    self.progress(done, len(items))
        if waiting:
            self._stopped_at_deadline(report, sum(len(chunk) for chunk in waiting))
            return False
        return all_settled

    def _changed(self, items: list[Item], current: dict[str, list[Item]], report: SyncAssetsReport) -> list[Item]:
        """The items to hand to the upsert; the others are counted unchanged (and as progress)."""
        stored = [item for versions in current.values() for item in versions]
        changed = self.store.changed(ASSETS.name, items, stored)
        report.unchanged += len(items) - len(changed)
        if len(changed) < len(items) and self.progress is not None:
            self.progress(len(items) - len(changed), len(items))
        return changed

    def _upsert(self, chunk: list[Item], current: dict[str, list[Item]], deadline: Deadline) -> WriteOutcome:
        stored = [s for symbol in dict.fromkeys(str(i.get("symbol")) for i in chunk) for s in current.get(symbol, [])]
        with self.metrics.timer("WriteDuration", job=JOB, table=ASSETS.name):
            return self.store.upsert(ASSETS.name, chunk, deadline=deadline, stored=stored)

    def _stopped_at_deadline(self, report: SyncAssetsReport, remaining: int) -> None:
        report.complete = False
        report.remaining = remaining
        report.add_error(f"deadline reached: {report.remaining} assets left for the next run")
        log.warning("sync assets stopped at the deadline", extra={"remaining": report.remaining})
        self.metrics.count("DeadlineReached", 1, job=JOB)

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


def _plausible_symbols(raw_assets: list[Any]) -> list[str]:
    """Every plausible symbol in the feed, valid listing or not (none of them has vanished), once, in feed order."""
    symbols = (raw.get("symbol") if isinstance(raw, dict) else None for raw in raw_assets)
    return list(dict.fromkeys(str(symbol) for symbol in symbols if is_valid_symbol(symbol)))
