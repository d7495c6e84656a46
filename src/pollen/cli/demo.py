"""`pollen demo`: the pipeline end to end on the embedded stack (DynamoDB with streams and the upstream
simulator), then a summary: per step the counts, durations and write units; the upcoming earnings; the
consistency report."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pollen import wiring
from pollen.cli import runtime as rt
from pollen.cli.display import plain
from pollen.cli.status import write_page
from pollen.local import require_local_extra

if TYPE_CHECKING:
    from pollen.jobs.pipeline import PipelineReport
    from pollen.local.stack import EmbeddedStack
    from pollen.observability import MetricsRecorder
    from pollen.ports import ItemStore
    from pollen.report import JobReport
    from pollen.settings import Settings

#: How many of the most due assets the demo pollenates.
DEMO_POLLENATE = 20
#: The simulator's full market. With pollen's motopatch the embedded server answers Queries without walking the
#: whole table, so the full market's demo runs in under a minute on two quiet cores (bench/RESULTS.md).
DEMO_ASSETS = 12_000
#: The status page a kept demo leaves in its POLLEN_HOME.
STATUS_PAGE = "status.html"


def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's POLLEN_HOME instead of a temporary folder."),
    count: int = typer.Option(DEMO_POLLENATE, "--pollenate", min=1, max=500, help="How many assets to pollenate."),
    asset_count: int = typer.Option(
        DEMO_ASSETS, "--assets", min=100, max=100_000, help="Assets in the simulated market."
    ),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Run the whole pipeline on the embedded stack and print a summary."""
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        require_local_extra("pollen demo")
        from pollen.jobs.pipeline import run_pipeline
        from pollen.local.stack import EmbeddedStack  # the optional extra pollen[local]
        from pollen.settings import Settings

        with tempfile.TemporaryDirectory(prefix="pollen-demo-") as scratch:
            home = runtime.settings.home if keep else Path(scratch)
            stack_options: dict[str, Any] = {"simulator": True, "simulator_options": {"asset_count": asset_count}}
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
                clock = simulated_clock(stack)
                try:
                    report = run_pipeline(
                        store,
                        assets,
                        fundamentals,
                        metrics=runtime.metrics,
                        pollenate_count=count,
                        clock=clock,
                        extra_steps=[("stream sync", stream_step(settings, runtime.metrics))],
                        on_step=(lambda name: status.update(name)) if status is not None else None,
                        runs=wiring.build_run_log(settings, runtime.metrics, store, clock),
                    )
                    if status is not None:
                        status.update("status")
                    add_status(report, settings, runtime.metrics, clock, store, page=home if keep else None)
                finally:
                    if status is not None:
                        status.stop()
                rt.finish(runtime, report, render=render)

    rt.run(runtime, action)


def add_status(
    report: PipelineReport,
    settings: Settings,
    metrics: MetricsRecorder,
    clock: Callable[[], dt.datetime],
    store: ItemStore,
    *,
    page: Path | None,
) -> None:
    """End the summary with `pollen status`'s health line; with a kept home, write its page there too."""
    status = wiring.build_status(settings, metrics, clock=clock, store=store).collect()
    report.health_line = status.health_line
    if page is not None:
        path = page / STATUS_PAGE
        write_page(path, status)
        report.status_page = str(path.resolve())


def stream_step(settings: Settings, metrics: MetricsRecorder) -> Callable[[], JobReport]:
    """Mirror every change the jobs made (the three streamed tables) into the embedded search index."""
    from pollen.report import Stopwatch

    def run() -> JobReport:
        watch = Stopwatch()
        sync = wiring.build_stream_sync(settings, metrics)
        try:
            report = wiring.build_poller(settings, sync).run_once()
        finally:
            sync.index.close()
        report.duration_s = watch.elapsed_s
        return report

    return run


def simulated_clock(stack: EmbeddedStack) -> Callable[[], dt.datetime]:
    """The simulator's market lives on its own calendar (day 0 is a fixed date, so runs are reproducible): the demo
    runs at that date, at the current time of day."""
    from pollen.local.simulator.market import START_DATE

    assert stack.simulator is not None
    today = START_DATE + dt.timedelta(days=stack.simulator.config().day)

    def clock() -> dt.datetime:
        return dt.datetime.combine(today, dt.datetime.now(dt.UTC).time(), dt.UTC)

    return clock


def render(runtime: rt.Runtime, report: JobReport) -> None:
    from rich.table import Table

    from pollen.jobs.pipeline import PipelineReport

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
    runtime.out.print(report.health_line, highlight=False)
    if report.status_page:
        runtime.out.print(f"status page: open {Path(report.status_page).as_uri()} in a browser", highlight=False)
    else:
        runtime.out.print(
            f"status page: `pollen demo --keep` writes it to POLLEN_HOME/{STATUS_PAGE}; on a running stack "
            "`pollen status --html FILE` writes it anywhere",
            highlight=False,
        )
