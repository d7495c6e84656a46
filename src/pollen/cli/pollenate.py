"""`pollen pollenate SYMBOL... | --next N`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from pollen import wiring
from pollen.cli import display
from pollen.cli import runtime as rt
from pollen.domain.values import is_valid_symbol

if TYPE_CHECKING:
    from pollen.jobs.pollenate import AssetResult, PollenateReport
    from pollen.report import JobReport


def pollenate(
    ctx: typer.Context,
    symbols: list[str] | None = typer.Argument(None, help="Symbols to pollenate (or use --next)."),
    next_count: int | None = typer.Option(None, "--next", min=1, max=10_000, help="Pollenate the N most due assets."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """PollenateAsset: fundamentals into five tables, then the asset's sort key moves."""
    from pollen.jobs.pollenate import PollenateAsset
    from pollen.jobs.scheduler import pollenate_next

    if symbols and next_count is not None:
        rt.fail("give either SYMBOL... or --next N, not both", json_output=json_output)
    if not symbols and next_count is None:
        rt.fail("give SYMBOL... or --next N", json_output=json_output)
    bad = [s for s in symbols or [] if not is_valid_symbol(s)]
    if bad:
        rt.fail(f"invalid symbol {bad[0]!r:.40}", json_output=json_output)
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        store = wiring.build_store(runtime.settings, runtime.metrics)
        _, fundamentals = wiring.build_sources(runtime.settings, runtime.metrics)
        with display.progress(runtime, "pollenating") as update:
            done: list[AssetResult] = []

            def on_result(result: AssetResult) -> None:
                done.append(result)
                if update is not None:
                    update(len(done), len(symbols or []) or next_count or 0)

            report: PollenateReport
            if next_count is not None:
                report = pollenate_next(store, fundamentals, next_count, metrics=runtime.metrics, on_result=on_result)
            else:
                job = PollenateAsset(store, fundamentals, metrics=runtime.metrics)
                report = job.run(list(dict.fromkeys(symbols or [])), on_result=on_result)
        rt.finish(runtime, report, render=render)

    rt.run(runtime, action)


SHORT_NAMES = {
    "companyOverview": "overview",
    "earnings": "earnings",
    "cashFlow": "cash",
    "balanceSheet": "balance",
    "incomeStatement": "income",
}


def render(runtime: rt.Runtime, report: JobReport) -> None:
    from rich.table import Table

    from pollen.jobs.pollenate import TABLE_ORDER, PollenateReport
    from pollen.jobs.scheduler import PollenateNextReport

    assert isinstance(report, PollenateReport)
    table = Table(title=f"pollenate: {'ok' if report.ok else 'FAILED'} in {report.duration_s:.1f}s")
    table.add_column("symbol", style="bold")
    if isinstance(report, PollenateNextReport):
        table.add_column("why")
    table.add_column("status")
    for name in TABLE_ORDER:
        table.add_column(SHORT_NAMES.get(name, name))
    table.add_column("calls", justify="right")
    reasons = {d.symbol: d.reason for d in report.schedule} if isinstance(report, PollenateNextReport) else {}
    for result in report.assets:
        row = [result.symbol]
        if isinstance(report, PollenateNextReport):
            row.append(reasons.get(result.symbol, ""))
        row.append(result.status)
        row += [_cell(result, name) for name in TABLE_ORDER]
        row.append(str(result.calls))
        table.add_row(*row)
    runtime.out.print(table)
    runtime.out.print("tables: +N items written, = unchanged, skip (quarter already stored), none (no data)")
    runtime.out.print(
        f"pollenated {report.pollenated}, stays due {report.stays_due}, written {report.written}, "
        f"unchanged {report.unchanged}, invalid {report.invalid}, API calls {report.calls} "
        f"(skipped {report.calls_skipped})"
    )
    if report.stopped:
        runtime.err.print(f"stopped ({report.stopped}); not started: {', '.join(report.not_started)}")
    for error in report.errors:
        runtime.err.print(f"[red]error:[/red] {error}", highlight=False)


def _cell(result: AssetResult, table: str) -> str:
    entry = result.tables.get(table)
    if entry is None:
        return ""
    if entry.outcome == "written":
        return f"+{entry.written}"
    return {"unchanged": "=", "skipped": "skip", "no data": "none"}.get(entry.outcome, entry.outcome.upper())
