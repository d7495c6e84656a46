"""Dead-letter sinks: where items that could not be written go, in a form `pollen load` replays.

The default sink writes, per table and per run, ``<home>/dead-letters/<table>-<run>.jsonl`` (one plain JSON item per
line, numbers exact: exactly what ``pollen load`` reads) and a sibling ``<table>-<run>.reasons.jsonl`` (one
``{"reason": ..., "item": true}`` per line, in the same order; the reason names the key). Replaying means ``pollen load <table> <file>.jsonl`` as is; an item that
cannot be written as JSON at all (only possible for invalid input) appears in the reasons file only.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.codec import CodecError, dumps_plain
from pollen.errors import PollenError

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"


class JsonlDeadLetters:
    """JSON Lines files under a folder, one item file and one reasons file per table and run."""

    def __init__(self, folder: Path, *, run_id: str | None = None) -> None:
        self.folder = folder
        self.run_id = run_id or new_run_id()
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def path_for(self, table: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in table)
        return self.folder / f"{safe}-{self.run_id}.jsonl"

    def reasons_path_for(self, table: str) -> Path:
        return self.path_for(table).with_suffix(".reasons.jsonl")

    def put(self, table: str, item: Mapping[str, Any], reason: str) -> None:
        self.put_many(table, [(item, reason)])

    def put_many(self, table: str, entries: Iterable[tuple[Mapping[str, Any], str]]) -> None:
        """Append many dead letters with one open per file."""
        items: list[str] = []
        reasons: list[str] = []
        for item, reason in entries:
            try:
                line: str | None = dumps_plain(dict(item))
            except CodecError:
                line = None
            if line is not None:
                items.append(line + "\n")
            reasons.append(dumps_plain({"reason": reason, "item": line is not None}) + "\n")
        if not reasons:
            return
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if items:
                with self.path_for(table).open("a", encoding="utf-8") as fh:
                    fh.writelines(items)
            with self.reasons_path_for(table).open("a", encoding="utf-8") as fh:
                fh.writelines(reasons)
            self.counts[table] = self.counts.get(table, 0) + len(reasons)

    def files(self) -> list[Path]:
        return [self.path_for(table) for table in sorted(self.counts) if self.path_for(table).exists()]


class MemoryDeadLetters:
    """Keeps dead letters in memory (tests, and callers that forward them elsewhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, dict[str, Any], str]] = []

    def put(self, table: str, item: Mapping[str, Any], reason: str) -> None:
        with self._lock:
            self.entries.append((table, dict(item), reason))


class SqsDeadLetters:
    """Dead letters to an SQS queue (production, where the local disk does not outlive an invocation).

    Each message body is one plain JSON item exactly as `pollen load` reads it (numbers exact); the table and the
    reason travel as message attributes. If SQS refuses a message, it goes to ``fallback`` (and is logged), so a
    dead letter is never dropped silently.
    """

    BATCH = 10  # SendMessageBatch takes at most ten entries

    def __init__(self, queue_url: str, *, client: Any, fallback: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client
        self.fallback = fallback
        self.sent = 0

    def put(self, table: str, item: Mapping[str, Any], reason: str) -> None:
        self.put_many(table, [(item, reason)])

    def put_many(self, table: str, entries: Iterable[tuple[Mapping[str, Any], str]]) -> None:
        pending = list(entries)
        for start in range(0, len(pending), self.BATCH):
            batch = pending[start : start + self.BATCH]
            refused = self._send(table, batch)
            if refused and self.fallback is not None:
                self.fallback.put_many(table, refused)
            elif refused:
                raise PollenError(f"{table}: {len(refused)} dead letters refused by SQS and no fallback")

    def _send(self, table: str, batch: list[tuple[Mapping[str, Any], str]]) -> list[tuple[Mapping[str, Any], str]]:
        entries = [
            {
                "Id": str(i),
                "MessageBody": dumps_plain(dict(item)),
                "MessageAttributes": {
                    "table": {"DataType": "String", "StringValue": table},
                    "reason": {"DataType": "String", "StringValue": (reason or "unknown")[:1000]},
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
