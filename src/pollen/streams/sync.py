"""Applying a batch of stream records to the search index: decode, filter, apply with versions, dead-letter.

Shared by the local poller and the Lambda handler. Bad records (undecodable, or rejected by the index as bad)
go to the dead letters with the full record and count as handled, so they never block the stream; records the
index could not take after its retries are reported as failed, and the caller does not move past them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pollen.errors import InvalidRecord, PollenError
from pollen.observability import MetricsRecorder
from pollen.ports import ApplyResult, Change, DeadLetterSink, SearchIndex
from pollen.streams.records import BOOKKEEPING_ATTRIBUTES, Skipped, decode_record, streamed_table
from pollen.tables import TableDef

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What one batch of records did."""

    records: int = 0
    indexed: int = 0
    deleted: int = 0
    conflicts: int = 0
    skipped: int = 0
    invalid: int = 0
    dead_letters: int = 0
    retries: int = 0
    #: Sequence numbers of records that were not applied and must be delivered again.
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Largest (now - approximate creation time) over the batch, in seconds.
    lag_s: float | None = None

    @property
    def ok(self) -> bool:
        """Nothing left to deliver again (dead letters are handled: kept whole, named in ``errors``)."""
        return not self.failed

    def earliest_failed(self) -> str | None:
        return min(self.failed, key=int) if self.failed else None

    def add(self, other: BatchOutcome) -> None:
        for name in ("records", "indexed", "deleted", "conflicts", "skipped", "invalid", "dead_letters", "retries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.errors += other.errors
        if other.lag_s is not None:
            self.lag_s = max(self.lag_s or 0.0, other.lag_s)


class StreamSync:
    """Decode records and apply them to the index, with metrics and dead letters."""

    def __init__(
        self,
        index: SearchIndex,
        *,
        metrics: MetricsRecorder,
        dead_letters: DeadLetterSink,
        tables: Sequence[TableDef] | None = None,
        bookkeeping: frozenset[str] = BOOKKEEPING_ATTRIBUTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from pollen.tables import STREAMED_TABLES

        self.index = index
        self.metrics = metrics
        self.dead_letters = dead_letters
        self.tables = tuple(tables or STREAMED_TABLES)
        self.bookkeeping = bookkeeping
        self.clock = clock

    def table_for(self, logical_name: str | None) -> TableDef | None:
        return streamed_table(logical_name, self.tables) if logical_name else None

    def apply_records(self, records: Sequence[Mapping[str, Any]], table: TableDef | str | None) -> BatchOutcome:
        """Apply one batch of records of one table (a TableDef, its logical name, or None for any other table)."""
        table_def = self.table_for(table) if isinstance(table, str) else table
        outcome = BatchOutcome(records=len(records))
        changes: list[Change] = []
        for record in records:
            try:
                decoded = decode_record(record, table_def, bookkeeping=self.bookkeeping)
            except InvalidRecord as exc:
                outcome.invalid += 1
                self._dead_letter(outcome, table_def.name if table_def else "", record, f"invalid record: {exc}")
                continue
            if isinstance(decoded, Skipped):
                outcome.skipped += 1
                self.metrics.count("RecordsSkipped", reason=decoded.reason)
                continue
            changes.append(decoded)
        if changes:
            self._apply(changes, outcome)
        self._lag(changes, outcome)
        return outcome

    def apply_changes(self, changes: Sequence[Change]) -> BatchOutcome:
        """Apply already-built changes (backfill)."""
        outcome = BatchOutcome(records=len(changes))
        if changes:
            self._apply(changes, outcome)
        return outcome

    def _apply(self, changes: Sequence[Change], outcome: BatchOutcome) -> None:
        result = self._index_apply(changes)
        outcome.indexed += len(result.indexed)
        outcome.deleted += len(result.deleted)
        outcome.conflicts += len(result.conflicts)
        outcome.retries += result.retries
        for change, reason in result.rejected:
            self._dead_letter(outcome, change.table, change.record or {"document": change.document}, reason)
        for change, reason in result.failed:
            outcome.failed.append(change.sequence_number)
            if len(outcome.errors) < 20:
                outcome.errors.append(f"{change.table} {change.doc_id}: {reason}"[:300])
        self._count_applied(result)

    def _index_apply(self, changes: Sequence[Change]) -> ApplyResult:
        """The index's result; an index that raises fails every change of the batch (retried), never the process."""
        try:
            return self.index.apply(changes)
        except PollenError as exc:
            return ApplyResult(failed=[(c, str(exc)) for c in changes])
        except Exception as exc:
            log.warning("index apply failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return ApplyResult(failed=[(c, f"{type(exc).__name__}: {exc}") for c in changes])

    def _count_applied(self, result: ApplyResult) -> None:
        """Documents indexed, deleted and in conflict per table; retries and failures over the batch."""
        per_table = (
            ("DocumentsIndexed", result.indexed),
            ("DocumentsDeleted", result.deleted),
            ("VersionConflicts", result.conflicts),
        )
        for metric, changes in per_table:
            for table_name, count in Counter(change.table for change in changes).items():
                self.metrics.count(metric, count, table=table_name)
        if result.retries:
            self.metrics.count("IndexRetries", result.retries)
        if result.failed:
            self.metrics.count("RecordsFailed", len(result.failed))

    def _dead_letter(self, outcome: BatchOutcome, table: str, record: Mapping[str, Any], reason: str) -> None:
        outcome.dead_letters += 1
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", "")) if isinstance(record, Mapping) else ""
        if len(outcome.errors) < 20:
            where = f"{table or 'unknown'} record {sequence}" if sequence else f"{table or 'unknown'} document"
            outcome.errors.append(f"{where}: dead-lettered: {reason}"[:300])
        self.metrics.count("DeadLetters", table=table or "unknown")
        log.warning("dead-lettered stream record", extra={"table": table, "reason": reason[:300]})
        self.dead_letters.put(table, dict(record), reason)

    def _lag(self, changes: Sequence[Change], outcome: BatchOutcome) -> None:
        created = [c.created_at for c in changes if c.created_at is not None]
        if not created:
            return
        # Iterator age, as Lambda reports it: the age of the newest record of the batch.
        lag = max(0.0, self.clock() - max(created))
        outcome.lag_s = lag
        self.metrics.timing_ms("IteratorAge", lag * 1000)
