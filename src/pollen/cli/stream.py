"""`pollen stream sync [--once]`, `pollen backfill` and `pollen search QUERY`."""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from pollen import wiring
from pollen.cli import runtime as rt
from pollen.errors import ConfigError
from pollen.tables import STREAMED_TABLES

if TYPE_CHECKING:
    from pollen.streams.poller import StreamPoller
    from pollen.streams.sync import StreamSync

app = typer.Typer(help="DynamoDB Streams into the search index.", no_args_is_help=True)


def _poller(runtime: rt.Runtime, sync: StreamSync) -> StreamPoller:
    return wiring.build_poller(runtime.settings, sync)


def _sync(runtime: rt.Runtime) -> StreamSync:
    return wiring.build_stream_sync(runtime.settings, runtime.metrics)


@app.command("sync")
def sync(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Drain what the streams hold now, then exit."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Apply the table streams to the search index (until interrupted, or once with --once)."""
    from pollen.report import Stopwatch

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        stream_sync = _sync(runtime)
        purged = stream_sync.index.purge_tombstones()
        poller = _poller(runtime, stream_sync)
        if once:
            report = poller.run_once()
        else:
            stop: list[bool] = []

            def request_stop(signum: int, frame: FrameType | None) -> None:
                stop.append(True)

            previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                if runtime.interactive:
                    runtime.err.print("Streaming into the search index; Ctrl-C to stop.")
                report = poller.run(lambda: bool(stop))
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        if purged:
            runtime.metrics.count("TombstonesPurged", purged)
        report.duration_s = watch.elapsed_s
        stream_sync.index.close()
        rt.finish(runtime, report)

    rt.run(runtime, action)


def backfill(
    ctx: typer.Context,
    segments: int = typer.Option(4, "--segments", min=1, max=64, help="Parallel Scan segments per table."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Index every current item of the streamed tables (safe while `stream sync` runs)."""
    from pollen.streams.backfill import run_backfill

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        store = wiring.build_store(runtime.settings, runtime.metrics)
        stream_sync = _sync(runtime)
        poller = _poller(runtime, stream_sync)
        report = run_backfill(store, stream_sync, poller.head_sequence, segments=segments)
        stream_sync.index.close()
        rt.finish(runtime, report)

    rt.run(runtime, action)


def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="Words to look for (all must match; the last may be a prefix)."),
    table: str | None = typer.Option(None, "--table", help="Only this table (assets, earningsCalendar, ...)."),
    limit: int = typer.Option(10, "--limit", min=1, max=1000, help="At most this many results."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Search the index; best matches first."""
    runtime = rt.start(ctx, json_output)

    def action() -> None:
        from rich.table import Table

        if table is not None and table not in {t.name for t in STREAMED_TABLES}:
            raise ConfigError(f"--table must be one of {', '.join(t.name for t in STREAMED_TABLES)}")
        index = wiring.build_search_index(runtime.settings, runtime.metrics)
        hits = index.search(query, table=table, limit=limit)
        index.close()
        if runtime.json_output:
            payload: dict[str, Any] = {
                "ok": True,
                "query": query,
                "count": len(hits),
                "hits": [{"table": h.table, "id": h.doc_id, "score": h.score, "document": h.document} for h in hits],
            }
            rt.print_json(runtime, payload)
            raise typer.Exit(0)
        view = Table(title=f"search: {query!r} ({len(hits)} result{'s' if len(hits) != 1 else ''})")
        for column in ("#", "table", "id", "score", "name"):
            view.add_column(column)
        for rank, hit in enumerate(hits, 1):
            name = hit.document.get("name") or hit.document.get("Name") or ""
            view.add_row(str(rank), hit.table, hit.doc_id, f"{hit.score:.4g}", str(name))
        runtime.out.print(view)
        raise typer.Exit(0)

    rt.run(runtime, action)
