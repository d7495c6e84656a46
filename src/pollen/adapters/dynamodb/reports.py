"""What the store reports: its metric names, the report of one upsert or delete, and how a key reads in a message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pollen.observability import MetricsRecorder
from pollen.report import JobReport

# Metric names (seeds 000-002: write success/failure, batch timing, retries, throttles, conflicts, GSI queries).
M_WRITTEN = "DynamoWriteSuccess"
M_FAILED = "DynamoWriteFailure"
M_INVALID = "DynamoWriteInvalid"
M_BATCH_MS = "BatchWriteLatency"
M_BATCH_COUNT = "BatchWriteRequests"
M_RETRIES = "DynamoRetries"
M_THROTTLES = "DynamoThrottles"
M_UNCHANGED = "UpsertUnchanged"
M_STALE = "UpsertStale"
M_DUPLICATES = "UpsertDuplicates"
M_UPSERT_MS = "UpsertDuration"
M_GSI_MS = "GsiQueryLatency"
M_GSI_FAILURE = "GsiQueryFailure"
M_GSI_FALLBACK = "GsiFallback"
M_TX_CANCELLED = "TransactionCancelled"
M_MOVE_CONFLICTS = "MoveConflicts"
M_BATCH_FAILED = "BatchWriteFailures"
M_UNITS = "WriteCapacityUnits"
M_GSI_QUERIES = "GsiQueries"
M_RETRY_EXHAUSTED = "RetryExhausted"

M_COMPARE_SCANS = "UpsertCompareScans"


@dataclass
class ItemFailure:
    """One item that was not written, with its key and why."""

    key: dict[str, Any]
    reason: str
    kind: str = "failed"  # or "invalid"


#: Longer key values are cut in messages, so that a report line still shows why its item failed.
KEY_TEXT_CHARS = 80


def key_text(key: Mapping[str, Any]) -> str:
    def short(value: Any) -> str:
        text = str(value)
        return text if len(text) <= KEY_TEXT_CHARS else f"{text[:KEY_TEXT_CHARS]}...({len(text)} chars)"

    return "{" + ", ".join(f"{k}={short(v)}" for k, v in key.items()) + "}"


@dataclass
class WriteReport:
    """What one upsert/delete did. Satisfies ``pollen.ports.WriteOutcome``."""

    table: str
    written: int = 0
    unchanged: int = 0
    duplicates: int = 0
    stale: int = 0
    invalid: int = 0
    failed: int = 0
    deadline_reached: bool = False
    failures: list[ItemFailure] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.invalid == 0

    @property
    def total(self) -> int:
        return self.written + self.unchanged + self.duplicates + self.stale + self.invalid + self.failed

    def error_lines(self, limit: int | None = None) -> list[str]:
        lines = [f"{self.table} {key_text(f.key)}: {f.kind}: {f.reason}" for f in self.failures]
        return lines if limit is None else lines[:limit]

    def add_to(self, report: JobReport) -> None:
        """Add these counts and error lines into a job report (and ``duplicates``/``stale`` where it has them)."""
        report.written += self.written
        report.unchanged += self.unchanged
        report.failed += self.failed
        report.invalid += self.invalid
        for name in ("duplicates", "stale"):
            if name in type(report).model_fields:
                setattr(report, name, getattr(report, name) + getattr(self, name))
        for line in self.error_lines():
            report.add_error(line)
        if not self.ok:
            report.ok = False

    def merge(self, other: WriteReport) -> None:
        for name in ("written", "unchanged", "duplicates", "stale", "invalid", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.deadline_reached = self.deadline_reached or other.deadline_reached


def count_report(metrics: MetricsRecorder, report: WriteReport, operation: str) -> None:
    """The report's counts and duration as metrics, with the table and operation as dimensions."""
    dims = {"table": report.table, "operation": operation}
    for metric, value in (
        (M_WRITTEN, report.written),
        (M_FAILED, report.failed),
        (M_INVALID, report.invalid),
        (M_UNCHANGED, report.unchanged),
        (M_STALE, report.stale),
        (M_DUPLICATES, report.duplicates),
    ):
        if value:
            metrics.count(metric, value, **dims)
    metrics.timing_ms(M_UPSERT_MS, report.duration_s * 1000, **dims)
