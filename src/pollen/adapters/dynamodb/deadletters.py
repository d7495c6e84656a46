"""Dead-letter sinks: where items that could not be written go, in a form `pollen load` replays.

The default sink writes, per table, run and operation, a JSON Lines file under ``<home>/dead-letters/``:
``<table>-<run>.jsonl`` for puts and ``<table>-<run>.deletes.jsonl`` for deletes. The first line is a header that
says what the file holds, ``{"pollenDeadLetters": {"version": 1, "operation": "put"|"delete", "table": "<table>"}}``;
every other line is one plain JSON item (puts) or key (deletes), numbers exact. A sibling ``.reasons.jsonl`` file
(``<table>-<run>.reasons.jsonl``, ``<table>-<run>.deletes.reasons.jsonl``) has one ``{"reason": ..., "item": true}``
per dead letter, in the same order; the reason names the key. Replaying either file is ``pollen load <table> <file>``:
``load`` recognises the header and puts or deletes accordingly (both idempotent). An item that cannot be written as
JSON at all (only possible for invalid input) appears in the reasons file only.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.codec import CodecError, dumps_plain
from pollen.errors import ConfigError, PollenError
from pollen.ports import DeadLetterOperation

log = logging.getLogger(__name__)


#: The header's only key: no item can consist of it alone (an item holds its table's key attributes, and a key
#: attribute is a string, number or binary, never a map).
HEADER_KEY = "pollenDeadLetters"
FORMAT_VERSION = 1


def header_line(table: str, operation: DeadLetterOperation) -> str:
    return dumps_plain({HEADER_KEY: {"version": FORMAT_VERSION, "operation": operation, "table": table}})


def read_header(value: Any) -> tuple[DeadLetterOperation, str] | None:
    """(operation, table) when a parsed JSON line is a dead-letter file header, else None."""
    if not isinstance(value, dict) or len(value) != 1 or not isinstance(value.get(HEADER_KEY), dict):
        return None
    header = value[HEADER_KEY]
    operation = header.get("operation")
    if operation == "put":
        return "put", str(header.get("table", ""))
    if operation == "delete":
        return "delete", str(header.get("table", ""))
    raise CodecError(f"dead-letter header with unknown operation {operation!r}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def read_dead_letter_file(path: Path) -> tuple[tuple[DeadLetterOperation, str] | None, list[Any]]:
    """A dead-letter file's header (None for a plain JSON Lines file) and its items or keys (tests, tools)."""
    from pollen.adapters.dynamodb.codec import loads_plain

    values = [loads_plain(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = read_header(values[0]) if values else None
    return header, values[1:] if header is not None else values


def _json_line(value: Any) -> str | None:
    """One JSON line, or None when the value has no JSON form (a set of mixed types, nesting beyond the stack).
    Strings without a UTF-8 form (lone surrogates) are written as JSON escapes, which read back the same."""
    try:
        line = dumps_plain(value)
    except (CodecError, RecursionError):
        return None
    if not line.isascii():
        line = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
    return line


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"


class JsonlDeadLetters:
    """JSON Lines files under a folder, one item file and one reasons file per table and run."""

    def __init__(self, folder: Path, *, run_id: str | None = None) -> None:
        self.folder = folder
        self.run_id = run_id or new_run_id()
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._written: set[Path] = set()

    def path_for(self, table: str, operation: DeadLetterOperation = "put") -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in table)
        suffix = ".deletes.jsonl" if operation == "delete" else ".jsonl"
        return self.folder / f"{safe}-{self.run_id}{suffix}"

    def reasons_path_for(self, table: str, operation: DeadLetterOperation = "put") -> Path:
        return self.path_for(table, operation).with_suffix(".reasons.jsonl")

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put") -> None:
        self.put_many(table, [(item, reason)], operation=operation)

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        """Append many dead letters with one open per file. A folder that cannot be written (``POLLEN_HOME`` is a
        file, no permission, disk full) is a configuration error."""
        items: list[str] = []
        reasons: list[str] = []
        for item, reason in entries:
            line = _json_line(dict(item))
            if line is not None:
                items.append(line + "\n")
            reasons.append((_json_line({"reason": reason, "item": line is not None}) or "{}") + "\n")
        if not reasons:
            return
        path = self.path_for(table, operation)
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if items:
                    new = not path.exists()
                    with path.open("a", encoding="utf-8") as fh:
                        if new:
                            fh.write(header_line(table, operation) + "\n")
                        fh.writelines(items)
                with self.reasons_path_for(table, operation).open("a", encoding="utf-8") as fh:
                    fh.writelines(reasons)
            except OSError as exc:
                raise ConfigError(
                    f"cannot write dead letters to {self.folder}: {exc.strerror or exc} (check POLLEN_HOME); "
                    f"{len(reasons)} {table} dead letters not kept"
                ) from exc
            self.counts[table] = self.counts.get(table, 0) + len(reasons)
            self._written.add(path)

    def files(self) -> list[Path]:
        """The item files written by this sink (puts and deletes), for the report."""
        return sorted(p for p in self._written if p.exists())


class MemoryDeadLetters:
    """Keeps dead letters in memory (tests, and callers that forward them elsewhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, dict[str, Any], str]] = []
        #: The operation of each entry, in the same order.
        self.operations: list[DeadLetterOperation] = []

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put") -> None:
        with self._lock:
            self.entries.append((table, dict(item), reason))
            self.operations.append(operation)


class SqsDeadLetters:
    """Dead letters to an SQS queue (production, where the local disk does not outlive an invocation).

    Each message body is one plain JSON item (or, for a delete, key) exactly as `pollen load` reads it (numbers
    exact); the table, the reason and the operation (``put`` or ``delete``) travel as message attributes. If SQS refuses a message, it goes to ``fallback`` (and is logged), so a
    dead letter is never dropped silently.
    """

    BATCH = 10  # SendMessageBatch takes at most ten entries

    def __init__(self, queue_url: str, *, client: Any, fallback: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client
        self.fallback = fallback
        self.sent = 0

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put") -> None:
        self.put_many(table, [(item, reason)], operation=operation)

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        pending = list(entries)
        for start in range(0, len(pending), self.BATCH):
            batch = pending[start : start + self.BATCH]
            refused = self._send(table, batch, operation)
            if refused and self.fallback is not None:
                self.fallback.put_many(table, refused, operation=operation)
            elif refused:
                raise PollenError(f"{table}: {len(refused)} dead letters refused by SQS and no fallback")

    def _send(
        self, table: str, batch: list[tuple[Mapping[str, Any], str]], operation: DeadLetterOperation
    ) -> list[tuple[Mapping[str, Any], str]]:
        entries = [
            {
                "Id": str(i),
                "MessageBody": dumps_plain(dict(item)),
                "MessageAttributes": {
                    "table": {"DataType": "String", "StringValue": table},
                    "reason": {"DataType": "String", "StringValue": (reason or "unknown")[:1000]},
                    "operation": {"DataType": "String", "StringValue": operation},
                },
            }
            for i, (item, reason) in enumerate(batch)
        ]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            log.error("dead letters not sent to SQS", extra={"table": table, "count": len(batch), "error": str(exc)})
            return batch
        failed = [batch[int(f["Id"])] for f in response.get("Failed", [])]
        self.sent += len(batch) - len(failed)
        if failed:
            log.error("SQS refused dead letters", extra={"table": table, "count": len(failed)})
        return failed
