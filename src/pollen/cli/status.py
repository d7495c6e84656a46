"""`pollen status [--html FILE] [--at TIME]`: the whole system at a glance (see pollen.jobs.status)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pollen import wiring
from pollen.cli import runtime as rt
from pollen.domain.values import parse_timestamp

if TYPE_CHECKING:
    from pollen.jobs.common import Clock
    from pollen.jobs.status import StatusReport
    from pollen.report import JobReport


def status(
    ctx: typer.Context,
    html_file: Path | None = typer.Option(
        None, "--html", help="Also write one self-contained HTML page with the charts to this file."
    ),
    at: str | None = typer.Option(
        None, "--at", help="Evaluate ages and due dates as of this time (YYYY-MM-DDTHH:MM:SSZ), e.g. a simulated day."
    ),
    snapshot: bool = typer.Option(
        True, "--snapshot/--no-snapshot", help="Keep this status's figures as a run record (the charts over time)."
    ),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Freshness, pollination, runs, stream sync and one health line, read cheaply from the tables."""
    moment: dt.datetime | None = None
    if at is not None:
        try:
            moment = parse_timestamp(at)
        except ValueError:
            rt.fail(f"--at: {at!r:.40} is not a timestamp like 2025-01-06T12:00:00Z", json_output=json_output)
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        clock: Clock | None = (lambda: moment) if moment is not None else None  # None: the wall clock
        collector = wiring.build_status(runtime.settings, runtime.metrics, clock=clock)
        if runtime.interactive:
            with runtime.err.status("reading the tables"):
                report = collector.collect(snapshot=snapshot)
        else:
            report = collector.collect(snapshot=snapshot)
        if html_file is not None:
            write_page(html_file, report)
            runtime.err.print(f"page written: {html_file} (open it in a browser: file://{html_file.resolve()})")
        rt.finish(runtime, report, render=render)

    rt.run(runtime, action)


def write_page(path: Path, report: StatusReport) -> None:
    """Write the page atomically (a reader never sees half a page)."""
    from pollen.cli.status_page import render_page

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", suffix=".html", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render_page(report))
        Path(tmp).chmod(0o644)  # mkstemp's 0600 would hide the page from other local users and web servers
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render(runtime: rt.Runtime, report: JobReport) -> None:
    from rich.table import Table

    from pollen.jobs.status import StatusReport, format_duration

    assert isinstance(report, StatusReport)
    out = runtime.out
    fresh = report.freshness
    tables = Table(title=f"freshness at {report.generated_at}")
    for column in ("table", "items", "newest lastSyncDate", "oldest lastSyncDate", "covers"):
        tables.add_column(column, justify="right" if column == "items" else "left")
    for entry in fresh.tables:
        tables.add_row(
            entry.table,
            "" if entry.items is None else f"{entry.items:,}",
            entry.newest_sync or "",
            entry.oldest_sync or "",
            entry.scope,
        )
    out.print(tables)
    out.print(
        f"assets: {fresh.assets_active:,} active, {fresh.assets_inactive:,} inactive; "
        f"calendar: {fresh.calendar_first or '-'} to {fresh.calendar_last or '-'}"
    )
    p = report.pollination
    pollination = Table(title="pollination", show_header=False)
    pollination.add_column("figure", style="bold")
    pollination.add_column("value")
    coverage = f"{p.coverage:.1%}" if p.coverage is not None else "n/a"
    pollination.add_row("pollenated", f"{p.pollenated:,} of {p.active:,} active ({coverage})")
    pollination.add_row(
        "fundamentals age (days)",
        f"median {p.age_median_days}, p90 {p.age_p90_days}, oldest {p.age_oldest_days}"
        if p.age_median_days is not None
        else "n/a",
    )
    pollination.add_row(
        "due now",
        f"{p.backlog:,}: earnings passed {p.due.earnings:,}, never pollenated {p.due.never_pollenated:,}, "
        f"stale {p.due.stale:,}",
    )
    measured = f"measured over {p.calls_measured_over}" if p.calls_measured_over else "assumed"
    pollination.add_row("calls per pollenation", f"{p.calls_per_pollenation} ({measured})")
    pollination.add_row(
        "backlog clears in",
        f"{format_duration(p.eta_s) if p.eta_s is not None else 'n/a'} at {p.pollenations_per_day:,.0f} "
        f"pollenations/day ({p.quota_per_minute}/min, {p.quota_per_day:,}/day, concurrency {p.concurrency})",
    )
    out.print(pollination)
    runs = Table(title="last runs")
    for column in ("job", "started", "outcome", "seconds", "source", "first error"):
        runs.add_column(column)
    for job, last in report.runs.last.items():
        runs.add_row(
            job,
            last.started_at,
            "ok" if last.ok else "[red]FAILED[/red]",
            f"{last.duration_s:.1f}",
            last.source,
            (last.errors or [""])[0][:80],
        )
    out.print(runs)
    waiting = ", ".join(f"{d.waiting:,} in {d.where}" for d in report.runs.dead_letters) or "0"
    out.print(f"failed runs in 24 h: {report.runs.failures_24h}; dead letters waiting: {waiting}")
    if report.streams is not None:
        streams = Table(title="stream sync (local poller)")
        for column in ("table", "checkpoint", "pending", "lag s"):
            streams.add_column(column)
        for s in report.streams:
            streams.add_row(s.table, s.checkpoint or "-", f"{s.pending:,}{'+' if s.capped else ''}", f"{s.lag_s:.0f}")
        out.print(streams)
    colour = {"ok": "green", "attention": "yellow", "failing": "red"}[report.health]
    out.print(f"[{colour}]{report.health_line}[/{colour}]", highlight=False)
