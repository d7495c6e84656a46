"""The dead-letter family: where what could not be written goes, in a form that can be replayed.

One port (:class:`pollen.ports.DeadLetterSink`), four sinks, used by the store (items and keys) and by the stream
sync (whole stream records) alike:

- :class:`JsonlDeadLetters`: per table, run and operation, a JSON Lines file under ``<home>/dead-letters/``:
  ``<table>-<run>.jsonl`` for puts and ``<table>-<run>.deletes.jsonl`` for deletes. The first line is a header that
  says what the file holds, ``{"pollenDeadLetters": {"version": 1, "operation": "put"|"delete", "table": "<table>"}}``;
  every other line is one plain JSON item (puts) or key (deletes), numbers exact. A sibling ``.reasons.jsonl`` file
  (``<table>-<run>.reasons.jsonl``, ``<table>-<run>.deletes.reasons.jsonl``) has one ``{"reason": ..., "item": true}``
  per dead letter, in the same order; the reason names the key. Replaying either file is
  ``pollen load <table> <file>``: ``load`` recognises the header and puts or deletes accordingly (both idempotent).
  An item that cannot be written as JSON at all (only possible for invalid input) appears in the reasons file only.
- :class:`StreamRecordFile`: stream records the search index refused, one ``{"table", "reason", "at", "record"}``
  line each in ``<home>/dead-letters/stream-records.jsonl`` (the full record, for inspection and a backfill).
- :class:`SqsDeadLetters`: either kind to an SQS queue (Lambda, where the local disk does not outlive an
  invocation); :class:`SqsDeadLetterReader` reads them back for ``pollen dead-letters replay``.
- :class:`MemoryDeadLetters`: in memory (tests, and callers that forward dead letters elsewhere).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.codec import CodecError, dumps_plain, loads_plain
from pollen.aws import translate
from pollen.backoff import BATCH_BACKOFF, Backoff
from pollen.errors import ConfigError, DeadLettersLost
from pollen.ports import ITEM, DeadLetterOperation, QueuedDeadLetter

log = logging.getLogger(__name__)


#: The stream sync's local dead-letter file, under POLLEN_HOME.
STREAM_RECORD_FILE = "dead-letters/stream-records.jsonl"
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


class _Sink:
    """What every sink shares: one dead letter is ``put_many`` of one."""

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put") -> None:
        self.put_many(table, [(item, reason)], operation=operation)

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        raise NotImplementedError


def _not_kept(where: Path, exc: OSError, count: int, what: str) -> ConfigError:
    """A dead-letter folder that cannot be written (``POLLEN_HOME`` is a file, no permission, disk full)."""
    return ConfigError(
        f"cannot write dead letters to {where}: {exc.strerror or exc} (check POLLEN_HOME); {count} {what} not kept"
    )


class JsonlDeadLetters(_Sink):
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

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        """Append many dead letters with one open per file."""
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
                raise _not_kept(self.folder, exc, len(reasons), f"{table} dead letters") from exc
            self.counts[table] = self.counts.get(table, 0) + len(reasons)
            self._written.add(path)

    def files(self) -> list[Path]:
        """The item files written by this sink (puts and deletes), for the report."""
        return sorted(p for p in self._written if p.exists())


class StreamRecordFile(_Sink):
    """Stream records as JSON Lines, ``{"table", "reason", "at", "record"}`` with the full record, in one file (the
    stream sync's local sink: ``pollen stream`` and ``pollen dead-letters replay``). A record says itself what it
    did (its ``eventName``), so ``operation`` is not written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def in_home(cls, home: Path) -> StreamRecordFile:
        return cls(home / STREAM_RECORD_FILE)

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        at = time.time()
        lines = [
            json.dumps({"table": table, "reason": reason[:500], "at": at, "record": item}, default=str, sort_keys=True)
            + "\n"
            for item, reason in entries
        ]
        if not lines:
            return
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.writelines(lines)
            except OSError as exc:
                raise _not_kept(self.path, exc, len(lines), f"{table} stream records") from exc

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]


