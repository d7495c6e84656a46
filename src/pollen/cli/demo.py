"""`pollen demo`: the pipeline end to end on the embedded stack (DynamoDB with streams and the upstream
simulator), then a summary: per step the counts, durations and write units; the upcoming earnings; the
consistency report."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pollen import wiring
from pollen.cli import runtime as rt
from pollen.cli.wiring import plain
from pollen.errors import ConfigError
from pollen.jobs.pipeline import PipelineReport, run_pipeline
from pollen.local.stack import EmbeddedStack
from pollen.report import JobReport
from pollen.settings import Settings

#: How many of the most due assets the demo pollenates.
DEMO_POLLENATE = 20


def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's POLLEN_HOME instead of a temporary folder."),
    count: int = typer.Option(DEMO_POLLENATE, "--pollenate", min=1, max=500, help="How many assets to pollenate."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Run the whole pipeline on the embedded stack and print a summary."""
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        if "simulator" not in inspect.signature(EmbeddedStack).parameters:
            raise ConfigError("the upstream simulator is not installed; pollen demo needs it")
        with tempfile.TemporaryDirectory(prefix="pollen-demo-") as scratch:
            home = runtime.settings.home if keep else Path(scratch)
            stack_options: dict[str, Any] = {"simulator": True}
            with EmbeddedStack(home=home, table_prefix=runtime.settings.table_prefix, **stack_options) as stack:
                # Only the stack: its endpoints, prefix, home and simulator credentials (not the caller's AWS).
                settings = Settings.model_validate(stack.environment())
                store = wiring.build_store(settings, runtime.metrics)
                assets, fundamentals = wiring.build_sources(settings, runtime.metrics)
                if runtime.interactive:
                    status = runtime.err.status("starting")
                    status.start()
                else:
                    status = None
                try:
                    report = run_pipeline(
                        store,
                        assets,
                        fundamentals,
                        metrics=runtime.metrics,
                        pollenate_count=count,
                        on_step=(lambda name: status.update(name)) if status is not None else None,
                    )
                finally:
                    if status is not None:
                        status.stop()
                rt.finish(runtime, report, render=render)

    rt.run(runtime, action)


def render(runtime: rt.Runtime, report: JobReport) -> None:
    assert isinstance(report, PipelineReport)
    steps = Table(title=f"pollen demo: {'ok' if report.ok else 'FAILED'} in {report.duration_s:.1f}s")
    for column in ("step", "ok", "written", "unchanged", "failed", "invalid", "seconds", "write units", "details"):
        steps.add_column(column, justify="left" if column in ("step", "details") else "right")
    for step in report.steps:
        details = ", ".join(f"{k} {v}" for k, v in step.details.items() if v not in (None, 0, ""))
        steps.add_row(
            step.step,
            "yes" if step.ok else "NO",
            str(step.written),
            str(step.unchanged),
            str(step.failed),
            str(step.invalid),
            f"{step.duration_s:.1f}",
            f"{step.write_units:,.0f}",
            details,
        )
    runtime.out.print(steps)
    upcoming = Table(title=f"upcoming earnings (next 14 days): {len(report.upcoming_earnings)}")
    for column in ("date", "symbol", "name", "estimate", "time"):
        upcoming.add_column(column)
    for item in report.upcoming_earnings[:15]:
        row = plain(item)
        upcoming.add_row(
            str(row.get("earnings_date", "")),
            str(row.get("asset_symbol", "")),
            str(row.get("name", ""))[:40],
            str(row.get("estimate", "")),
            str(row.get("time_of_the_day", "")),
        )
    runtime.out.print(upcoming)
    consistency = report.consistency
    runtime.out.print(
        f"consistency: {consistency.get('assets_checked', 0)} assets, {consistency.get('calendar_checked', 0)} "
        f"calendar items checked; {consistency.get('duplicate_symbols', 0)} duplicate symbols, "
        f"{consistency.get('missing_attributes', 0)} items missing attributes, "
        f"{consistency.get('stale_calendar', 0)} stale reports"
    )
    for error in report.errors:
        runtime.err.print(f"[red]error:[/red] {error}", highlight=False)
