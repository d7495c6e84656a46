"""Run records: every job run leaves a small record in pollen's own control table (``pollenControl``).

A record says which job ran, when it started and ended, its outcome, the report's counts (per table where the job
writes to several), the first error lines and where its dead letters went. ``pollen status`` reads them back (last run
per job, failures, calls per pollenation, the charts per day) and adds its own snapshots (coverage and fundamentals
age over time).

Key: ``pk = "run#<job>"``, ``sk = "<startedAt>#<run id>"``, so the records of one job come back in time order from
one Query. Records expire through the table's TTL attribute (``expiresAt``, epoch seconds) after
``RUN_RETENTION_DAYS`` (30). Error lines come from job reports, which never hold secrets; they are cut short anyway.
Writing a record never fails the run it describes: a failure is logged and counted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from pollen.deadline import Deadline
from pollen.domain.values import timestamp
from pollen.errors import PollenError
from pollen.jobs.common import Clock, utc_now
from pollen.observability import MetricsRecorder
from pollen.ports import Item, ItemStore
from pollen.report import JobReport
from pollen.tables import (
    ASSETS,
    BALANCE_SHEET,
    CASH_FLOW,
    COMPANY_OVERVIEW,
    CONTROL,
    EARNINGS,
    EARNINGS_CALENDAR,
    INCOME_STATEMENT,
)

log = logging.getLogger(__name__)

#: Default retention of run records (the TTL attribute is set this far after the run's end).
RUN_RETENTION_DAYS = 30
#: A run record is written within this many seconds or given up (it must never hold up the command it describes,
#: e.g. a load that stopped at its deadline during an outage).
RECORD_DEADLINE_S = 1.0
#: First error lines kept in a record.
RECORD_ERRORS = 5
RECORD_ERROR_CHARS = 200
#: The jobs that leave run records, by the name their report carries, to the name the record is kept under.
RECORDED_JOBS: dict[str, str] = {
    "sync-assets": "sync-assets",
    "sync-earnings": "sync-earnings",
    "pollenate": "pollenate",
    "check": "check",
    "load": "load",
    "stream sync": "stream-sync",
    "backfill": "backfill",
    "schedule-pollenation": "schedule-pollenation",
}
#: ``pollen status`` snapshots (coverage and age over time) are kept as records of this job.
STATUS_JOB = "status"
#: The table each single-table job writes (pollenate and load say it per run).
JOB_TABLES: dict[str, str] = {
    "sync-assets": ASSETS.name,
    "sync-earnings": EARNINGS_CALENDAR.name,
    "check": ASSETS.name,
    "stream-sync": "search index",
    "backfill": "search index",
}
FUNDAMENTAL_TABLES = (
    COMPANY_OVERVIEW.name,
    EARNINGS.name,
    CASH_FLOW.name,
    BALANCE_SHEET.name,
    INCOME_STATEMENT.name,
)
#: Alpha Vantage calls a sync-earnings run makes (one EARNINGS_CALENDAR download).
CALENDAR_CALLS = 1


class TableCounts(BaseModel):
    written: int = 0
    unchanged: int = 0
    failed: int = 0


class RunRecord(BaseModel):
    """One job run as kept in ``pollenControl``."""

    job: str
    run_id: str
    started_at: str
    ended_at: str
    duration_s: float
    ok: bool
    source: str = "cli"
    written: int = 0
    unchanged: int = 0
    failed: int = 0
    invalid: int = 0
    tables: dict[str, TableCounts] = Field(default_factory=dict)
    #: Alpha Vantage calls the run made.
    calls: int = 0
    #: Assets pollenated (pollenate runs).
    pollenated: int = 0
    errors: list[str] = Field(default_factory=list)
    dead_letters: int = 0
    dead_letters_to: str | None = None
    #: ``pollen status`` snapshots: the figures charted over time.
    snapshot: dict[str, float | None] = Field(default_factory=dict)

    @property
    def day(self) -> str:
        return self.started_at[:10]


def record_for(
    report: JobReport,
    *,
    started_at: datetime,
    ended_at: datetime,
    source: str,
    dead_letters_to: str | None,
    run_id: str | None = None,
) -> RunRecord | None:
    """The run record of a job report (None for a command that is not a job run)."""
    job = RECORDED_JOBS.get(report.job)
    if job is None:
        return None
    data = report.to_json_dict()
    record = RunRecord(
        job=job,
        run_id=run_id or uuid.uuid4().hex[:12],
        started_at=timestamp(started_at),
        ended_at=timestamp(ended_at),
        duration_s=round(float(report.duration_s or (ended_at - started_at).total_seconds()), 3),
        ok=report.ok,
        source=source,
        written=report.written,
        unchanged=report.unchanged,
        failed=report.failed,
        invalid=report.invalid,
        calls=int(data.get("calls", 0) or 0) if job == "pollenate" else CALENDAR_CALLS if job == "sync-earnings" else 0,
        pollenated=int(data.get("pollenated", 0) or 0),
        errors=[line[:RECORD_ERROR_CHARS] for line in report.errors[:RECORD_ERRORS]],
        dead_letters=report.failed + report.invalid if job not in ("stream-sync", "backfill") else _stream_dead(data),
        dead_letters_to=dead_letters_to,
    )
    record.tables = _table_counts(job, data, report)
    return record


def _stream_dead(data: Mapping[str, Any]) -> int:
    return int(data.get("dead_letters", 0) or 0)


def _table_counts(job: str, data: Mapping[str, Any], report: JobReport) -> dict[str, TableCounts]:
    if job == "pollenate":
        counts: dict[str, TableCounts] = {}
        for asset in data.get("assets", []):
            for table, entry in (asset.get("tables") or {}).items():
                total = counts.setdefault(table, TableCounts())
                total.written += int(entry.get("written", 0))
                total.unchanged += int(entry.get("unchanged", 0))
                total.failed += int(entry.get("failed", 0)) + (entry.get("outcome") == "failed")
        return counts
    table = str(data.get("table") or "") if job == "load" else JOB_TABLES.get(job, "")
    if not table or job == "schedule-pollenation":
        return {}
    return {table: TableCounts(written=report.written, unchanged=report.unchanged, failed=report.failed)}


def to_item(record: RunRecord, *, retention: timedelta) -> Item:
    """The control-table item of a record: compact (no empty fields), with its TTL."""
    ended = datetime.fromisoformat(record.ended_at.replace("Z", "+00:00"))
    item: Item = {
        "pk": f"run#{record.job}",
        "sk": f"{record.started_at}#{record.run_id}",
        "expiresAt": int((ended + retention).timestamp()),
    }
    for key, value in record.model_dump(mode="json", exclude_defaults=True).items():
        item[key] = _dynamo_value(value)
    item["source"] = record.source
    return item


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> RunRecord:
    data = {k: _plain(v) for k, v in item.items() if k not in ("pk", "sk", "expiresAt", "contentHash")}
    return RunRecord.model_validate(data)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class RunLog:
    """Writes and reads run records in the control table through the store."""

    def __init__(
        self,
        store: ItemStore,
        *,
        metrics: MetricsRecorder | None = None,
        retention: timedelta = timedelta(days=RUN_RETENTION_DAYS),
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.retention = retention
        self.clock = clock

    def write(self, record: RunRecord) -> bool:
        """Keep one record; False (logged, counted) when it could not be written."""
        try:
            outcome = self.store.upsert(
                CONTROL.name, [to_item(record, retention=self.retention)], deadline=Deadline.after(RECORD_DEADLINE_S)
            )
            ok = outcome.ok
            detail = "; ".join(outcome.error_lines()[:1])
        except PollenError as exc:
            ok, detail = False, str(exc)[:200]
        if not ok:
            log.warning("run record not written", extra={"job": record.job, "error": detail})
            if self.metrics is not None:
                self.metrics.count("RunRecordFailed", 1, job=record.job)
        return ok

    def record(
        self,
        report: JobReport,
        *,
        started_at: datetime,
        ended_at: datetime | None = None,
        source: str = "cli",
        dead_letters_to: str | None = None,
    ) -> RunRecord | None:
        """Build and write the record of a job report (nothing for commands that are not job runs)."""
        record = record_for(
            report,
            started_at=started_at,
            ended_at=ended_at or self.clock(),
            source=source,
            dead_letters_to=dead_letters_to,
        )
        if record is not None:
            self.write(record)
        return record

    def runs(self, job: str, *, since: datetime | None = None, limit: int | None = None) -> Iterator[RunRecord]:
        """A job's records, newest first (from ``since`` when given)."""
        lower = f"{timestamp(since)}" if since is not None else "0"
        items = self.store.query(
            CONTROL.name,
            partition=("pk", f"run#{job}"),
            sort_between=(lower, "~"),
            descending=True,
            limit=limit,
        )
        for item in items:
            try:
                yield from_item(item)
            except ValueError as exc:  # a record from another version: skipped, never fatal
                log.info("unreadable run record", extra={"job": job, "error": str(exc)[:200]})

    def last(self, job: str) -> RunRecord | None:
        return next(self.runs(job, limit=1), None)

    def recent(self, jobs: Sequence[str], *, since: datetime) -> dict[str, list[RunRecord]]:
        return {job: list(self.runs(job, since=since)) for job in jobs}
