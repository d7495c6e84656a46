"""The whole pipeline in order (what `pollen demo` runs): SyncAssets, SyncEarningsCalendar, pollenate the N most
due, any further steps (stream sync), then the upcoming earnings and a consistency report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from pollen.deadline import Deadline
from pollen.jobs.check import ConsistencyCheck
from pollen.jobs.common import Clock, utc_now
from pollen.jobs.runs import RunLog
from pollen.jobs.scheduler import pollenate_next
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import Horizon, SyncEarningsCalendar, earnings_between
from pollen.observability import MetricsRecorder
from pollen.ports import AssetSource, FundamentalsSource, ItemStore
from pollen.report import JobReport, Stopwatch

log = logging.getLogger(__name__)

#: The counter the store records consumed write capacity under (summed over every dimension).
WRITE_UNITS_METRIC = "WriteCapacityUnits"

Step = tuple[str, Callable[[], JobReport]]


class StepSummary(BaseModel):
    step: str
    ok: bool
    written: int
    unchanged: int
    failed: int
    invalid: int
    duration_s: float
    write_units: float
    errors: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class PipelineReport(JobReport):
    job: str = "demo"
    steps: list[StepSummary] = Field(default_factory=list)
    upcoming_earnings: list[dict[str, Any]] = Field(default_factory=list)
    consistency: dict[str, Any] = Field(default_factory=dict)
    #: `pollen status`'s one-line health after the run, and where its page was written.
    health_line: str = ""
    status_page: str | None = None

    def add(self, name: str, report: JobReport, write_units: float, details: dict[str, Any]) -> None:
        self.steps.append(
            StepSummary(
                step=name,
                ok=report.ok,
                written=report.written,
                unchanged=report.unchanged,
                failed=report.failed,
                invalid=report.invalid,
                duration_s=report.duration_s,
                write_units=round(write_units, 1),
                errors=report.errors[:5],
                details=details,
            )
        )
        self.written += report.written
        self.unchanged += report.unchanged
        self.failed += report.failed
        self.invalid += report.invalid
        if not report.ok:
            self.ok = False
            for line in report.errors[:5]:
                self.add_error(f"{name}: {line}")


def run_pipeline(
    store: ItemStore,
    assets: AssetSource,
    fundamentals: FundamentalsSource,
    *,
    metrics: MetricsRecorder,
    clock: Clock = utc_now,
    pollenate_count: int = 20,
    horizon: Horizon = "3month",
    extra_steps: Sequence[Step] = (),
    upcoming_days: int = 14,
    on_step: Callable[[str], None] | None = None,
    deadline: Deadline | None = None,
    runs: RunLog | None = None,
) -> PipelineReport:
    watch = Stopwatch()
    report = PipelineReport()

    def units() -> float:
        return metrics.total(WRITE_UNITS_METRIC)

    def step(name: str, action: Callable[[], JobReport], details: Callable[[JobReport], dict[str, Any]]) -> None:
        if on_step is not None:
            on_step(name)
        before = units()
        started = clock()
        result = action()
        if runs is not None:
            runs.record(result, started_at=started, ended_at=clock(), source="demo")
        report.add(name, result, units() - before, details(result))
        log.info("pipeline step finished", extra={"step": name, "ok": result.ok, "duration_s": result.duration_s})

    step(
        "sync assets",
        lambda: SyncAssets(store, assets, metrics=metrics, clock=clock).run(deadline),
        lambda r: {k: getattr(r, k) for k in ("fetched", "new", "deactivated", "volumes_known")},
    )
    step(
        "sync earnings",
        lambda: SyncEarningsCalendar(store, fundamentals, metrics=metrics, clock=clock).run(horizon, deadline),
        lambda r: {k: getattr(r, k) for k in ("rows", "duplicates", "rescheduled", "stale_removed")},
    )
    step(
        f"pollenate next {pollenate_count}",
        lambda: pollenate_next(store, fundamentals, pollenate_count, metrics=metrics, clock=clock, deadline=deadline),
        lambda r: {k: getattr(r, k) for k in ("pollenated", "stays_due", "calls", "calls_skipped", "stopped")},
    )
    for name, action in extra_steps:
        step(name, action, lambda r: {})

    today = clock().date()
    report.upcoming_earnings = list(earnings_between(store, today, today + timedelta(days=upcoming_days)))
    check = ConsistencyCheck(store, metrics=metrics, clock=clock).run(repair=False)
    report.consistency = check.model_dump(
        include={
            "ok",
            "assets_checked",
            "calendar_checked",
            "duplicate_symbols",
            "missing_attributes",
            "stale_calendar",
            "bad_calendar",
            "defects",
        }
    )
    if not check.ok:
        report.ok = False
        report.add_error(f"consistency check found {len(check.defects)} defects")
    report.duration_s = watch.elapsed_s
    return report
