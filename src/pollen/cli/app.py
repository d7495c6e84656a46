"""The `pollen` command: a thin shell over the jobs (CONTRACT.md, "Command line")."""

from __future__ import annotations

from pathlib import Path

import typer

from pollen.cli import data, deadletters, stream, sync, tables
from pollen.cli import runtime as rt
from pollen.cli.check import check
from pollen.cli.demo import demo
from pollen.cli.local import local
from pollen.cli.pollenate import pollenate
from pollen.cli.queries import assets, earnings
from pollen.cli.status import status
from pollen.process import skip_final_collections

app = typer.Typer(
    name="pollen",
    help="Keep a DynamoDB market-data store in sync with Alpaca and Alpha Vantage, mirrored into a search index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def configure(
    ctx: typer.Context,
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="DynamoDB and Streams endpoint (AWS_ENDPOINT_URL_DYNAMODB)."
    ),
    region: str | None = typer.Option(None, "--region", help="AWS region (AWS_REGION)."),
    table_prefix: str | None = typer.Option(None, "--table-prefix", help="Table name prefix (POLLEN_TABLE_PREFIX)."),
    home: Path | None = typer.Option(None, "--home", help="Folder for local state (POLLEN_HOME)."),
    search_url: str | None = typer.Option(None, "--search-url", help="OpenSearch endpoint (POLLEN_SEARCH_URL)."),
    log_level: str | None = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Global flags override the environment variables of the same meaning."""
    ctx.obj = rt.Overrides(
        {
            "dynamodb_endpoint": endpoint_url,
            "streams_endpoint": endpoint_url,
            "region": region,
            "table_prefix": table_prefix,
            "home": home,
            "search_url": search_url,
            "log_level": log_level.upper() if log_level else None,
        }
    )


app.add_typer(tables.app, name="tables")
app.add_typer(sync.app, name="sync")
app.command("pollenate")(pollenate)
app.command("assets")(assets)
app.command("earnings")(earnings)
app.command("check")(check)
app.add_typer(stream.app, name="stream")
app.command("backfill")(stream.backfill)
app.command("search")(stream.search)
app.command("local")(local)
app.command("demo")(demo)
app.command("load")(data.load)
app.command("export")(data.export)
app.add_typer(deadletters.app, name="dead-letters")
app.command("status")(status)


def main() -> None:
    """The ``pollen`` command: runs one command, then the process ends."""
    try:
        app()
    finally:
        skip_final_collections()
