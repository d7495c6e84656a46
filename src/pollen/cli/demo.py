"""`pollen demo`: the pipeline end to end on the embedded stack, then a summary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.table import Table

from pollen.cli import runtime as rt
from pollen.local.stack import EmbeddedStack


def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's POLLEN_HOME instead of a temporary folder."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Run the whole pipeline on the embedded stack and print a summary."""
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        with tempfile.TemporaryDirectory(prefix="pollen-demo-") as scratch:
            home = runtime.settings.home if keep else Path(scratch)
            with EmbeddedStack(home=home, table_prefix=runtime.settings.table_prefix) as stack:
                report = stack.tables_report
                assert report is not None
                report.job = "demo"
                if not runtime.json_output:
                    table = Table(title="pollen demo: embedded stack")
                    table.add_column("step")
                    table.add_column("result")
                    table.add_row("DynamoDB (moto, streams)", stack.dynamodb.endpoint)
                    table.add_row("tables created", ", ".join(report.created))
                    runtime.out.print(table)
                rt.finish(runtime, report, render=lambda _rt, _rep: None)

    rt.run(runtime, action)
