"""The job report every command and handler returns (CONTRACT.md: ok, written, unchanged, failed, invalid,
duration_s, errors)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: A report keeps at most this many error strings; the rest are counted in `errors_omitted`.
MAX_ERRORS = 50


class JobReport(BaseModel):
    """Outcome of one job run. Jobs subclass it to add their own counters."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    job: str
    ok: bool = True
    written: int = 0
    unchanged: int = 0
    failed: int = 0
    invalid: int = 0
    duration_s: float = 0.0
    errors: list[str] = Field(default_factory=list)
    errors_omitted: int = 0
    #: What the run's lease went through besides a loss: a takeover (a dead holder, ``--force``), a failed release.
    lease_notes: list[str] = Field(default_factory=list)

    def add_error(self, message: str) -> None:
        """Record a short error line (no secrets: callers pass messages built from keys and codes)."""
        if len(self.errors) < MAX_ERRORS:
            # Text from bad input may hold lone surrogates, which no console or file can encode: escape them.
            self.errors.append(message[:300].encode("utf-8", "backslashreplace").decode("utf-8"))
        else:
            self.errors_omitted += 1

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def note_lost_lease(report: JobReport, lost: str | None) -> None:
    """A run whose lease was lost while it ran (see ``pollen.ports.Lease``) is not ok and says why."""
    if lost:
        report.ok = False
        report.add_error(lost)


def note_lease(report: JobReport, lease: Any) -> None:
    """Put what happened to a run's lease (``pollen.ports.Lease``) into its report: a loss makes it not ok; a
    takeover or a release that failed are noted (the run's own work is not affected)."""
    note_lost_lease(report, lease.lost)
    report.lease_notes.extend(getattr(lease, "notes", ()))


class Stopwatch:
    """Measures a run's duration with a monotonic clock."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return round(time.monotonic() - self._start, 3)