class MemoryDeadLetters(_Sink):
    """Keeps dead letters in memory (tests, and callers that forward them elsewhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: ``(table, item or key or record, reason)``, in the order they came.
        self.entries: list[tuple[str, dict[str, Any], str]] = []
        #: The operation of each entry, in the same order.
        self.operations: list[DeadLetterOperation] = []

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        with self._lock:
            for item, reason in entries:
                self.entries.append((table, dict(item), reason))
                self.operations.append(operation)


#: Our ceiling for one SQS message, body and attributes together (SQS counts both), and for one SendMessageBatch.
SQS_MESSAGE_LIMIT = 256 * 1024
#: Body encoding (attribute ``encoding``) of a dead letter too big for a message as plain JSON.
GZIP_BASE64 = "gzip+base64"
#: Deletes were once queued under the table name plus this suffix; the reader still understands them.
LEGACY_DELETES_SUFFIX = ".deletes"


@dataclass
class _Entry:
    item: Mapping[str, Any]
    reason: str
    body: str
    attributes: dict[str, dict[str, str]]

    @property
    def size(self) -> int:
        # SQS counts the body and each attribute's name, data type and value.
        attrs = sum(
            len(k.encode()) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in self.attributes.items()
        )
        return len(self.body.encode()) + attrs


class SqsDeadLetters(_Sink):
    """Dead letters to an SQS queue (production, where the local disk does not outlive an invocation).

    Each message body is one plain JSON document (an item exactly as `pollen load` reads it, numbers exact, or a
    stream record); the table, the reason, the kind and the operation (``put`` or ``delete``: a delete's body is the key) travel as
    message attributes. A message never exceeds
    ``message_limit`` (256 KiB, body and attributes): the reason is cut to 1,000 characters, a body too big as
    plain JSON is sent gzip-compressed and base64-encoded (attribute ``encoding``), and batches are packed by size
    as well as by count. Refused entries (a failed call or SendMessageBatch's partial ``Failed``) are sent again after
    ``backoff``'s waits (:mod:`pollen.backoff`), up to its ``max_attempts``. What still did not go (or an item too big even compressed: a
    DynamoDB item of 400 KB of incompressible data) goes to ``fallback`` when there is one (the CLI's local files),
    else raises :class:`DeadLettersLost`, so that the Lambda invocation fails and its event source retries it.
    """

    BATCH = 10  # SendMessageBatch takes at most ten entries

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        fallback: Any = None,
        kind: str = ITEM,
        backoff: Backoff = BATCH_BACKOFF,
        message_limit: int = SQS_MESSAGE_LIMIT,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if client is None:
            from pollen.adapters.dynamodb.client import make_client

            client = make_client("sqs", region=region, endpoint_url=endpoint_url, max_attempts=3)
        self.queue_url = queue_url
        self.client = client
        self.fallback = fallback
        self.kind = kind
        self.backoff = backoff if sleep is None else backoff.waiting_with(sleep)
        self.message_limit = message_limit
        self.sent = 0
        self.retries = 0

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None:
        pending: list[_Entry] = []
        refused: list[tuple[_Entry, str]] = []
        for item, reason in entries:
            entry = self._entry(table, item, reason, operation)
            if entry.size > self.message_limit:
                refused.append((entry, f"{entry.size} bytes even compressed: above the {self.message_limit} limit"))
            else:
                pending.append(entry)
        for batch in self._batches(pending):
            refused += self._send_with_retries(table, batch)
        if not refused:
            return
        if self.fallback is not None:
            self.fallback.put_many(table, [(e.item, e.reason) for e, _ in refused], operation=operation)
            return
        raise DeadLettersLost(
            f"{table}: {len(refused)} dead letters could not be sent to SQS ({refused[0][1]})", code="dead-letters"
        )

    def _entry(self, table: str, item: Mapping[str, Any], reason: str, operation: DeadLetterOperation) -> _Entry:
        try:
            body = dumps_plain(dict(item))
        except CodecError:
            body = json.dumps(item, default=str, sort_keys=True)  # invalid input: keep it readable rather than lose it
        attributes = {
            "table": {"DataType": "String", "StringValue": table or "unknown"},
            "reason": {"DataType": "String", "StringValue": (reason or "unknown")[:1000]},
            "kind": {"DataType": "String", "StringValue": self.kind},
            "operation": {"DataType": "String", "StringValue": operation},
        }
        entry = _Entry(item, reason, body, attributes)
        if entry.size > self.message_limit:
            entry.body = base64.b64encode(gzip.compress(body.encode(), mtime=0)).decode("ascii")
            entry.attributes["encoding"] = {"DataType": "String", "StringValue": GZIP_BASE64}
        return entry

    def _batches(self, entries: list[_Entry]) -> Iterator[list[_Entry]]:
        """At most ten entries and ``message_limit`` bytes per SendMessageBatch (SQS's limit for the whole call)."""
        batch: list[_Entry] = []
        size = 0
        for entry in entries:
            if batch and (len(batch) == self.BATCH or size + entry.size > self.message_limit):
                yield batch
                batch, size = [], 0
            batch.append(entry)
            size += entry.size
        if batch:
            yield batch

    def _send_with_retries(self, table: str, batch: list[_Entry]) -> list[tuple[_Entry, str]]:
        todo = batch
        reasons: dict[int, str] = {}
        failures = 0
        while True:
            failed, permanent = self._send(table, todo, reasons)
            failures += 1
            if permanent or not failed or self.backoff.exhausted(failures):
                return [(e, reasons.get(id(e), "refused")) for e in failed]
            self.retries += len(failed)
            delay = self.backoff.delay_s(failures)
            log.warning(
                "retrying dead letters refused by SQS",
                extra={"table": table, "count": len(failed), "attempt": failures, "delay_s": delay},
            )
            self.backoff.sleeper(delay)
            todo = failed

    def _send(self, table: str, batch: list[_Entry], reasons: dict[int, str]) -> tuple[list[_Entry], bool]:
        """Send once; returns the entries SQS did not take, and whether retrying them is pointless."""
        request = [
            {"Id": str(i), "MessageBody": e.body, "MessageAttributes": e.attributes} for i, e in enumerate(batch)
        ]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=request)
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, service="sqs", action="SendMessageBatch")
            log.error("dead letters not sent to SQS", extra={"table": table, "count": len(batch), "error": str(error)})
            for entry in batch:
                reasons[id(entry)] = str(error)
            return batch, not error.transient
        failed: list[_Entry] = []
        permanent = True
        for failure in response.get("Failed", []):
            entry = batch[int(failure["Id"])]
            failed.append(entry)
            reasons[id(entry)] = f"{failure.get('Code', 'failed')}: {failure.get('Message', '')}"[:200]
            permanent = permanent and bool(failure.get("SenderFault"))
        self.sent += len(batch) - len(failed)
        if failed:
            log.error("SQS refused dead letters", extra={"table": table, "count": len(failed)})
        return failed, permanent and bool(failed)


class SqsDeadLetterReader:
    """Implements :class:`pollen.ports.DeadLetterQueue`: reads what :class:`SqsDeadLetters` wrote (bodies decoded, numbers exact) and deletes what was replayed."""

    def __init__(
        self, queue_url: str, *, client: Any = None, region: str = "us-east-1", endpoint_url: str | None = None
    ) -> None:
        if client is None:
            from pollen.adapters.dynamodb.client import make_client

            client = make_client("sqs", region=region, endpoint_url=endpoint_url, max_attempts=3)
        self.queue_url = queue_url
        self.client = client

    def _call(self, action: str, **request: Any) -> Any:
        try:
            return getattr(self.client, action)(QueueUrl=self.queue_url, **request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="sqs", action=action) from exc

    def waiting(self) -> int:
        """About how many messages the queue holds now (SQS's approximate count)."""
        response = self._call("get_queue_attributes", AttributeNames=["ApproximateNumberOfMessages"])
        return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))

    def receive(self, limit: int = 10, *, visibility_s: int = 300) -> tuple[list[QueuedDeadLetter], list[str]]:
        """Up to ``limit`` (<= 10) dead letters, and one error line per message that could not be decoded (those
        stay on the queue)."""
        response = self._call(
            "receive_message",
            MaxNumberOfMessages=max(1, min(10, limit)),
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=0,
        )
        letters: list[QueuedDeadLetter] = []
        errors: list[str] = []
        for message in response.get("Messages", []):
            attributes = {k: str(v.get("StringValue", "")) for k, v in message.get("MessageAttributes", {}).items()}
            body = str(message.get("Body", ""))
            try:
                if attributes.get("encoding") == GZIP_BASE64:
                    body = gzip.decompress(base64.b64decode(body)).decode("utf-8")
                document = loads_plain(body)
            except (ValueError, OSError, CodecError) as exc:
                errors.append(f"message {message.get('MessageId', '?')}: not a dead letter ({str(exc)[:80]})")
                continue
            table = attributes.get("table", "")
            operation: DeadLetterOperation = "delete" if attributes.get("operation") == "delete" else "put"
            if table.endswith(LEGACY_DELETES_SUFFIX):  # letters queued before the operation attribute existed
                table, operation = table.removesuffix(LEGACY_DELETES_SUFFIX), "delete"
            letters.append(
                QueuedDeadLetter(
                    table=table,
                    kind=attributes.get("kind", ITEM),
                    reason=attributes.get("reason", ""),
                    document=document,
                    receipt=str(message["ReceiptHandle"]),
                    operation=operation,
                )
            )
        return letters, errors

    def delete(self, letters: Iterable[QueuedDeadLetter]) -> None:
        pending = [letter.receipt for letter in letters]
        for start in range(0, len(pending), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(pending[start : start + 10])]
            response = self._call("delete_message_batch", Entries=entries)
            if response.get("Failed"):
                log.warning("replayed dead letters not deleted", extra={"count": len(response["Failed"])})
