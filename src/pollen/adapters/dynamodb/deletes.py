"""Deletes by key through the batch writer: bad keys are invalid, duplicate keys sent once, and whatever stops the
call, every key not deleted is failed and dead-lettered as a delete."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batch_writer import BatchWriter
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.records import Write, guarded_encoding
from pollen.adapters.dynamodb.reports import WriteReport, count_report
from pollen.adapters.dynamodb.schema import TableCatalog, TableInfo
from pollen.adapters.dynamodb.settlement import ChunkResult, send_dead_letters
from pollen.deadline import Deadline
from pollen.errors import PollenError
from pollen.ports import DeadLetterSink, Key

log = logging.getLogger(__name__)


class Deleter:
    def __init__(
        self,
        catalog: TableCatalog,
        dispatcher: Dispatcher,
        writer: BatchWriter,
        dead_letters: DeadLetterSink | None,
    ) -> None:
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.writer = writer
        self.dead_letters = dead_letters

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> WriteReport:
        """Delete items by key (a missing item is not an error); duplicate keys are sent once."""
        deadline = deadline or Deadline.never()
        started = time.perf_counter()
        info = self.catalog.info(table)
        report = WriteReport(table)
        writes: dict[tuple[str, ...], Write] = {}
        result = ChunkResult(report)
        try:
            _collect_writes(info, keys, writes, result)
            self.writer.send(info, list(writes.values()), deadline, result)
        except BaseException as exc:
            # Every key not deleted yet is failed and dead-lettered, whatever stopped the call.
            reason = f"not deleted: {type(exc).__name__}: {str(exc)[:200]}"
            result.fail_writes([w for s, w in writes.items() if s not in result.done], reason)
            if not isinstance(exc, Exception) or (isinstance(exc, PollenError) and exc.exit_code == 2):
                raise
            log.exception("delete failed", extra={"table": table})
        finally:
            send_dead_letters(self.dead_letters, table, result.dead, operation="delete")
        report.duration_s = round(time.perf_counter() - started, 3)
        count_report(self.dispatcher.metrics, report, "delete")
        return report


def _collect_writes(
    info: TableInfo, keys: Iterable[Key], writes: dict[tuple[str, ...], Write], result: ChunkResult
) -> None:
    """One DeleteRequest per distinct valid key into ``writes``; invalid keys and duplicates counted in ``result``."""
    for key in keys:
        plain = {name: key.get(name) for name in info.key_names} if isinstance(key, Mapping) else {}
        try:
            wire = _checked_key(info, key)
        except (codec.CodecError, TypeError) as exc:
            message = exc.message if isinstance(exc, PollenError) else str(exc)
            result.invalid(plain, key if isinstance(key, Mapping) else plain, message)
            continue
        signature = codec.key_signature(wire, info.key_names)
        if signature in writes:
            result.report.duplicates += 1
        request = {"DeleteRequest": {"Key": wire}}
        writes[signature] = Write(signature, request, codec.wire_json(request), codec.item_size(wire), 1, plain)


def _checked_key(info: TableInfo, key: Any) -> dict[str, Any]:
    """The key in wire form, checked against the table's key schema and size limits."""
    if not isinstance(key, Mapping):
        raise codec.CodecError(f"a key must be a JSON object, not {type(key).__name__}")
    wire: dict[str, Any] = guarded_encoding(
        codec.encode_item, {name: key[name] for name in info.key_names if name in key}
    )
    codec.check_key(wire, info.key_schema)
    codec.item_size(wire)
    return wire
