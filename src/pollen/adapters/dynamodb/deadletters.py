"""Dead-letter sinks: where items that could not be written go, in a form `pollen load` replays.

The default sink writes, per table and per run, ``<home>/dead-letters/<table>-<run>.jsonl`` (one plain JSON item per
line, numbers exact: exactly what ``pollen load`` reads) and a sibling ``<table>-<run>.reasons.jsonl`` (one
``{"reason": ..., "item": true}`` per line, in the same order; the reason names the key). Replaying means ``pollen load <table> <file>.jsonl`` as is; an item that
cannot be written as JSON at all (only possible for invalid input) appears in the reasons file only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pollen.adapters.dynamodb.codec import CodecError, dumps_plain


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
