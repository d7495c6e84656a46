"""The upsert planner: read-diff-write of a batch of items (see :mod:`.store` for the rules).

In the calling thread every item gets its key checked and duplicates are resolved; the stored versions are read by
one Scan when that is cheaper (:mod:`.versions`); then workers take chunks of ``WORK_UNIT`` items, encode and hash
them, read the stored versions by key where no Scan did, skip what is unchanged or stale and hand the rest to the
:mod:`.batch_writer`. Where the stored versions are known before the workers start, an item whose plain content
hashes to its stored hash is settled as unchanged before it is encoded (:func:`.codec.plain_content_hash`, about a
third of the encoding's CPU). Whatever stops the upsert, every item ends up written or settled (failed or invalid, in the
report and dead-lettered) exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from operator import attrgetter
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batch_writer import BatchWriter
from pollen.adapters.dynamodb.batching import resolve_duplicates
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.records import Record, complete, guarded_encoding, prepare_key, put_write
from pollen.adapters.dynamodb.reports import WriteReport, count_report
from pollen.adapters.dynamodb.schema import HASH_ATTRIBUTE, TableCatalog, TableInfo
from pollen.adapters.dynamodb.settlement import ChunkResult, send_dead_letters
from pollen.adapters.dynamodb.versions import VersionReader, Versions, versions_of
from pollen.deadline import Deadline
from pollen.errors import PollenError
from pollen.ports import DeadLetterSink, Item

log = logging.getLogger(__name__)

#: Items one worker takes at a time: read in BatchGetItems of 100, then written in BatchWriteItems of 25.
WORK_UNIT = 500

_InFlight = list[tuple[Future[ChunkResult], Sequence[Record]]]


class UpsertPlanner:
    def __init__(
        self,
        catalog: TableCatalog,
        dispatcher: Dispatcher,
        versions: VersionReader,
        writer: BatchWriter,
        *,
        bookkeeping: frozenset[str],
        dead_letters: DeadLetterSink | None,
    ) -> None:
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.versions = versions
        self.writer = writer
        self.bookkeeping = bookkeeping
        self.dead_letters = dead_letters

    def upsert(
        self,
        table: str,
        items: Iterable[Item],
        *,
        deadline: Deadline | None,
        compare: bool,
        progress: Callable[[int], None] | None,
        stored: Iterable[Item] | None,
    ) -> WriteReport:
        deadline = deadline or Deadline.never()
        started = time.perf_counter()
        run = _Upsert(self, self.catalog.info(table), deadline, compare, progress)
        try:
            run.run(items, stored)
        except BaseException as exc:
            # Interrupted (or a bug in this thread): every item not settled yet is failed and dead-lettered.
            run.settle_after_error(f"not written: the upsert stopped ({type(exc).__name__}: {str(exc)[:200]})")
            raise
        finally:
            send_dead_letters(self.dead_letters, table, run.total.dead)
        if run.total.fatal is not None:
            raise run.total.fatal
        report = run.total.report
        report.duration_s = round(time.perf_counter() - started, 3)
        count_report(self.dispatcher.metrics, report, "upsert")
        if not report.ok:
            log.warning(
                "upsert left items unwritten",
                extra={"table": table, "failed": report.failed, "invalid": report.invalid},
            )
        return report

    def upsert_chunk(
        self, info: TableInfo, records: Sequence[Record], deadline: Deadline, compare: bool, known: Versions | None
    ) -> ChunkResult:
        """One worker's chunk. Never raises: whatever an unexpected error leaves unsettled is failed (and a
        run-ending error is kept in ``fatal`` for the caller to raise once everything is dead-lettered)."""
        result = ChunkResult(WriteReport(info.logical), settled=len(records))
        try:
            self._upsert_records(result, info, records, deadline, compare, known)
        except Exception as exc:
            if isinstance(exc, PollenError):
                if exc.exit_code == 2:
                    result.fatal = exc
                log.error("upsert worker failed", extra={"table": info.logical, "error": str(exc)[:300]})
            else:  # a defect: keep its traceback in the log
                log.exception("upsert worker failed", extra={"table": info.logical})
            unsettled = [r for r in records if r.signature not in result.done]
            result.fail_records(unsettled, f"not written: {type(exc).__name__}: {str(exc)[:200]}")
        return result

    def _upsert_records(
        self,
        result: ChunkResult,
        info: TableInfo,
        records: Sequence[Record],
        deadline: Deadline,
        compare: bool,
        known: Versions | None,
    ) -> None:
        if compare and known is not None:
            records = self._skip_unchanged(result, records, known)
        records = self._complete_all(result, records)
        if deadline.expired():
            result.fail_records(records, "deadline reached before the item was sent", deadline=True)
            return
        to_write = records
        if compare:
            stored = self._stored_versions(result, info, records, deadline, known)
            if stored is None:
                return
            to_write = _changed(result, records, stored)
        self.writer.send(info, [put_write(r) for r in to_write], deadline, result)

    def _skip_unchanged(self, result: ChunkResult, records: Sequence[Record], known: Versions) -> list[Record]:
        """The records not recognised as unchanged by their plain content hash (the stored versions being known
        already, an unchanged record is settled without being encoded); the others are counted unchanged."""
        rest: list[Record] = []
        for record in records:
            if _known_unchanged(record.plain, record.signature, known, self.bookkeeping):
                result.report.unchanged += 1
                result.done.add(record.signature)
                continue
            rest.append(record)
        return rest

    def changed(self, table: str, items: Sequence[Item], stored: Iterable[Item]) -> list[Item]:
        """The items an upsert with these stored versions would not count unchanged (``ItemStore.changed``)."""
        info = self.catalog.info(table)
        known = versions_of(info, stored)
        rest: list[Item] = []
        for item in items:
            try:
                _, signature = guarded_encoding(codec.encode_key, item, info.key_schema)
            except (codec.CodecError, AttributeError):  # not an item, or no valid key: the upsert reports it
                rest.append(item)
                continue
            if not _known_unchanged(item, signature, known, self.bookkeeping):
                rest.append(item)
        return rest

    def _complete_all(self, result: ChunkResult, records: Sequence[Record]) -> list[Record]:
        """The records encoded and hashed; those that cannot be are settled as invalid."""
        valid: list[Record] = []
        for record in records:
            try:
                complete(record, self.bookkeeping)
            except codec.CodecError as exc:
                result.invalid(record.key, record.plain, exc.message)
                result.done.add(record.signature)
                continue
            valid.append(record)
        return valid

    def _stored_versions(
        self,
        result: ChunkResult,
        info: TableInfo,
        records: Sequence[Record],
        deadline: Deadline,
        known: Versions | None,
    ) -> Versions | None:
        """The versions to compare with (read by key unless known); None when they could not be read, the records
        then failed."""
        try:
            return known if known is not None else self.versions.by_key(info, records, deadline)
        except PollenError as exc:
            if exc.exit_code == 2 and not exc.transient:  # the job cannot run at all (no table, no service)
                raise
            result.fail_records(records, f"could not read the stored version: {exc.message}")
            return None


def _known_unchanged(
    plain: Mapping[str, Any], signature: tuple[str, ...], known: Versions, bookkeeping: frozenset[str]
) -> bool:
    """Whether an item's plain content hashes to its stored version's hash (an item carrying the reserved
    ``contentHash`` never does: the full encoding refuses it)."""
    stored = known.get(signature)
    return (
        stored is not None
        and stored[0] is not None
        and HASH_ATTRIBUTE not in plain
        and codec.plain_content_hash(plain, bookkeeping) == stored[0]
    )


def _changed(result: ChunkResult, records: Sequence[Record], stored: Versions) -> list[Record]:
    """The records to write; those unchanged (same content hash) or stale (older ``lastSyncDate``) are counted."""
    to_write: list[Record] = []
    for record in records:
        current = stored.get(record.signature)
        if current is not None and current[0] == record.digest:
            result.report.unchanged += 1
            result.done.add(record.signature)
        elif current is not None and record.sync and current[1] and record.sync < current[1]:
            result.report.stale += 1
            result.done.add(record.signature)
        else:
            to_write.append(record)
    return to_write


class _Upsert:
    """One upsert call as the calling thread runs it: what is settled so far and what is still out."""

    def __init__(
        self,
        planner: UpsertPlanner,
        info: TableInfo,
        deadline: Deadline,
        compare: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.planner = planner
        self.info = info
        self.deadline = deadline
        self.compare = compare
        self.progress = progress
        #: Counts, failures and dead letters of the whole call (and the first run-ending error of a worker).
        self.total = ChunkResult(WriteReport(info.logical))
        self.records: list[Record] = []
        #: Records read but not handed to a worker yet, and the workers' chunks not merged yet: what an exception
        #: in this thread leaves unsettled.
        self.unsubmitted: Sequence[Record] = self.records
        self.in_flight: _InFlight = []

    def run(self, items: Iterable[Item], stored: Iterable[Item] | None) -> None:
        self._read(items)
        winners = self._resolve_duplicates()
        known = self._known_versions(winners, stored)
        self._submit(winners, known)
        self._collect()

    def _read(self, items: Iterable[Item]) -> None:
        for position, item in enumerate(items):
            try:
                self.records.append(prepare_key(self.info, position, item))
            except codec.CodecError as exc:
                key = _plain_key(item, self.info)
                self.total.invalid(key, item, exc.message)
        if self.total.report.invalid and self.progress:
            self.progress(self.total.report.invalid)

    def _resolve_duplicates(self) -> list[Record]:
        resolved = resolve_duplicates(self.records, key=attrgetter("signature"), version=attrgetter("sync"))
        self.total.report.duplicates = len(resolved.losers)
        self.unsubmitted = resolved.winners
        if self.total.report.duplicates and self.progress:
            self.progress(self.total.report.duplicates)
        return resolved.winners

    def _known_versions(self, winners: Sequence[Record], stored: Iterable[Item] | None) -> Versions | None:
        """The versions read before the workers start (from the caller, or by Scan); None: each worker reads its
        chunk's by key (or, without ``compare``, nothing is read)."""
        if not self.compare:
            return None
        if stored is not None:
            return versions_of(self.info, stored)
        return self.planner.versions.by_scan(self.info, winners, self.deadline)

    def _submit(self, winners: list[Record], known: Versions | None) -> None:
        planner = self.planner
        for i in range(0, len(winners), WORK_UNIT):
            chunk = winners[i : i + WORK_UNIT]
            future = planner.dispatcher.pool().submit(
                planner.upsert_chunk, self.info, chunk, self.deadline, self.compare, known
            )
            self.in_flight.append((future, chunk))
            self.unsubmitted = winners[i + WORK_UNIT :]

    def _collect(self) -> None:
        while self.in_flight:
            result = self.in_flight[0][0].result()
            self.in_flight.pop(0)
            self.total.absorb(result)
            self.total.fatal = self.total.fatal or result.fatal
            if self.progress:
                self.progress(result.settled)

    def settle_after_error(self, reason: str) -> None:
        """Account for every item of an upsert that an exception interrupted: chunks not started are failed,
        chunks running are waited for (a worker never leaves its chunk unsettled), the rest is failed."""
        leftover = ChunkResult(WriteReport(self.info.logical))
        leftover.fail_records(self.unsubmitted, reason)
        cancelled = [future.cancel() for future, _ in self.in_flight]  # all first: a worker moves on while we wait
        for (future, chunk), was_cancelled in zip(self.in_flight, cancelled, strict=True):
            if was_cancelled:
                leftover.fail_records(chunk, reason)
                continue
            try:
                result = future.result()
            except BaseException:  # the worker itself was interrupted: its chunk's outcome is unknown
                leftover.fail_records(chunk, reason)
                continue
            self.total.absorb(result)
        self.in_flight.clear()
        self.total.absorb(leftover)


def _plain_key(item: Any, info: TableInfo) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        return {}
    return {name: item.get(name) for name in info.key_names}
