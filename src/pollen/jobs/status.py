"""`pollen status`: how complete and how fresh the store is, what is due, what failed, when the backlog clears.

What it reads (and nothing else), cheaply:

- DescribeTable of every contract table: item counts (DynamoDB refreshes them about every six hours: approximate);
- ``assets``: one Scan projected onto ``symbol``, ``lastPollenationDate``, ``status``, ``lastSyncDate``;
- ``earningsCalendar`` through ``upcoming-earnings-index``: the months from ``EARNINGS_LOOKBACK_DAYS`` back to
  ``CALENDAR_AHEAD_DAYS`` ahead, projected onto ``CALENDAR_STATUS_ATTRIBUTES``, plus one-item probes of the months
  around them for the calendar's range (the projection saves transfer and decoding; DynamoDB charges the whole
  items read all the same);
- the run records in ``pollenControl`` (one Query per job, the last ``CHART_DAYS`` days);
- nothing of the five fundamentals tables but their DescribeTable: their age is the assets' ``lastPollenationDate``.

Local observers (stream checkpoints, dead-letter files, the dead-letter queue's depth) are passed in by the entry
point. The report ends with a one-line health: ok / attention / failing, with the reasons.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from pollen.domain.calendar import POLLENATED_AT
from pollen.domain.values import parse_timestamp, timestamp
from pollen.jobs.common import Clock, utc_now
from pollen.jobs.runs import FUNDAMENTAL_TABLES, RECORDED_JOBS, STATUS_JOB, RunLog, RunRecord
from pollen.jobs.scheduler import EARNINGS_LOOKBACK_DAYS
from pollen.ports import DeadLetterCount, ItemStore, StreamPosition, TableStatistics
from pollen.report import JobReport, Stopwatch
from pollen.tables import ASSETS, CONTRACT_TABLES, EARNINGS_CALENDAR, NEVER_POLLENATED

log = logging.getLogger(__name__)

#: A pollenated asset whose fundamentals are older than this is due as "stale" (the scheduler also refreshes any
#: asset older than 20 hours when nothing else is due; that is upkeep, not backlog).
STALE_AFTER_DAYS = 30
#: The calendar is read this far ahead (the default sync horizon is three months).
CALENDAR_AHEAD_DAYS = 92
#: Months probed beyond the read window before the calendar's range is taken as found.
EMPTY_MONTHS_TO_STOP = 3
#: Run records older than this are not read (charts and measured calls per pollenation).
CHART_DAYS = 14
#: Calls per pollenation assumed before any pollenate run was recorded (OVERVIEW + four reports).
DEFAULT_CALLS_PER_POLLENATION = 5.0
#: Health thresholds.
SYNC_OVERDUE = timedelta(hours=36)
STREAM_LAG_ATTENTION_S = 300.0
BACKLOG_ATTENTION = timedelta(days=7)

Health = Literal["ok", "attention", "failing"]

#: What status reads of a calendar entry (its keys, the index's keys, the sync time and the pollenation mark).
CALENDAR_STATUS_ATTRIBUTES = ("asset_symbol", "earnings_date", "earnings_month", "lastSyncDate", POLLENATED_AT)


class TableFreshness(BaseModel):
    table: str
    items: int | None = None
    newest_sync: str | None = None
    oldest_sync: str | None = None
    #: What the newest/oldest figures cover.
    scope: str = ""


class Freshness(BaseModel):
    tables: list[TableFreshness] = Field(default_factory=list)
    assets_active: int = 0
    assets_inactive: int = 0
    asset_items: int = 0
    calendar_first: str | None = None
    calendar_last: str | None = None
    calendar_items_read: int = 0


class Due(BaseModel):
    earnings: int = 0
    never_pollenated: int = 0
    stale: int = 0

    @property
    def total(self) -> int:
        return self.earnings + self.never_pollenated + self.stale


class Pollination(BaseModel):
    active: int = 0
    pollenated: int = 0
    coverage: float | None = None
    age_median_days: float | None = None
    age_p90_days: float | None = None
    age_oldest_days: float | None = None
    oldest_pollenation: str | None = None
    due: Due = Field(default_factory=Due)
    backlog: int = 0
    calls_per_pollenation: float = DEFAULT_CALLS_PER_POLLENATION
    calls_measured_over: int = 0
    seconds_per_pollenation: float | None = None
    quota_per_minute: int = 0
    quota_per_day: int = 0
    concurrency: int = 1
    pollenations_per_day: float = 0.0
    eta_s: float | None = None


class LastRun(BaseModel):
    job: str
    started_at: str
    ended_at: str
    ok: bool
    duration_s: float
    source: str
    errors: list[str] = Field(default_factory=list)


class Runs(BaseModel):
    last: dict[str, LastRun] = Field(default_factory=dict)
    failures_24h: int = 0
    failed_runs_24h: list[str] = Field(default_factory=list)
    dead_letters: list[DeadLetterCount] = Field(default_factory=list)


class DayPoint(BaseModel):
    day: str
    written: int = 0
    unchanged: int = 0
    failed: int = 0


class Series(BaseModel):
    """What the page charts."""

    snapshots: list[dict[str, Any]] = Field(default_factory=list)
    tables_per_day: dict[str, list[DayPoint]] = Field(default_factory=dict)
    calls_per_day: list[dict[str, Any]] = Field(default_factory=list)


class StatusReport(JobReport):
    job: str = "status"
    generated_at: str = ""
    freshness: Freshness = Field(default_factory=Freshness)
    pollination: Pollination = Field(default_factory=Pollination)
    runs: Runs = Field(default_factory=Runs)
    streams: list[StreamPosition] | None = None
    health: Health = "ok"
    reasons: list[str] = Field(default_factory=list)
    health_line: str = ""
    series: Series = Field(default_factory=Series)
    reads: list[str] = Field(default_factory=list)


class QuotaSettings(BaseModel):
    per_minute: int = 75
    per_day: int = 25_000
    concurrency: int = 1


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (share in 0..1)."""
    if not values:
        raise ValueError("no values")
    rank = max(1, math.ceil(share * len(values)))
    return values[rank - 1]


