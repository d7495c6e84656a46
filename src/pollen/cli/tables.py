"""`pollen tables create`."""

from __future__ import annotations

import typer

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.cli import runtime as rt

app = typer.Typer(help="Table administration.", no_args_is_help=True)


@app.command("create")
def create(ctx: typer.Context, json_output: bool = rt.JSON_OPTION) -> None:
    """Create every table, GSI and stream that is missing; safe to repeat."""
    runtime = rt.start(ctx, json_output)
    settings = runtime.settings

    def action() -> None:
        client = make_client("dynamodb", region=settings.region, endpoint_url=settings.dynamodb_endpoint)
        report = ensure_tables(client, settings.table_prefix)
        if not runtime.json_output and not report.created and report.ok:
            runtime.err.print("All tables already exist; nothing to do.")
        rt.finish(runtime, report)

    rt.run(runtime, action)
