"""`pollen backfill`: index every current item of the streamed tables, safely alongside live streaming.

For each table it first takes the stream position (the latest sequence number in the stream now), then scans,
and writes every item at that position (``version_key(position, backfill=True)``). Any record written after the
scan began has a larger sequence number and wins; a record at or before the position describes a state the scan
already read past, so the scanned item rightly wins over it. Tombstones of deletes newer than the position are
never overwritten. So a backfill running at the same time as `pollen stream sync` (or the Lambda) converges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pollen.errors import InvalidRecord, PollenError
from pollen.ports import Change, TableScanner
from pollen.report import JobReport, Stopwatch
from pollen.streams.records import backfill_change
from pollen.streams.sync import StreamSync
from pollen.tables import STREAMED_TABLES, TableDef

log = logging.getLogger(__name__)

BACKFILL_CHUNK = 500


class BackfillReport(JobReport):
    job: str = "backfill"
    scanned: int = 0
    indexed: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    positions: dict[str, str] = {}


def run_backfill(
    scanner: TableScanner,
    sync: StreamSync,
    position_of: Callable[[TableDef], str],
    *,
    tables: Sequence[TableDef] = STREAMED_TABLES,
    segments: int = 4,
    chunk: int = BACKFILL_CHUNK,
) -> BackfillReport:
    """Scan each table (``segments`` parallel Scan segments) and upsert every item at its pre-scan position."""
    watch = Stopwatch()
    report = BackfillReport()
    positions: dict[str, str] = {}
    for table in tables:
        try:
            position = position_of(table)
        except PollenError as exc:
            report.failed += 1
            report.add_error(f"{table.name}: stream position: {exc}")
            continue
        positions[table.name] = position
        log.info("backfill starting", extra={"table": table.name, "position": position})
        pending: list[Change] = []
        try:
            for item in scanner.scan(table.name, segments=segments):
                report.scanned += 1
                try:
                    pending.append(backfill_change(table, item, position))
                except InvalidRecord as exc:
                    report.invalid += 1
                    report.add_error(f"{table.name}: {exc}")
                    continue
                if len(pending) >= chunk:
                    _write(sync, pending, report)
                    pending = []
        except PollenError as exc:
            report.failed += 1
            report.add_error(f"{table.name}: scan: {exc}")
        _write(sync, pending, report)
    report.positions = positions
    report.written = report.indexed
    report.unchanged = report.conflicts
    report.ok = report.failed == 0 and report.invalid == 0 and report.dead_letters == 0
    report.duration_s = watch.elapsed_s
    return report


def _write(sync: StreamSync, changes: list[Change], report: BackfillReport) -> None:
    if not changes:
        return
    outcome = sync.apply_changes(changes)
    report.indexed += outcome.indexed
    report.conflicts += outcome.conflicts
    report.dead_letters += outcome.dead_letters
    report.failed += len(outcome.failed)
    for error in outcome.errors:
        report.add_error(error)
