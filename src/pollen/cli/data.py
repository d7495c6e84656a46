"""`pollen load TABLE FILE` and `pollen export TABLE FILE`: JSON Lines in and out of a table, numbers exact."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pollen import wiring
from pollen.adapters.dynamodb.codec import CodecError, dumps_plain, loads_plain
from pollen.cli import runtime as rt
from pollen.deadline import Deadline
from pollen.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from rich.progress import Progress

    from pollen.adapters.dynamodb.lease import JobLease
    from pollen.adapters.dynamodb.store import DynamoStore
    from pollen.ports import DeadLetterOperation
    from pollen.report import JobReport

log = logging.getLogger(__name__)


def _progress(runtime: rt.Runtime, label: str, total: int | None) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=runtime.err,
        transient=True,
        disable=not runtime.err.is_terminal,
    )
    progress.add_task(label, total=total)
    return progress


@dataclass
class LoadFile:
    """A file's items and what to do with them: ``put`` for a plain JSON Lines file or a dead-letter file of puts,
    ``delete`` for a dead-letter file of deletes (its lines are keys)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    operation: DeadLetterOperation = "put"
    #: The table named by a dead-letter file's header (None for a plain file).
    table: str | None = None


def read_items(path: Path, report: JobReport) -> list[dict[str, Any]]:
    """Plain JSON items, one per line; a bad line is counted invalid and named in the report."""
    return read_load_file(path, report).items


def read_load_file(path: Path, report: JobReport) -> LoadFile:
    """Read a JSON Lines file line by line. A bad line (bytes that are not UTF-8, not JSON, nested beyond what
    can be parsed, not an object) is counted invalid and named by its line number; the other lines are kept.
    A first line that is a dead-letter header (see :mod:`pollen.adapters.deadletters`) sets the
    operation."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    loaded = LoadFile()
    with handle:
        seen_content = False
        for number, raw in enumerate(handle, start=1):
            try:
                value = _decode_line(raw)
                if value is _BLANK:
                    continue
                first, seen_content = not seen_content, True
                _take(loaded, value, first=first)
            except _BadLine as exc:
                report.invalid += 1
                report.add_error(f"{path.name} line {number}: {exc.reason}")
    return loaded


class _BadLine(Exception):
    """A line `pollen load` cannot take, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: What :func:`_decode_line` returns for a blank line (skipped, not invalid).
_BLANK = object()


def _decode_line(raw: bytes) -> Any:
    """A line's JSON value (numbers exact), or :data:`_BLANK`; raises _BadLine when it is neither."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not UTF-8 (byte {exc.start + 1} of the line)") from None
    if not line.strip():
        return _BLANK
    try:
        return loads_plain(line)
    except (ValueError, CodecError) as exc:
        raise _BadLine(f"not valid JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise _BadLine("nested too deeply") from None


def _take(loaded: LoadFile, value: Any, *, first: bool) -> None:
    """Keep an item, or take a dead-letter header (only as the file's first line)."""
    from pollen.adapters.deadletters import read_header

    try:
        header = read_header(value)
    except CodecError as exc:
        raise _BadLine(exc.message) from None
    if header is not None:
        if not first:
            raise _BadLine("a dead-letter header is only valid on the first line")
        loaded.operation, loaded.table = header
        return
    if not isinstance(value, dict):
        raise _BadLine("not a JSON object")
    loaded.items.append(value)


def load(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="Table name (prefix added), or any existing table."),
    file: Path = typer.Argument(..., help="JSON Lines file of plain JSON items."),
    deadline_s: float | None = typer.Option(None, "--deadline", help="Stop sending after this many seconds."),
    force: bool = rt.FORCE_OPTION,
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Bulk upsert of a JSON Lines file into a table (unchanged items are not rewritten)."""
    from pollen.adapters.deadletters import JsonlDeadLetters
    from pollen.cli.reports import LoadReport
    from pollen.report import Stopwatch, note_lease

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        report = LoadReport(job="load", table=table)
        loaded = read_load_file(file, report)
        items = loaded.items
        if loaded.table is not None and loaded.table != table:
            log.warning("dead letters of another table", extra={"file_table": loaded.table, "table": table})
        store = wiring.build_store(runtime.settings, runtime.metrics)
        deadline = Deadline.after(deadline_s)
        with store:
            store.require_table(table)  # no lease taken, nothing dead-lettered for a table that is not there
            lease = _load_lease(store, table, force=force)
            with lease, _progress(runtime, f"load {table}", len(items)) as bar:
                task = bar.task_ids[0]
                if loaded.operation == "delete":
                    report.operation = "delete"
                    outcome = store.delete(table, items, deadline=deadline)
                    bar.advance(task, len(items))
                else:
                    outcome = store.upsert(table, items, deadline=deadline, progress=lambda n: bar.advance(task, n))
        outcome.add_to(report)
        report.deadline_reached = outcome.deadline_reached
        if isinstance(store.dead_letters, JsonlDeadLetters):
            report.dead_letters = [str(p) for p in store.dead_letters.files()]
        report.ok = report.ok and report.invalid == 0 and report.failed == 0
        note_lease(report, lease)
        report.duration_s = watch.elapsed_s
        rt.finish(runtime, report)

    rt.run(runtime, action)


class _NoLease:
    lost: str | None = None
    notes: list[str] = []

    def __enter__(self) -> _NoLease:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


def _load_lease(store: DynamoStore, table: str, *, force: bool) -> JobLease | _NoLease:
    """Two loads of one table never overlap (a short lease, renewed while the load runs; a crashed load's lease is
    taken over at once on its host); without pollen's control table the load runs unleased."""
    try:
        store.table_info("pollenControl")
        store.get("pollenControl", {"pk": f"lease#load:{table}", "sk": "lease"})
    except NotFound:
        log.warning("no pollenControl table: loading without a lease", extra={"table": table})
        return _NoLease()
    return store.lease(f"load:{table}", force=force)


def export(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="Table name (prefix added), or any existing table."),
    file: Path = typer.Argument(..., help="JSON Lines file to write."),
    segments: int = typer.Option(4, "--segments", min=1, max=64, help="Parallel scan segments."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Every item of a table to JSON Lines, in the form `pollen load` reads."""
    from pollen.cli.reports import ExportReport
    from pollen.report import Stopwatch

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        report = ExportReport(job="export", table=table, file=str(file))
        store = wiring.build_store(runtime.settings, runtime.metrics)
        try:
            handle = file.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {file}: {exc.strerror or exc}") from None
        with store, handle, _progress(runtime, f"export {table}", None) as bar:
            task = bar.task_ids[0]
            for item in _items(store, table, segments):
                handle.write(dumps_plain(item) + "\n")
                report.written += 1
                bar.advance(task, 1)
        report.duration_s = watch.elapsed_s
        rt.finish(runtime, report)

    rt.run(runtime, action)


def _items(store: DynamoStore, table: str, segments: int) -> Iterator[dict[str, Any]]:
    yield from store.scan(table, segments=segments)
