"""The scheduler (`pollen pollenate --next N`, the schedule Lambda): the N most due active assets.

Order:
1. earnings-triggered: a calendar entry dated on or before today, not yet marked ``pollenatedAt``, whose date is
   later than the day of the asset's last pollenation (oldest report first, then highest volume);
2. never-pollenated active assets, highest volume first (``status-index`` read in descending volume order);
3. the stalest: the oldest ``lastPollenationDate`` first, among assets not pollenated within ``min_age``.

What it reads: the active assets through ``status-index`` (descending volume), projected onto
:data:`SCHEDULE_ATTRIBUTES` (symbol, sort key, volume: all the order needs), and the calendar entries of the last
:data:`EARNINGS_LOOKBACK_DAYS` through ``upcoming-earnings-index`` (their month buckets). The index's ALL
projection means DynamoDB still charges each whole item; the projection saves the transfer and decoding.

Inactive assets are never due. The Alpha Vantage quota is respected by the run: QuotaExhausted stops it cleanly
(PollenateAsset.run) and what was not started stays due for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
        for item in self.store.query(
            ASSETS.name,
            partition=("status", "active"),
            index="status-index",
            descending=True,
            attributes=SCHEDULE_ATTRIBUTES,
        ):
            symbol = str(item["symbol"])
            known = assets.get(symbol)
            if known is None or str(item["lastPollenationDate"]) > str(known["lastPollenationDate"]):
                assets[symbol] = item
        return assets

    def next_due(self, count: int, *, min_age: timedelta = MIN_STALE_AGE) -> list[DueAsset]:
        if count <= 0:
            return []
        now = self.clock()
        assets = self.active_assets()
        due: dict[str, DueAsset] = {}
        for candidate in self._earnings_triggered(assets, now.date()):
            due.setdefault(candidate.symbol, candidate)
        _add_never_pollenated(due, assets, count)
        _add_stalest(due, assets, count, cutoff=timestamp(now - min_age))
        chosen = list(due.values())[:count]
        self._record(chosen)
        return chosen

    def _earnings_triggered(self, assets: dict[str, Item], today: date) -> list[DueAsset]:
        """Assets with an unprocessed report since their last pollenation: oldest report, then highest volume."""
        triggered: list[tuple[str, Decimal, DueAsset]] = []
        lookback = today - timedelta(days=EARNINGS_LOOKBACK_DAYS)
        for entry in earnings_between(self.store, lookback, today, attributes=CALENDAR_ATTRIBUTES):
            candidate = _triggered_by(entry, assets)
            if candidate is not None:
                triggered.append(candidate)
        return [candidate for _, _, candidate in sorted(triggered, key=lambda t: (t[0], t[1], t[2].symbol))]

    def _record(self, chosen: list[DueAsset]) -> None:
        for reason in ("earnings", "never pollenated", "stalest"):
            self.metrics.count(
                "ScheduledAssets", sum(d.reason == reason for d in chosen), job="Scheduler", reason=reason
            )
        log.info("scheduled", extra={"count": len(chosen), "symbols": [d.symbol for d in chosen][:50]})


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
