"""Replaying the dead letters of the SQS dead-letter queue (what the Lambda functions could not write).

Items go back into their table (``upsert``; a letter whose operation is ``delete`` is a key deleted again), stream records
into the search index (``StreamSync.apply_records``: versions make a replay of an already applied record a no-op).
A message is deleted from the queue once its batch was handled: written, or, if it fails again, handed to the
store's (or the stream sync's) own dead letters. Stream records the index could not take stay on the queue (they
come back after the visibility timeout). The run reads at most what the queue held when it started (or ``limit``),
so letters that fail again and return to the same queue are not replayed in a loop.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from pollen.deadline import Deadline
from pollen.ports import ITEM, STREAM_RECORD, DeadLetterQueue, ItemStore, QueuedDeadLetter
from pollen.report import JobReport
from pollen.streams.sync import StreamSync

log = logging.getLogger(__name__)


class ReplayReport(JobReport):
    received: int = 0
    items_replayed: int = 0
    keys_deleted: int = 0
    records_replayed: int = 0
    left_on_queue: int = 0


def replay_dead_letters(
    queue: DeadLetterQueue,
    store: ItemStore,
    *,
    sync: StreamSync | None = None,
    limit: int | None = None,
    deadline: Deadline | None = None,
) -> ReplayReport:
    deadline = deadline or Deadline.never()
    report = ReplayReport(job="replay-dead-letters")
    budget = queue.waiting() if limit is None else limit
    while report.received < budget and not deadline.expired():
        letters, errors = queue.receive(min(10, budget - report.received))
        for error in errors:
            report.invalid += 1
            report.add_error(error)
        if not letters:
            break
        report.received += len(letters)
        done = _replay_batch(letters, store, sync, deadline, report)
        queue.delete(done)
        report.left_on_queue += len(letters) - len(done)
    report.written = report.items_replayed + report.keys_deleted + report.records_replayed
    report.ok = report.failed == 0 and report.invalid == 0 and report.left_on_queue == 0
    return report


def _replay_batch(
    letters: list[QueuedDeadLetter],
    store: ItemStore,
    sync: StreamSync | None,
    deadline: Deadline,
    report: ReplayReport,
) -> list[QueuedDeadLetter]:
    groups: dict[tuple[str, str, str], list[QueuedDeadLetter]] = defaultdict(list)
    for letter in letters:
        groups[(letter.kind, letter.operation, letter.table)].append(letter)
    done: list[QueuedDeadLetter] = []
    for (kind, operation, table), group in groups.items():
        documents: list[Any] = [letter.document for letter in group]
        if kind == ITEM and operation == "delete":
            outcome = store.delete(table, documents, deadline=deadline)
            report.keys_deleted += outcome.written
            _count(report, outcome)
            done += group
        elif kind == ITEM:
            outcome = store.upsert(table, documents, deadline=deadline)
            report.items_replayed += outcome.written + outcome.unchanged
            _count(report, outcome)
            done += group
        elif kind == STREAM_RECORD and sync is not None:
            applied = sync.apply_records(documents, table or None)
            failed = set(applied.failed)
            kept = [g for g in group if str(g.document.get("dynamodb", {}).get("SequenceNumber", "")) in failed]
            report.records_replayed += applied.indexed + applied.deleted + applied.conflicts
            report.failed += len(kept)
            for line in applied.errors:
                report.add_error(line)
            done += [g for g in group if g not in kept]
        else:
            report.add_error(f"{len(group)} dead letters of kind {kind!r} for {table!r} left on the queue")
    return done


def _count(report: ReplayReport, outcome: Any) -> None:
    report.invalid += outcome.invalid
    report.failed += outcome.failed
    for line in outcome.error_lines():
        report.add_error(line)
