"""`pollen sync assets` and `pollen sync earnings [--horizon]`."""

from __future__ import annotations

import contextlib

import typer

from pollen import wiring
from pollen.cli import display
from pollen.cli import runtime as rt

app = typer.Typer(help="Synchronise upstream data into the tables.", no_args_is_help=True)


@app.command("assets")
def sync_assets(ctx: typer.Context, force: bool = rt.FORCE_OPTION, json_output: bool = rt.JSON_OPTION) -> None:
    """SyncAssets: Alpaca's active assets into `assets` (volumes, inactive assets, consistency check)."""
    from pollen.jobs.sync_assets import SyncAssets

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        store = wiring.build_store(runtime.settings, runtime.metrics)
        assets, _ = wiring.build_sources(runtime.settings, runtime.metrics)
        with display.progress(runtime, "writing assets") as update:
            job = SyncAssets(store, assets, metrics=runtime.metrics, progress=update, force_lease=force)
            report = job.run()
        rt.finish(runtime, report)

    rt.run(runtime, action)


@app.command("earnings")
def sync_earnings(
    ctx: typer.Context,
    horizon: str = typer.Option("3month", "--horizon", help="3month, 6month or 12month."),
    force: bool = rt.FORCE_OPTION,
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """SyncEarningsCalendar: Alpha Vantage's EARNINGS_CALENDAR into `earningsCalendar`."""
    from pollen.jobs.sync_earnings import HORIZONS, SyncEarningsCalendar

    if horizon not in HORIZONS:
        rt.fail(f"unknown horizon {horizon!r}; use one of {', '.join(HORIZONS)}", json_output=json_output)
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        store = wiring.build_store(runtime.settings, runtime.metrics)
        _, fundamentals = wiring.build_sources(runtime.settings, runtime.metrics)
        with runtime.err.status("syncing the earnings calendar") if runtime.interactive else contextlib.nullcontext():
            job = SyncEarningsCalendar(store, fundamentals, metrics=runtime.metrics, force_lease=force)
            report = job.run(horizon)
        rt.finish(runtime, report)

    rt.run(runtime, action)
