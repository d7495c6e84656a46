"""`pollen assets [--status] [--limit]` and `pollen earnings [--from] [--to]`: reads through the GSIs."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import typer

from pollen import wiring
from pollen.cli import display
from pollen.cli import runtime as rt
from pollen.tables import ASSETS

if TYPE_CHECKING:
    from pollen.report import JobReport

STATUSES = ("active", "inactive")
#: `pollen earnings` without --to: the next 14 days.
DEFAULT_DAYS = 14


def assets(
    ctx: typer.Context,
    status: str = typer.Option("active", "--status", help="active or inactive."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="At most this many assets."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Assets by status via `status-index`, highest volume first."""
    if status not in STATUSES:
        rt.fail(f"unknown status {status!r}; use active or inactive", json_output=json_output)
    from pollen.cli.reports import AssetsListing
    from pollen.report import Stopwatch

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        items = wiring.build_store(runtime.settings, runtime.metrics).query(
            ASSETS.name, partition=("status", status), index="status-index", descending=True, limit=limit
        )
        rows = [display.plain(i) for i in items]
        report = AssetsListing(status=status, count=len(rows), assets=rows, duration_s=watch.elapsed_s)
        rt.finish(runtime, report, render=_render_assets)

    rt.run(runtime, action)


def _render_assets(runtime: rt.Runtime, report: JobReport) -> None:
    from rich.table import Table

    from pollen.cli.reports import AssetsListing

    assert isinstance(report, AssetsListing)
    table = Table(title=f"{report.count} {report.status} assets by volume")
    for column in ("symbol", "name", "class", "exchange", "volume", "lastPollenationDate", "lastSyncDate"):
        table.add_column(column, justify="right" if column == "volume" else "left")
    for item in report.assets:
        table.add_row(
            str(item.get("symbol", "")),
            str(item.get("name", ""))[:40],
            str(item.get("class", "")),
            str(item.get("exchange", "")),
            f"{item.get('volume', 0):,}",
            str(item.get("lastPollenationDate", "")),
            str(item.get("lastSyncDate", "")),
        )
    runtime.out.print(table)


def _parse_day(value: str | None, name: str, default: date, json_output: bool) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        rt.fail(f"{name} must be a date (YYYY-MM-DD), not {value!r:.40}", json_output=json_output)


def earnings(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--from", help="First report date (default: today)."),
    end: str | None = typer.Option(None, "--to", help="Last report date (default: 14 days after --from)."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Report dates in a range via `upcoming-earnings-index` (default: the next 14 days)."""
    first = _parse_day(start, "--from", date.today(), json_output)
    last = _parse_day(end, "--to", first + timedelta(days=DEFAULT_DAYS), json_output)
    if last < first:
        rt.fail("--to is before --from", json_output=json_output)
    if (last - first).days > 3660:
        rt.fail("the range is longer than ten years", json_output=json_output)
    from pollen.cli.reports import EarningsListing
    from pollen.jobs.sync_earnings import earnings_between
    from pollen.report import Stopwatch

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        found = sorted(
            earnings_between(wiring.build_store(runtime.settings, runtime.metrics), first, last),
            key=lambda i: (str(i.get("earnings_date")), str(i.get("asset_symbol"))),
        )
        rows = [display.plain(i) for i in found]
        report = EarningsListing(
            start=first.isoformat(), end=last.isoformat(), count=len(rows), earnings=rows, duration_s=watch.elapsed_s
        )
        rt.finish(runtime, report, render=_render_earnings)

    rt.run(runtime, action)


def _render_earnings(runtime: rt.Runtime, report: JobReport) -> None:
    from rich.table import Table

    from pollen.cli.reports import EarningsListing

    assert isinstance(report, EarningsListing)
    table = Table(title=f"{report.count} earnings reports from {report.start} to {report.end}")
    for column in ("date", "symbol", "name", "fiscal period", "estimate", "time"):
        table.add_column(column)
    for item in report.earnings:
        table.add_row(
            str(item.get("earnings_date", "")),
            str(item.get("asset_symbol", "")),
            str(item.get("name", ""))[:40],
            str(item.get("fiscal_date_ending", "")),
            str(item.get("estimate", "")),
            str(item.get("time_of_the_day", "")),
        )
    runtime.out.print(table)
