"""The scheduler (`pollen pollenate --next N`, the schedule Lambda): the N most due active assets.

Order:
1. earnings-triggered: a calendar entry dated on or before today, not yet marked ``pollenatedAt``, whose date is
   later than the day of the asset's last pollenation (oldest report first, then highest volume);
2. never-pollenated active assets, highest volume first (``status-index`` read in descending volume order);
3. the stalest: the oldest ``lastPollenationDate`` first, among assets not pollenated within ``min_age``.

What it reads: first the calendar entries of the last :data:`EARNINGS_LOOKBACK_DAYS` through
``upcoming-earnings-index`` (their month buckets), projected onto :data:`CALENDAR_ATTRIBUTES`; then the active
assets through ``status-index`` in descending volume, projected onto :data:`SCHEDULE_ATTRIBUTES` (symbol, sort key,
volume: all the order needs), one page (1 MB of items) at a time, and only as far as the order needs: once the pages
read hold N never-pollenated assets that no open report names, no later (lower-volume) asset can be among the N,
so the read stops there, after the assets the open reports name that were not met yet are read by key (a Query of
their ``symbol``, at most :data:`MAX_KEY_LOOKUPS`; more, and the index is read on). Otherwise (the stalest are
needed) it reads every active asset. The index's ALL projection means DynamoDB charges each whole item read
(about 430 bytes an asset: half a read unit per 4 KB, eventually consistent); the projection saves the transfer and
decoding, stopping early saves the read units of the pages not read (at 12,000 assets, most never pollenated: one
page of five, 128 read units instead of 585). An asset stored twice (a defect ``pollen check`` repairs) is taken
by the newest of its items read; when the read stops early a newer item beyond it goes unseen, and pollenating that
asset does no harm (the pollenation reads the asset again and moves its newest item).

Inactive assets are never due. The Alpha Vantage quota is respected by the run: QuotaExhausted stops it cleanly
(PollenateAsset.run) and what was not started stays due for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from pollen.deadline import Deadline
from pollen.domain.calendar import POLLENATED_AT
from pollen.domain.values import timestamp
from pollen.jobs.common import Clock, utc_now
from pollen.jobs.pollenate import AssetResult, PollenateAsset, PollenateReport
from pollen.jobs.sync_earnings import earnings_between
from pollen.observability import MetricsRecorder
from pollen.ports import FundamentalsSource, Item, ItemStore, QueueSender
from pollen.report import JobReport, Stopwatch
from pollen.tables import ASSETS, NEVER_POLLENATED

log = logging.getLogger(__name__)

Reason = Literal["earnings", "never pollenated", "stalest"]
#: How far back calendar entries can trigger a pollenation.
EARNINGS_LOOKBACK_DAYS = 92
#: Assets pollenated more recently than this are not picked as "stalest".
MIN_STALE_AGE = timedelta(hours=20)
#: At most this many assets named by open reports are read by key when the index read stops early.
MAX_KEY_LOOKUPS = 25


#: What the schedule needs of an active asset.
SCHEDULE_ATTRIBUTES = ("symbol", "lastPollenationDate", "volume", "status")


#: What the schedule needs of a calendar entry.
CALENDAR_ATTRIBUTES = ("asset_symbol", "earnings_date", POLLENATED_AT)


class DueAsset(BaseModel):
    symbol: str
    reason: Reason
    volume: int = 0
    last_pollenation: str
    report_date: str | None = None


class Scheduler:
    def __init__(self, store: ItemStore, *, metrics: MetricsRecorder, clock: Clock = utc_now) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    def active_assets(self) -> dict[str, Item]:
        """Active assets by symbol, in descending volume order (one item per symbol: the newest key)."""
        assets: dict[str, Item] = {}
        for item in self._active_items():
            _keep_newest(assets, item)
        return assets

    def _active_items(self) -> Iterator[Item]:
        """The active assets' items through ``status-index``, highest volume first, a page at a time."""
        return self.store.query(
            ASSETS.name,
            partition=("status", "active"),
            index="status-index",
            descending=True,
            attributes=SCHEDULE_ATTRIBUTES,
        )

    def next_due(self, count: int, *, min_age: timedelta = MIN_STALE_AGE) -> list[DueAsset]:
        if count <= 0:
            return []
        now = self.clock()
        reports = self._open_reports(now.date())
        assets = self._assets_for(count, {str(entry.get("asset_symbol")) for entry in reports})
        due: dict[str, DueAsset] = {}
        for candidate in _earnings_triggered(reports, assets):
            due.setdefault(candidate.symbol, candidate)
        _add_never_pollenated(due, assets, count)
        _add_stalest(due, assets, count, cutoff=timestamp(now - min_age))
        chosen = list(due.values())[:count]
        self._record(chosen)
        return chosen

    def _open_reports(self, today: date) -> list[Item]:
        """Calendar entries of the lookback window not yet marked processed."""
        lookback = today - timedelta(days=EARNINGS_LOOKBACK_DAYS)
        entries = earnings_between(self.store, lookback, today, attributes=CALENDAR_ATTRIBUTES)
        return [entry for entry in entries if POLLENATED_AT not in entry]

    def _assets_for(self, count: int, reported: set[str]) -> dict[str, Item]:
        """The active assets the order of the ``count`` most due needs: every one, or (see the module doc) the
        highest-volume ones up to ``count`` never-pollenated assets no open report names, plus the reported ones."""
        assets: dict[str, Item] = {}
        never = 0
        for item in self._active_items():
            symbol = str(item["symbol"])
            first = symbol not in assets
            _keep_newest(assets, item)
            if first and symbol not in reported and item["lastPollenationDate"] == NEVER_POLLENATED:
                never += 1
                if never >= count:
                    unseen = reported - assets.keys()
                    if len(unseen) <= MAX_KEY_LOOKUPS:
                        self._add_by_key(assets, unseen)
                        return assets
        return assets

    def _add_by_key(self, assets: dict[str, Item], symbols: set[str]) -> None:
        """Add the active ones of ``symbols`` read by key (each symbol's items in ``assets``)."""
        for symbol in sorted(symbols):
            for item in self.store.query(ASSETS.name, partition=("symbol", symbol), attributes=SCHEDULE_ATTRIBUTES):
                if item.get("status") == "active":
                    _keep_newest(assets, item)

    def _record(self, chosen: list[DueAsset]) -> None:
        for reason in ("earnings", "never pollenated", "stalest"):
            self.metrics.count(
                "ScheduledAssets", sum(d.reason == reason for d in chosen), job="Scheduler", reason=reason
            )
        log.info("scheduled", extra={"count": len(chosen), "symbols": [d.symbol for d in chosen][:50]})


