"""The embedded search index: one durable SQLite file (WAL) under POLLEN_HOME with an FTS5 table ranked by bm25.

``documents`` holds one row per (table, document id): the version, a tombstone flag and the JSON body. The FTS5
table shares its rowid. Each ``apply`` runs in one ``BEGIN IMMEDIATE`` transaction, so the version check and the
write are atomic even with a backfill and a poller writing from different processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pollen.ports import TOMBSTONE_RETENTION_S, ApplyResult, Change, SearchHit
from pollen.tables import TABLES

INDEX_FILE = "search-index.sqlite"
#: Attributes searched with a higher weight than the rest of the document.
TITLE_ATTRIBUTES = ("name", "Name")
#: bm25 weights of the FTS columns: key, title, body.
BM25_WEIGHTS = (10.0, 5.0, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    version TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (tbl, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_tombstones ON documents (deleted, updated_at);
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
    key, title, body, tokenize = 'unicode61 remove_diacritics 2'
);
"""


def _flatten(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from _flatten(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _flatten(inner)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, bool):
        return


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: every word must match, the last one as a prefix."""
    words = [w for w in text.split() if w.strip('"')]
    if not words:
        return ""
    terms = ['"' + w.replace('"', '""') + '"' for w in words]
    terms[-1] += "*"
    return " ".join(terms)


class EmbeddedSearchIndex:
    """SearchIndex on SQLite FTS5."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, busy_timeout_s: float = 60.0) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_home(cls, home: Path, **options: Any) -> EmbeddedSearchIndex:
        return cls(home / INDEX_FILE, **options)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ---------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        now = self._clock()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    self._apply_one(db, change, now, result)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return result

    def _apply_one(self, db: sqlite3.Connection, change: Change, now: float, result: ApplyResult) -> None:
        row = db.execute(
            "SELECT id, version FROM documents WHERE tbl = ? AND doc_id = ?", (change.table, change.doc_id)
        ).fetchone()
        if row is not None and row[1] >= change.version:
            result.conflicts.append(change)
            return
        if change.operation == "delete":
            body = None
            deleted = 1
        else:
            body = json.dumps(change.document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            deleted = 0
        if row is None:
            rowid = db.execute(
                "INSERT INTO documents (tbl, doc_id, version, deleted, body, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (change.table, change.doc_id, change.version, deleted, body, now),
            ).lastrowid
        else:
            rowid = row[0]
            db.execute(
                "UPDATE documents SET version = ?, deleted = ?, body = ?, updated_at = ? WHERE id = ?",
                (change.version, deleted, body, now, rowid),
            )
            db.execute("DELETE FROM documents_fts WHERE rowid = ?", (rowid,))
        if change.operation == "delete":
            result.deleted.append(change)
            return
        key, title, text = self._search_text(change)
        db.execute("INSERT INTO documents_fts (rowid, key, title, body) VALUES (?, ?, ?, ?)", (rowid, key, title, text))
        result.indexed.append(change)

    @staticmethod
    def _search_text(change: Change) -> tuple[str, str, str]:
        document = change.document or {}
        table = TABLES.get(change.table)
        key_names = table.key_names if table else ()
        key = " ".join(str(document.get(name, "")) for name in key_names)
        title = " ".join(str(document[name]) for name in TITLE_ATTRIBUTES if isinstance(document.get(name), str))
        rest = {k: v for k, v in document.items() if k not in key_names and k not in TITLE_ATTRIBUTES}
        return key, title, " ".join(_flatten(rest))

    def purge_tombstones(self, older_than_s: float = TOMBSTONE_RETENTION_S) -> int:
        cutoff = self._clock() - older_than_s
        with self._lock:
            cursor = self._db.execute("DELETE FROM documents WHERE deleted = 1 AND updated_at < ?", (cutoff,))
            return cursor.rowcount

    # -- reads ----------------------------------------------------------------------------------------------

    def get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM documents WHERE tbl = ? AND doc_id = ? AND deleted = 0", (table, doc_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def version_of(self, table: str, doc_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM documents WHERE tbl = ? AND doc_id = ?", (table, doc_id)
            ).fetchone()
        return str(row[0]) if row else None

    def documents(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, body FROM documents WHERE tbl = ? AND deleted = 0 ORDER BY doc_id", (table,)
            ).fetchall()
        for doc_id, body in rows:
            yield doc_id, json.loads(body)

    def snapshot(self) -> list[tuple[str, str, str, int, str | None]]:
        """Every row, tombstones included (tests compare replays with it)."""
        with self._lock:
            return self._db.execute(
                "SELECT tbl, doc_id, version, deleted, body FROM documents ORDER BY tbl, doc_id"
            ).fetchall()

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT deleted, COUNT(*) FROM documents GROUP BY deleted").fetchall()
        found = dict(rows)
        return {"documents": found.get(0, 0), "tombstones": found.get(1, 0)}

    def search(self, query: str, *, table: str | None = None, limit: int = 10) -> list[SearchHit]:
        match = fts_query(query)
        if not match:
            return []
        sql = (
            "SELECT d.tbl, d.doc_id, bm25(documents_fts, ?, ?, ?) AS rank, d.body "
            "FROM documents_fts JOIN documents d ON d.id = documents_fts.rowid "
            "WHERE documents_fts MATCH ? AND d.deleted = 0"
        )
        params: list[Any] = [*BM25_WEIGHTS, match]
        if table:
            sql += " AND d.tbl = ?"
            params.append(table)
        sql += " ORDER BY rank LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        # bm25() is lower-is-better (negative); report a positive score, higher is better.
        return [SearchHit(tbl, doc_id, -rank, json.loads(body)) for tbl, doc_id, rank, body in rows]
