"""What every command shares: settings from the environment plus flags, logging, metrics, output and exit codes.

Exit status (CONTRACT.md): 0 success; 1 the command ran but something failed (the report says what);
2 bad usage, bad configuration or an unreachable service, with one line on stderr and no traceback.

Every ``pollen`` process imports all the command modules (typer builds the command tree from their signatures), so
this module and they import only typer and the standard library at the top: settings (pydantic), logging and
metrics (Powertools), rich, the jobs and the adapters are imported where a command uses them, so that ``--help``
and each command load only what they need (tests/unit/test_cli_startup.py pins it).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from pollen.errors import PollenError

if TYPE_CHECKING:
    from rich.console import Console

    from pollen.observability import MetricsRecorder
    from pollen.report import JobReport
    from pollen.settings import Settings

JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object (the report) on stdout.")
FORCE_OPTION = typer.Option(
    False,
    "--force",
    help="Take the job's lease even from a run that still holds it (only when you know that run is gone).",
)

log = logging.getLogger("pollen.cli")


@dataclass
class Overrides:
    """Global flags that override CONTRACT variables."""

    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Runtime:
    """A command's settings, metrics and consoles."""

    settings: Settings
    metrics: MetricsRecorder
    correlation_id: str
    json_output: bool
    out: Console
    err: Console
    #: The command's name without ``pollen`` ("sync assets"): the ``job`` of a report made for a failed command.
    command: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def interactive(self) -> bool:
        return not self.json_output and self.err.is_terminal


def _overrides(ctx: typer.Context) -> dict[str, Any]:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, Overrides) else Overrides()
    return obj.values


def fail(message: str, *, json_output: bool, exit_code: int = 2, secrets: list[str] | None = None) -> NoReturn:
    """End the command with one line on stderr (and a JSON object on stdout with --json)."""
    from pollen.observability import redact

    line = redact(message.splitlines()[0] if message else "failed", secrets or [])
    if json_output:
        sys.stdout.write(json.dumps({"ok": False, "error": line, "exit_code": exit_code}) + "\n")
    sys.stderr.write(f"pollen: error: {line}\n")
    raise typer.Exit(exit_code)


def start(ctx: typer.Context, json_output: bool, **extra_overrides: Any) -> Runtime:
    """Validate settings once and set up logging and metrics for one command."""
    from rich.console import Console

    from pollen.observability import FileSink, MetricsRecorder, configure_logging, new_correlation_id
    from pollen.settings import load_settings

    try:
        settings = load_settings(**{**_overrides(ctx), **extra_overrides})
    except PollenError as exc:
        fail(str(exc), json_output=json_output, exit_code=exc.exit_code)
    if settings.home.exists() and not settings.home.is_dir():
        # Checked before anything runs: every command keeps state there (metrics, dead letters, checkpoints).
        fail(f"POLLEN_HOME {settings.home} is not a folder", json_output=json_output)
    correlation_id = new_correlation_id()
    configure_logging(
        level=settings.log_level or "WARNING",
        stream=sys.stderr,
        secrets=settings.secret_values(),
        correlation_id=correlation_id,
        command=ctx.command_path,
    )
    log.debug("settings loaded", extra={"settings": settings.model_dump(mode="json")})
    metrics = MetricsRecorder(FileSink(settings.home / "metrics.jsonl"))
    return Runtime(
        settings=settings,
        metrics=metrics,
        correlation_id=correlation_id,
        json_output=json_output,
        out=Console(soft_wrap=True),
        err=Console(stderr=True),
        command=ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip() or ctx.command_path,
    )


def run(runtime: Runtime, action: Callable[[], Any]) -> Any:
    """Run an action, turning pollen errors into exit codes; metrics are flushed whatever happens."""
    from pollen.observability import redact
    from pollen.report import JobReport

    secrets = runtime.settings.secret_values()
    started = time.monotonic()
    try:
        return action()
    except PollenError as exc:
        log.log(
            logging.WARNING if exc.exit_code == 1 else logging.INFO,
            "command failed",
            extra={"error": str(exc), "error_type": type(exc).__name__},
        )
        if exc.exit_code == 1:
            # The command ran and failed (e.g. its upstream answered garbage): exit 1 always carries a report.
            report = JobReport(job=runtime.command or "pollen", ok=False)
            report.add_error(redact(str(exc), secrets))
            report.duration_s = round(time.monotonic() - started, 3)
            finish(runtime, report)
        fail(str(exc), json_output=runtime.json_output, exit_code=exc.exit_code, secrets=secrets)
    except KeyboardInterrupt:
        fail("interrupted", json_output=runtime.json_output, exit_code=130, secrets=secrets)
    finally:
        try:
            runtime.metrics.flush()
        except OSError as exc:  # metrics must never turn a result into a failure
            log.warning("could not write metrics", extra={"error": str(exc)})


def finish(runtime: Runtime, report: JobReport, render: Callable[[Runtime, JobReport], None] | None = None) -> None:
    """Record the run (job commands), print the report (JSON or a table) and exit 0 when ok, 1 otherwise."""
    record_run(runtime, report)
    if runtime.json_output:
        sys.stdout.write(json.dumps(report.to_json_dict(), default=str) + "\n")
    else:
        (render or render_report)(runtime, report)
    raise typer.Exit(0 if report.ok else 1)


def print_json(runtime: Runtime, payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def render_report(runtime: Runtime, report: JobReport) -> None:
    from rich.table import Table

    data = report.to_json_dict()
    table = Table(title=f"{report.job}: {'ok' if report.ok else 'FAILED'}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in ("job", "ok", "errors") or value in ([], {}, None):
            continue
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    runtime.out.print(table)
    for error in report.errors:
        runtime.err.print(f"[red]error:[/red] {error}", highlight=False, markup=True)


def record_run(runtime: Runtime, report: JobReport) -> None:
    """A job command leaves a run record in ``pollenControl`` (pollen.jobs.runs); never fails the command."""
    from pollen import wiring
    from pollen.jobs.runs import RECORDED_JOBS

    if report.job not in RECORDED_JOBS:
        return
    try:
        # A record that cannot be written is logged, not dead-lettered: it is no data to replay.
        store = wiring.build_run_record_store(runtime.settings, runtime.metrics)
        try:
            wiring.build_run_log(runtime.settings, runtime.metrics, store).record(
                report,
                started_at=runtime.started_at,
                source="cli",
                dead_letters_to=wiring.dead_letters_destination(runtime.settings),
            )
        finally:
            close = getattr(store, "close", None)
            if callable(close):
                close()
    except PollenError as exc:
        log.warning("run record not written", extra={"job": report.job, "error": str(exc)[:200]})