def _keep_newest(assets: dict[str, Item], item: Item) -> None:
    """Keep ``item`` as its symbol's asset unless one with a later ``lastPollenationDate`` is kept already."""
    symbol = str(item["symbol"])
    known = assets.get(symbol)
    if known is None or str(item["lastPollenationDate"]) > str(known["lastPollenationDate"]):
        assets[symbol] = item


def _earnings_triggered(reports: list[Item], assets: dict[str, Item]) -> list[DueAsset]:
    """Assets with an unprocessed report since their last pollenation: oldest report, then highest volume."""
    triggered: list[tuple[str, Decimal, DueAsset]] = []
    for entry in reports:
        candidate = _triggered_by(entry, assets)
        if candidate is not None:
            triggered.append(candidate)
    return [candidate for _, _, candidate in sorted(triggered, key=lambda t: (t[0], t[1], t[2].symbol))]


def _triggered_by(entry: Item, assets: dict[str, Item]) -> tuple[str, Decimal, DueAsset] | None:
    """The (report date, -volume, due asset) a calendar entry triggers, or None: already processed, the asset is
    not active, or the asset was pollenated on or after the report date."""
    if POLLENATED_AT in entry:
        return None
    asset = assets.get(str(entry.get("asset_symbol")))
    if asset is None:
        return None
    last = str(asset["lastPollenationDate"])
    report_date = str(entry["earnings_date"])
    if report_date <= last[:10]:
        return None
    volume = Decimal(asset.get("volume", 0))
    candidate = DueAsset(
        symbol=str(asset["symbol"]),
        reason="earnings",
        volume=int(volume),
        last_pollenation=last,
        report_date=report_date,
    )
    return report_date, -volume, candidate


