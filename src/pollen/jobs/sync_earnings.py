"""SyncEarningsCalendar (seed 001): Alpha Vantage's EARNINGS_CALENDAR into ``earningsCalendar``.

The CSV rows arrive as a stream and are validated one by one; rows are deduplicated by fiscal period (symbol and
``fiscal_date_ending``: the last row listed wins), then upserted with ``earnings_month``. The stored items near
the calendar's window are read through ``upcoming-earnings-index`` (month buckets) to find rescheduled reports: a
stored item with the same fiscal period as a row and another date is stale and is deleted in the same run, after
the new item is written. Items whose date has passed and that no row mentions are history and stay.

The pollenation's marker (``pollenatedAt``) on a stored item is carried over when the row is synced again, so a
re-sync does not count a marked item as changed.

What it reads: the calendar's window once, through the month-bucket GSI, projected onto
:data:`STORED_ATTRIBUTES` (keys, fiscal period, bookkeeping and the store's content hash). The window runs from the
earliest of the rows' dates and :data:`LOOKBACK_DAYS` ago to the latest row's date or the horizon's end
(:data:`HORIZON_DAYS` after the earliest row), whichever is later: the horizon's end also finds a report moved to an
earlier date whose old date lies after every row's. Every row's key lies in that window, so the read is also the
stored versions the upsert compares with (``upsert(stored=...)``): nothing is read again by key. A stored item
missing from the index (no ``earnings_month``) is taken as new and rewritten, which also repairs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from typing import Literal

from pollen.deadline import Deadline
from pollen.domain.calendar import CALENDAR_BOOKKEEPING, calendar_item, parse_calendar_row
from pollen.domain.values import timestamp
from pollen.errors import InvalidRecord
from pollen.jobs.common import Clock, chunks, fold, utc_now
from pollen.observability import MetricsRecorder
from pollen.ports import VERSION_ATTRIBUTES, FundamentalsSource, Item, ItemStore
from pollen.report import JobReport, Stopwatch, note_lease
from pollen.tables import EARNINGS_CALENDAR

log = logging.getLogger(__name__)

JOB = "SyncEarningsCalendar"
LEASE = "sync-earnings"
INDEX = "upcoming-earnings-index"
Horizon = Literal["3month", "6month", "12month"]
HORIZONS: tuple[Horizon, ...] = ("3month", "6month", "12month")
#: How far back stored items are compared with the calendar (a report moved after its old date had passed).
LOOKBACK_DAYS = 45
#: The most days a horizon's months span: the calendar lists reports from its first date to this far ahead.
HORIZON_DAYS: dict[Horizon, int] = {"3month": 92, "6month": 184, "12month": 366}
WRITE_CHUNK = 500
#: What the sync reads of a stored calendar item.
STORED_ATTRIBUTES = tuple(
    dict.fromkeys(
        ("asset_symbol", "earnings_date", "fiscal_date_ending", *sorted(CALENDAR_BOOKKEEPING), *VERSION_ATTRIBUTES)
    )
)


class SyncEarningsReport(JobReport):
    job: str = "sync-earnings"
    horizon: str = "3month"
    sync_time: str = ""
    rows: int = 0
    duplicates: int = 0
    rescheduled: int = 0
    stale_removed: int = 0
    complete: bool = True


def months_between(start: date, end: date) -> list[str]:
    """The ``YYYY-MM`` buckets from start's month to end's month, inclusive."""
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def earnings_between(
    store: ItemStore, start: date, end: date, *, attributes: Sequence[str] | None = None
) -> Iterator[Item]:
    """Calendar items with ``start <= earnings_date <= end``, in date order, through the month-bucket GSI (the
    store falls back to a Scan by itself when the index is unavailable); ``attributes`` projects them."""
    low, high = start.isoformat(), end.isoformat()
    for month in months_between(start, end):
        yield from store.query(
            EARNINGS_CALENDAR.name,
            partition=("earnings_month", month),
            sort_between=(low, high),
            index=INDEX,
            attributes=attributes,
        )


class SyncEarningsCalendar:
    def __init__(
        self,
        store: ItemStore,
        source: FundamentalsSource,
        *,
        metrics: MetricsRecorder,
        clock: Clock = utc_now,
        force_lease: bool = False,
    ) -> None:
        self.store = store
        #: Take the lease even from a live holder (the CLI's ``--force``).
        self.force_lease = force_lease
        self.source = source
        self.metrics = metrics
        self.clock = clock

    def run(self, horizon: Horizon = "3month", deadline: Deadline | None = None) -> SyncEarningsReport:
        if horizon not in HORIZONS:
            raise InvalidRecord(f"unknown horizon {horizon!r}; use one of {', '.join(HORIZONS)}")
        deadline = deadline or Deadline.never()
        watch = Stopwatch()
        now = self.clock()
        report = SyncEarningsReport(horizon=horizon, sync_time=timestamp(now))
        with (
            self.store.lease(LEASE, force=self.force_lease) as lease,
            self.metrics.timer("SyncDuration", job=JOB),
        ):
            self._run(report, horizon, now.date(), deadline)
        note_lease(report, lease)
        report.duration_s = watch.elapsed_s
        for name, value in (
            ("CalendarRows", report.rows),
            ("CalendarWritten", report.written),
            ("CalendarUnchanged", report.unchanged),
            ("CalendarInvalid", report.invalid),
            ("CalendarFailed", report.failed),
            ("CalendarRescheduled", report.rescheduled),
        ):
            self.metrics.count(name, value, job=JOB)
        log.info("sync earnings finished", extra=report.model_dump(exclude={"errors"}))
        return report

    def _run(self, report: SyncEarningsReport, horizon: Horizon, today: date, deadline: Deadline) -> None:
        rows = self._rows(self.source.earnings_calendar(horizon), report)
        if not rows:
            return
        dates = [date.fromisoformat(i["earnings_date"]) for i in rows.values()]
        window_start = min(min(dates), today - timedelta(days=LOOKBACK_DAYS))
        window_end = max(max(dates), min(dates) + timedelta(days=HORIZON_DAYS[horizon]))
        stored = earnings_between(self.store, window_start, window_end, attributes=STORED_ATTRIBUTES)
        stored_by_period: dict[tuple[str, str], list[Item]] = {}
        stored_by_key: dict[tuple[str, str], Item] = {}
        for item in stored:
            period = (str(item.get("asset_symbol")), str(item.get("fiscal_date_ending")))
            stored_by_period.setdefault(period, []).append(item)
            stored_by_key[(str(item["asset_symbol"]), str(item["earnings_date"]))] = item

        items = []
        stale: list[Item] = []
        for period, item in rows.items():
            existing = stored_by_key.get((item["asset_symbol"], item["earnings_date"]))
            if existing is not None:
                for name in CALENDAR_BOOKKEEPING - {"lastSyncDate"}:
                    if name in existing:
                        item[name] = existing[name]
            items.append(item)
            moved = [s for s in stored_by_period.get(period, []) if s["earnings_date"] != item["earnings_date"]]
            if moved:
                report.rescheduled += 1
                stale += moved
                log.info(
                    "report rescheduled",
                    extra={
                        "symbol": period[0],
                        "fiscal_date_ending": period[1],
                        "to": item["earnings_date"],
                        "from": [s["earnings_date"] for s in moved],
                    },
                )

        written_keys = {(i["asset_symbol"], i["earnings_date"]) for i in items}
        stale = [s for s in stale if (s["asset_symbol"], s["earnings_date"]) not in written_keys]
        self._write(items, stored_by_key, report, deadline)
        if stale and report.complete:
            self._remove(stale, report)

    def _rows(self, raw_rows: Iterable[dict[str, str]], report: SyncEarningsReport) -> dict[tuple[str, str], Item]:
        last_sync = report.sync_time
        rows: dict[tuple[str, str], Item] = {}
        for raw in raw_rows:
            report.rows += 1
            try:
                row = parse_calendar_row(raw)
            except InvalidRecord as exc:
                report.invalid += 1
                report.add_error(str(exc))
                continue
            if row.fiscal_key in rows:
                report.duplicates += 1
            rows[row.fiscal_key] = calendar_item(row, last_sync=last_sync)
        return rows

    def _write(
        self,
        items: list[Item],
        stored_by_key: dict[tuple[str, str], Item],
        report: SyncEarningsReport,
        deadline: Deadline,
    ) -> None:
        done = 0
        for chunk in chunks(items, WRITE_CHUNK):
            if deadline.expired():
                report.complete = False
                report.add_error(f"deadline reached: {len(items) - done} calendar items left for the next run")
                return
            # The store names and dead-letters every item it does not write; what it raises ends the run.
            keys = ((str(i["asset_symbol"]), str(i["earnings_date"])) for i in chunk)
            stored = [stored_by_key[k] for k in keys if k in stored_by_key]
            outcome = self.store.upsert(EARNINGS_CALENDAR.name, chunk, deadline=deadline, stored=stored)
            fold(report, outcome, table=EARNINGS_CALENDAR.name)
            done += len(chunk)

    def _remove(self, stale: list[Item], report: SyncEarningsReport) -> None:
        if report.failed:
            # A new item may not be there: keep the old one until a run writes its replacement.
            report.add_error(f"{len(stale)} rescheduled items kept until their replacements are written")
            return
        outcome = self.store.delete(EARNINGS_CALENDAR.name, [EARNINGS_CALENDAR.key_of(i) for i in stale])
        report.stale_removed = len(stale) - outcome.failed
        if outcome.failed:
            report.ok = False
            report.failed += outcome.failed
            report.add_error(f"earningsCalendar: {outcome.failed} stale items not removed")
