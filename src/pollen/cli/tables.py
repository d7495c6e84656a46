"""`pollen tables create`."""

from __future__ import annotations

import typer

from pollen import wiring
from pollen.cli import runtime as rt

app = typer.Typer(help="Table administration.", no_args_is_help=True)


@app.command("create")
def create(ctx: typer.Context, json_output: bool = rt.JSON_OPTION) -> None:
    """Create every table, GSI and stream that is missing; safe to repeat."""
    runtime = rt.start(ctx, json_output)
    settings = runtime.settings

    def action() -> None:
        report = wiring.build_table_creator(settings)()
        if not runtime.json_output and not report.created and report.ok:
            runtime.err.print("All tables already exist; nothing to do.")
        rt.finish(runtime, report)

    rt.run(runtime, action)
