"""The SearchIndex port: versioned upserts and tombstoned deletes, and ranked search.

Both adapters give the same guarantees: a change applies only when its version is newer than the stored one
(document or tombstone), so duplicated, replayed and reordered changes converge; a delete leaves a tombstone
carrying its version, kept for ``TOMBSTONE_RETENTION_S`` (longer than any record can stay in a stream, 24 h), so a
late upsert can never resurrect it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pollen.streams.records import Change

#: Stream records live 24 h and Lambda retries at most until they expire; tombstones outlive that with margin.
TOMBSTONE_RETENTION_S = 48 * 3600.0


@dataclass
class ApplyResult:
    """What one ``apply`` did; every change ends in exactly one of the lists."""

    indexed: list[Change] = field(default_factory=list)
    deleted: list[Change] = field(default_factory=list)
    #: Not applied because the index already held this version or a newer one (counts as success).
    conflicts: list[Change] = field(default_factory=list)
    #: Rejected by the index as bad (HTTP 400): dead-lettered with the full record, counts as handled.
    rejected: list[tuple[Change, str]] = field(default_factory=list)
    #: Could not be applied after all retries (transient): the caller must not checkpoint past them.
    failed: list[tuple[Change, str]] = field(default_factory=list)
    retries: int = 0

    def merge(self, other: ApplyResult) -> None:
        self.indexed += other.indexed
        self.deleted += other.deleted
        self.conflicts += other.conflicts
        self.rejected += other.rejected
        self.failed += other.failed
        self.retries += other.retries


@dataclass(frozen=True)
class SearchHit:
    table: str
    doc_id: str
    score: float
    document: dict[str, Any]


class SearchIndex(Protocol):
    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Apply the changes, each only if newer than what the index holds for its document."""
        ...

    def get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        """The live document, or None (absent or deleted)."""
        ...

    def version_of(self, table: str, doc_id: str) -> str | None:
        """The stored version (document or tombstone), or None."""
        ...

    def documents(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every live document of a table as (doc_id, document)."""
        ...

    def search(self, query: str, *, table: str | None = None, limit: int = 10) -> list[SearchHit]:
        """Live documents matching the query, best first."""
        ...

    def purge_tombstones(self, older_than_s: float = TOMBSTONE_RETENTION_S) -> int:
        """Forget tombstones written more than ``older_than_s`` ago; returns how many."""
        ...

    def close(self) -> None: ...