def _months(first: date, last: date) -> list[str]:
    months: list[str] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _shift_month(month: str, delta: int) -> str:
    year, number = int(month[:4]), int(month[5:7]) - 1 + delta
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400.0, 2)


class StatusCollector:
    def __init__(
        self,
        store: ItemStore,
        statistics: TableStatistics,
        runs: RunLog,
        *,
        quota: QuotaSettings | None = None,
        clock: Clock = utc_now,
        streams: Callable[[], list[StreamPosition] | None] | None = None,
        dead_letters: Iterable[Callable[[], DeadLetterCount]] = (),
        stale_after: timedelta = timedelta(days=STALE_AFTER_DAYS),
    ) -> None:
        self.store = store
        self.statistics = statistics
        self.run_log = runs
        self.quota = quota or QuotaSettings()
        self.clock = clock
        self.streams = streams
        self.dead_letters = list(dead_letters)
        self.stale_after = stale_after

    def collect(self, *, snapshot: bool = True) -> StatusReport:
        """Read everything and build the report; with ``snapshot``, keep its figures as a ``status`` run record
        (the page charts coverage and age over time from these)."""
        watch = Stopwatch()
        now = self.clock()
        report = StatusReport(generated_at=timestamp(now))
        active = self._assets(report)
        calendar = self._calendar(report, now.date())
        self._fundamentals_counts(report)
        records = self.run_log.recent([*RECORDED_JOBS.values(), STATUS_JOB], since=now - timedelta(days=CHART_DAYS))
        self._pollination(report, active, calendar, records, now)
        self._runs(report, records, now)
        if self.streams is not None:
            report.streams = self.streams()
            report.reads.append("stream shards after the local checkpoints (GetRecords)")
        self._health(report, now)
        self._series(report, records)
        report.duration_s = watch.elapsed_s
        if snapshot:
            self._snapshot(report, now)
        return report

    # -- reads ----------------------------------------------------------------------------------------------------

    def _assets(self, report: StatusReport) -> dict[str, str]:
        """Scan ``assets`` (projected); returns the active assets' ``lastPollenationDate`` by symbol."""
        newest: dict[str, dict[str, Any]] = {}
        items = 0
        syncs: list[str] = []
        for item in self.store.scan(
            ASSETS.name, attributes=["symbol", "lastPollenationDate", "status", "lastSyncDate"]
        ):
            items += 1
            if item.get("lastSyncDate"):
                syncs.append(str(item["lastSyncDate"]))
            symbol = str(item["symbol"])
            known = newest.get(symbol)
            if known is None or str(item["lastPollenationDate"]) > str(known["lastPollenationDate"]):
                newest[symbol] = item
        report.reads.append(f"assets: Scan projected on 4 attributes ({items} items)")
        fresh = report.freshness
        fresh.asset_items = items
        fresh.assets_active = sum(1 for i in newest.values() if i.get("status") == "active")
        fresh.assets_inactive = len(newest) - fresh.assets_active
        fresh.tables.append(
            TableFreshness(
                table=ASSETS.name,
                items=items,
                newest_sync=max(syncs, default=None),
                oldest_sync=min(syncs, default=None),
                scope="every item (Scan)",
            )
        )
        return {s: str(i["lastPollenationDate"]) for s, i in newest.items() if i.get("status") == "active"}

    def _month_items(self, month: str, *, limit: int | None = None, descending: bool = False) -> list[dict[str, Any]]:
        """A month bucket of the calendar, projected onto :data:`CALENDAR_STATUS_ATTRIBUTES` (a one-item probe
        only needs the keys, which every projection keeps)."""
        return list(
            self.store.query(
                EARNINGS_CALENDAR.name,
                partition=("earnings_month", month),
                index="upcoming-earnings-index",
                descending=descending,
                limit=limit,
                attributes=CALENDAR_STATUS_ATTRIBUTES,
            )
        )[: limit or None]

    def _calendar(self, report: StatusReport, today: date) -> list[dict[str, Any]]:
        """The calendar's live window through the index, and its range by probing the months around it."""
        start = today - timedelta(days=EARNINGS_LOOKBACK_DAYS)
        end = today + timedelta(days=CALENDAR_AHEAD_DAYS)
        window = _months(start, end)
        items: list[dict[str, Any]] = []
        filled: list[str] = []
        for month in window:
            found = self._month_items(month)
            items += found
            if found:
                filled.append(month)
        probes = 0
        first_month = filled[0] if filled else None
        last_month = filled[-1] if filled else None
        # Earlier history: walk back until EMPTY_MONTHS_TO_STOP empty months in a row.
        month, empty = _shift_month(window[0], -1), 0
        while empty < EMPTY_MONTHS_TO_STOP and probes < 240:
            probes += 1
            if self._month_items(month, limit=1):
                first_month, empty = month, 0
            else:
                empty += 1
            month = _shift_month(month, -1)
        month, empty = _shift_month(window[-1], 1), 0
        while empty < EMPTY_MONTHS_TO_STOP and probes < 480:
            probes += 1
            if self._month_items(month, limit=1, descending=True):
                last_month, empty = month, 0
            else:
                empty += 1
            month = _shift_month(month, 1)
        fresh = report.freshness
        if first_month is not None:
            first = [i for i in items if i["earnings_month"] == first_month] or self._month_items(first_month, limit=1)
            fresh.calendar_first = min(str(i["earnings_date"]) for i in first)
        if last_month is not None:
            last = [i for i in items if i["earnings_month"] == last_month] or self._month_items(
                last_month, limit=1, descending=True
            )
            fresh.calendar_last = max(str(i["earnings_date"]) for i in last)
        fresh.calendar_items_read = len(items)
        syncs = [str(i["lastSyncDate"]) for i in items if i.get("lastSyncDate")]
        fresh.tables.append(
            TableFreshness(
                table=EARNINGS_CALENDAR.name,
                items=self.statistics.item_count(EARNINGS_CALENDAR.name),
                newest_sync=max(syncs, default=None),
                oldest_sync=min(syncs, default=None),
                scope=f"report dates {start.isoformat()} to {end.isoformat()}",
            )
        )
        report.reads.append(
            f"earningsCalendar: Query upcoming-earnings-index for {len(window)} months ({len(items)} items), "
            f"{probes} one-item probes"
        )
        return items

    def _fundamentals_counts(self, report: StatusReport) -> None:
        for table in CONTRACT_TABLES:
            if table.name in (ASSETS.name, EARNINGS_CALENDAR.name):
                continue
            report.freshness.tables.append(
                TableFreshness(
                    table=table.name,
                    items=self.statistics.item_count(table.name),
                    scope="count only (DescribeTable); age: the assets' lastPollenationDate",
                )
            )
        report.reads.append("DescribeTable of the contract tables (item counts, approximate)")

    # -- figures --------------------------------------------------------------------------------------------------

    def _pollination(
        self,
        report: StatusReport,
        active: dict[str, str],
        calendar: list[dict[str, Any]],
        records: dict[str, list[RunRecord]],
        now: datetime,
    ) -> None:
        result = report.pollination
        today = now.date()
        lookback = (today - timedelta(days=EARNINGS_LOOKBACK_DAYS)).isoformat()
        result.active = len(active)
        ages = sorted(
            (now - parse_timestamp(last)).total_seconds() / 86400.0
            for last in active.values()
            if last != NEVER_POLLENATED
        )
        result.pollenated = len(ages)
        result.coverage = round(len(ages) / len(active), 4) if active else None
        if ages:
            result.age_median_days = round(statistics.median(ages), 2)
            result.age_p90_days = round(percentile(ages, 0.9), 2)
            result.age_oldest_days = round(ages[-1], 2)
            result.oldest_pollenation = min(last for last in active.values() if last != NEVER_POLLENATED)
        earnings_due = {
            str(entry["asset_symbol"])
            for entry in calendar
            if lookback <= str(entry["earnings_date"]) <= today.isoformat()
            and POLLENATED_AT not in entry
            and str(entry.get("asset_symbol")) in active
            and str(entry["earnings_date"]) > active[str(entry["asset_symbol"])][:10]
        }
        stale_cutoff = timestamp(now - self.stale_after)
        due = result.due
        due.earnings = len(earnings_due)
        due.never_pollenated = sum(
            1 for s, last in active.items() if last == NEVER_POLLENATED and s not in earnings_due
        )
        due.stale = sum(
            1
            for s, last in active.items()
            if last != NEVER_POLLENATED and last < stale_cutoff and s not in earnings_due
        )
        result.backlog = due.total

        pollenations = [r for r in records.get("pollenate", []) if r.pollenated > 0]
        pollenated = sum(r.pollenated for r in pollenations)
        if pollenated:
            result.calls_per_pollenation = round(sum(r.calls for r in pollenations) / pollenated, 2)
            result.seconds_per_pollenation = round(sum(r.duration_s for r in pollenations) / pollenated, 2)
        result.calls_measured_over = pollenated
        result.quota_per_minute = self.quota.per_minute
        result.quota_per_day = self.quota.per_day
        result.concurrency = self.quota.concurrency
        calls = max(result.calls_per_pollenation, 0.01)
        per_day = min(self.quota.per_minute * 1440 / calls, self.quota.per_day / calls)
        if result.seconds_per_pollenation:
            per_day = min(per_day, self.quota.concurrency * 86400 / result.seconds_per_pollenation)
        result.pollenations_per_day = round(per_day, 1)
        result.eta_s = round(result.backlog / per_day * 86400, 1) if per_day > 0 else None

    def _runs(self, report: StatusReport, records: dict[str, list[RunRecord]], now: datetime) -> None:
        runs = report.runs
        for job in RECORDED_JOBS.values():
            latest = records.get(job) or []
            record = latest[0] if latest else self.run_log.last(job)
            if record is not None:
                runs.last[job] = LastRun(
                    job=job,
                    started_at=record.started_at,
                    ended_at=record.ended_at,
                    ok=record.ok,
                    duration_s=record.duration_s,
                    source=record.source,
                    errors=record.errors[:3],
                )
        day_ago = timestamp(now - timedelta(hours=24))
        failed = [
            f"{r.job} at {r.started_at}"
            for job in RECORDED_JOBS.values()
            for r in records.get(job, [])
            if not r.ok and r.started_at >= day_ago
        ]
        runs.failures_24h = len(failed)
        runs.failed_runs_24h = failed[:20]
        runs.dead_letters = [observe() for observe in self.dead_letters]
        report.reads.append("pollenControl: Query per job of the run records of the last 14 days")

    def _health(self, report: StatusReport, now: datetime) -> None:
        failing: list[str] = []
        attention: list[str] = []
        for job, last in sorted(report.runs.last.items()):
            if not last.ok:
                failing.append(f"last {job} run failed")
        if report.freshness.asset_items == 0:
            failing.append("no assets stored")
        sync = report.runs.last.get("sync-assets")
        if sync is None or sync.ended_at < timestamp(now - SYNC_OVERDUE):
            attention.append("no sync-assets run in 36 h")
        if report.runs.failures_24h and not failing:
            attention.append(f"{report.runs.failures_24h} failed runs in 24 h")
        waiting = sum(d.waiting for d in report.runs.dead_letters)
        if waiting:
            attention.append(f"{waiting} dead letters waiting")
        for stream in report.streams or []:
            if stream.lag_s > STREAM_LAG_ATTENTION_S:
                attention.append(f"{stream.table} stream {stream.lag_s:.0f} s behind")
        eta = report.pollination.eta_s
        if eta is not None and eta > BACKLOG_ATTENTION.total_seconds():
            attention.append(f"backlog clears in {eta / 86400:.1f} days")
        report.health = "failing" if failing else "attention" if attention else "ok"
        report.reasons = failing + attention
        report.ok = report.health != "failing"
        report.health_line = health_line(report)

    def _series(self, report: StatusReport, records: dict[str, list[RunRecord]]) -> None:
        series = report.series
        series.snapshots = [
            {"at": r.started_at, **r.snapshot} for r in reversed(records.get(STATUS_JOB, [])) if r.snapshot
        ]
        series.snapshots.append(
            {
                "at": report.generated_at,
                "coverage": report.pollination.coverage,
                "age_median_days": report.pollination.age_median_days,
                "age_p90_days": report.pollination.age_p90_days,
                "backlog": float(report.pollination.backlog),
            }
        )
        per_table: dict[str, dict[str, DayPoint]] = {}
        calls: dict[str, int] = {}
        for job, job_records in records.items():
            if job == STATUS_JOB:
                continue
            for record in job_records:
                for table, counts in record.tables.items():
                    point = per_table.setdefault(table, {}).setdefault(record.day, DayPoint(day=record.day))
                    point.written += counts.written
                    point.unchanged += counts.unchanged
                    point.failed += counts.failed
                if record.calls:
                    calls[record.day] = calls.get(record.day, 0) + record.calls
        order = [t for t in (ASSETS.name, EARNINGS_CALENDAR.name, *FUNDAMENTAL_TABLES) if t in per_table]
        order += sorted(t for t in per_table if t not in order)
        series.tables_per_day = {t: sorted(per_table[t].values(), key=lambda p: p.day) for t in order}
        series.calls_per_day = [{"day": day, "calls": calls[day], "quota": self.quota.per_day} for day in sorted(calls)]

    def _snapshot(self, report: StatusReport, now: datetime) -> None:
        record = RunRecord(
            job=STATUS_JOB,
            run_id="snapshot",
            started_at=report.generated_at,
            ended_at=timestamp(now),
            duration_s=report.duration_s,
            ok=report.ok,
            source="status",
            snapshot={k: v for k, v in report.series.snapshots[-1].items() if k != "at"},
        )
        self.run_log.write(record)


def health_line(report: StatusReport) -> str:
    """One line: the state, the reasons, and the headline figures."""
    pollination = report.pollination
    coverage = f"{pollination.coverage:.0%}" if pollination.coverage is not None else "n/a"
    eta = format_duration(pollination.eta_s) if pollination.eta_s is not None else "n/a"
    head = f"health: {report.health}"
    if report.reasons:
        head += f" ({'; '.join(report.reasons)})"
    return (
        f"{head}; {report.freshness.assets_active} active assets, {coverage} pollenated, "
        f"backlog {pollination.backlog} (clears in {eta})"
    )


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
