"""Every item a write does not store is settled: counted as failed in the report, named with its reason and kept
for the dead-letter sink, exactly once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pollen.adapters.dynamodb.records import Record, Write
from pollen.adapters.dynamodb.reports import ItemFailure, WriteReport, key_text
from pollen.errors import PollenError
from pollen.ports import DeadLetterOperation, DeadLetterSink

#: Items to dead-letter, each with its reason.
DeadLetters = list[tuple[Mapping[str, Any], str]]


@dataclass
class ChunkResult:
    """What one worker (or one delete call) did with its items."""

    report: WriteReport
    dead: DeadLetters = field(default_factory=list)
    settled: int = 0
    #: Key signatures already counted (written, unchanged, stale, invalid or failed): what a crash leaves is the rest.
    done: set[tuple[str, ...]] = field(default_factory=set)
    #: An error that must end the run (configuration, unreachable service), raised once everything is accounted for.
    fatal: PollenError | None = None

    def invalid(self, key: dict[str, Any], plain: Mapping[str, Any], message: str) -> None:
        """An item that cannot be written as it is."""
        self.report.invalid += 1
        self.report.failures.append(ItemFailure(key, message, "invalid"))
        self.dead.append((plain, f"invalid {key_text(key)}: {message}"))

    def fail_one(self, key: dict[str, Any], plain: Mapping[str, Any], reason: str) -> None:
        self.report.failed += 1
        self.report.failures.append(ItemFailure(key, reason))
        self.dead.append((plain, f"failed {key_text(key)}: {reason}"))

    def fail_records(self, records: Iterable[Record], reason: str, *, deadline: bool = False) -> None:
        for record in records:
            self.done.add(record.signature)
            self.fail_one(record.key, record.plain, reason)
        self.report.deadline_reached = self.report.deadline_reached or deadline

    def fail_writes(self, writes: Iterable[Write], reason: str, *, deadline: bool = False) -> None:
        for write in writes:
            record = write.record
            self.done.add(write.signature)
            if isinstance(record, Record):
                self.fail_one(record.key, record.plain, reason)
            else:
                self.fail_one(record, record, reason)
        self.report.deadline_reached = self.report.deadline_reached or deadline

    def absorb(self, other: ChunkResult) -> None:
        """Another chunk's counts and dead letters, merged into this one."""
        self.report.merge(other.report)
        self.dead.extend(other.dead)


def send_dead_letters(
    sink: DeadLetterSink | None,
    table: str,
    dead: Sequence[tuple[Mapping[str, Any], str]],
    *,
    operation: DeadLetterOperation = "put",
) -> None:
    """Hand the dead letters to the sink, all at once where it can take them so."""
    if sink is None or not dead:
        return
    put_many = getattr(sink, "put_many", None)
    if callable(put_many):
        put_many(table, dead, operation=operation)
        return
    for item, reason in dead:
        sink.put(table, item, reason, operation=operation)
