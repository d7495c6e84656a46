"""What the jobs share: the clock, chunking, and folding store outcomes into reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

from pollen.ports import WriteOutcome
from pollen.report import JobReport

Clock = Callable[[], datetime]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def chunks(values: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fold(report: JobReport, outcome: WriteOutcome, *, table: str) -> None:
    """Add a store outcome's counters and error lines to a report (failed or invalid writes make it not ok)."""
    report.written += outcome.written
    report.unchanged += outcome.unchanged
    report.failed += outcome.failed
    report.invalid += outcome.invalid
    for line in outcome.error_lines():
        report.add_error(f"{table}: {line}")
    if not outcome.ok:
        report.ok = False