def _add_never_pollenated(due: dict[str, DueAsset], assets: dict[str, Item], count: int) -> None:
    """Fill ``due`` up to ``count`` with never-pollenated assets, in the assets' (descending volume) order."""
    for symbol, asset in assets.items():
        if len(due) >= count:
            break
        if asset["lastPollenationDate"] == NEVER_POLLENATED and symbol not in due:
            due[symbol] = DueAsset(
                symbol=symbol,
                reason="never pollenated",
                volume=int(asset.get("volume", 0)),
                last_pollenation=NEVER_POLLENATED,
            )


def _add_stalest(due: dict[str, DueAsset], assets: dict[str, Item], count: int, *, cutoff: str) -> None:
    """Fill ``due`` up to ``count`` with the assets pollenated longest ago (at or before ``cutoff``)."""
    stale = sorted(
        (a for s, a in assets.items() if s not in due and a["lastPollenationDate"] <= cutoff),
        key=lambda a: (str(a["lastPollenationDate"]), -Decimal(a.get("volume", 0)), str(a["symbol"])),
    )
    for asset in stale:
        if len(due) >= count:
            break
        due[str(asset["symbol"])] = DueAsset(
            symbol=str(asset["symbol"]),
            reason="stalest",
            volume=int(asset.get("volume", 0)),
            last_pollenation=str(asset["lastPollenationDate"]),
        )


class PollenateNextReport(PollenateReport):
    schedule: list[DueAsset] = []


def pollenate_next(
    store: ItemStore,
    source: FundamentalsSource,
    count: int,
    *,
    metrics: MetricsRecorder,
    clock: Clock = utc_now,
    deadline: Deadline | None = None,
    on_result: Callable[[AssetResult], None] | None = None,
) -> PollenateNextReport:
    """Pick the N most due assets and pollenate them in that order."""
    watch = Stopwatch()
    schedule = Scheduler(store, metrics=metrics, clock=clock).next_due(count)
    job = PollenateAsset(store, source, metrics=metrics, clock=clock)
    run = job.run([d.symbol for d in schedule], deadline, on_result=on_result)
    report = PollenateNextReport(**run.model_dump(), schedule=schedule)
    report.duration_s = watch.elapsed_s
    return report


class ScheduleReport(JobReport):
    job: str = "schedule-pollenation"
    enqueued: int = 0
    schedule: list[DueAsset] = []


def enqueue_due(
    store: ItemStore,
    queue: QueueSender,
    count: int,
    *,
    metrics: MetricsRecorder,
    clock: Clock = utc_now,
) -> ScheduleReport:
    """Send the N most due symbols to the pollenation queue. Each message carries ``enqueuedAt``, so a consumer
    can leave alone an asset pollenated since (a later schedule may have queued it again)."""
    watch = Stopwatch()
    schedule = Scheduler(store, metrics=metrics, clock=clock).next_due(count)
    enqueued_at = timestamp(clock())
    messages = [{"symbol": d.symbol, "reason": d.reason, "enqueuedAt": enqueued_at} for d in schedule]
    report = ScheduleReport(schedule=schedule)
    errors = queue.send(messages) if messages else []
    report.enqueued = len(messages) - len(errors)
    report.written = report.enqueued
    report.failed = len(errors)
    for line in errors:
        report.add_error(line)
    report.ok = not errors
    metrics.count("Enqueued", report.enqueued, job="SchedulePollenation")
    report.duration_s = watch.elapsed_s
    return report
