"""Every port (the small Protocols the jobs, streams and entry points depend on) and the data types they speak. Adapters implement them; tests may use in-process fakes.

Items are plain Python values as the jobs see them: ``str``, ``Decimal`` (never float), ``int``, ``bool``,
``None``, ``list``, ``dict``, ``set`` and ``bytes``. Table names are logical (``"assets"``); the store adds the
prefix. Every method that writes returns a :class:`WriteReport`-like object and never drops an item silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from pollen.deadline import Deadline

Item = dict[str, Any]
Key = dict[str, Any]
StatementFunction = Literal["CASH_FLOW", "BALANCE_SHEET", "INCOME_STATEMENT"]


class Lease(Protocol):
    """A job's lease while its block runs (the store renews it in the background)."""

    @property
    def lost(self) -> str | None:
        """Why the lease was lost while held (another run may have overlapped this one), else None."""
        ...

    @property
    def notes(self) -> list[str]:
        """What else the report should say about the lease: a takeover of a dead run's (or a forced) lease, a
        release that failed."""
        ...


class WriteOutcome(Protocol):
    """What a bulk write reports (the store's WriteReport implements it)."""

    written: int
    unchanged: int
    duplicates: int
    stale: int
    invalid: int
    failed: int

    @property
    def ok(self) -> bool: ...

    def error_lines(self) -> list[str]: ...


#: What a dead letter asks for when replayed: put the item, or delete the item with this key.
DeadLetterOperation = Literal["put", "delete"]


class DeadLetterSink(Protocol):
    """Where what could not be written goes, in a form that can be replayed (the family in
    :mod:`pollen.adapters.deadletters`). The store sends items (``operation="put"``: ``item`` is the whole item;
    ``"delete"``: ``item`` is the key to delete, so that a replay does the same thing); the stream sync sends whole
    stream records. ``put_many`` keeps many with one write (one call per upsert/delete)."""

    def put(
        self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put"
    ) -> None: ...

    def put_many(
        self,
        table: str,
        entries: Iterable[tuple[Mapping[str, Any], str]],
        *,
        operation: DeadLetterOperation = "put",
    ) -> None: ...


#: What a dead letter holds (SQS message attribute ``kind``): a plain item of a table (replayed into the table, or
#: a key deleted from it when its ``operation`` is ``delete``) or a whole DynamoDB stream record (replayed into the
#: search index).
ITEM = "item"
STREAM_RECORD = "stream-record"


@dataclass
class QueuedDeadLetter:
    """One dead letter received from the dead-letter queue."""

    table: str
    kind: str
    reason: str
    document: Any  # the decoded body: a plain item (or key) for ITEM, a stream record for STREAM_RECORD
    receipt: str
    operation: DeadLetterOperation = "put"  # for ITEM: "delete" when the document is a key to delete again


class DeadLetterQueue(Protocol):
    """The dead-letter queue as ``pollen dead-letters replay`` drains it."""

    def waiting(self) -> int: ...

    def receive(self, limit: int = 10) -> tuple[list[QueuedDeadLetter], list[str]]: ...

    def delete(self, letters: list[QueuedDeadLetter]) -> None: ...


#: The store's hash of an item's content (without bookkeeping attributes); returned by a Scan only when projected.
CONTENT_HASH = "contentHash"
#: What ``ItemStore.upsert(stored=...)`` needs of each stored item besides its key.
VERSION_ATTRIBUTES = (CONTENT_HASH, "lastSyncDate")


class ItemStore(Protocol):
    """The single dispatch point for every DynamoDB call the jobs make."""

    def upsert(
        self,
        table: str,
        items: Iterable[Item],
        *,
        deadline: Deadline | None = None,
        stored: Iterable[Item] | None = None,
    ) -> WriteOutcome:
        """Write items that changed (content compared without bookkeeping attributes); skip unchanged ones;
        never apply an item whose ``lastSyncDate`` is older than the stored one. ``stored``: the whole table as the
        caller has just read it, projected onto :data:`VERSION_ATTRIBUTES` (and the key); the items are compared
        with it instead of being read again, and a key absent from it is new."""
        ...

    def changed(self, table: str, items: Sequence[Item], stored: Iterable[Item]) -> list[Item]:
        """The items an ``upsert(table, items, stored=stored)`` would not count unchanged: those whose content
        differs from their version in ``stored`` (projected as for ``upsert``) or that have none there, in order.
        Reads and writes nothing; runs in the calling thread."""
        ...

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> WriteOutcome: ...

    def get(self, table: str, key: Key) -> Item | None: ...

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]: ...

    def query(
        self,
        table: str,
        *,
        partition: tuple[str, Any],
        sort_between: tuple[Any, Any] | None = None,
        index: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        attributes: Sequence[str] | None = None,
    ) -> Iterator[Item]:
        """Items with ``partition[0] == partition[1]`` (and the sort key within ``sort_between``, inclusive),
        through ``index`` when given; falls back to a filtered Scan when the index is missing or failing.
        ``attributes`` projects the items (keys always included)."""
        ...

    def scan(
        self,
        table: str,
        *,
        segments: int = 1,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
    ) -> Iterator[Item]:
        """Every item of a table; with ``attributes``, only those attributes of each item (a projection: cheaper to
        move and to decode when a job needs only keys and a few fields; naming :data:`CONTENT_HASH` returns the
        store's content hash). ``consistent``: strongly consistent reads (twice the read units)."""
        ...

    def move_sort_key(self, table: str, key: Key, new_sort: Any, *, unless_leased: str | None = None) -> Item:
        """Move the item of ``key``'s partition to the sort key ``new_sort`` (a newer stored one is kept) in one
        transaction, folding any second item of the partition in; the content kept is the newest synced one, as
        stored when the transaction commits (a concurrent write is never overwritten). With ``unless_leased`` (a
        job), the transaction commits only while that job's lease is free (absent or expired), else raises
        LeaseBlocked (transient, nothing changed). Returns the item as stored; raises PollenError when it cannot be
        done."""
        ...

    def lease(self, job: str, ttl_s: float = ..., *, force: bool = False) -> AbstractContextManager[Lease]:
        """Hold the job's lease for the block (renewed while it runs; ``ttl_s`` defaults to a short TTL); raises
        LeaseHeld when another live run holds it. A lease whose holder is known to be dead is taken over at once,
        ``force`` takes over any. After the block, ``lost`` and ``notes`` on the lease say what happened (the job
        reports them)."""
        ...


class AssetSource(Protocol):
    """Alpaca: raw asset dicts as the API sends them, and latest daily volumes."""

    def active_assets(self) -> list[dict[str, Any]]: ...

    def daily_volumes(self, symbols: Sequence[str]) -> dict[str, int]: ...


class FundamentalsSource(Protocol):
    """Alpha Vantage: raw payloads (every number a string). ``None`` means the API had no data (``{}``)."""

    def earnings_calendar(self, horizon: Literal["3month", "6month", "12month"]) -> Iterator[dict[str, str]]: ...

    def overview(self, symbol: str) -> dict[str, Any] | None: ...

    def earnings(self, symbol: str) -> dict[str, Any] | None: ...

    def statement(self, function: StatementFunction, symbol: str) -> dict[str, Any] | None: ...


class QueueSender(Protocol):
    """Where pollenation requests go (the SQS queue in production)."""

    def send(self, messages: Sequence[dict[str, Any]]) -> list[str]:
        """Send JSON messages; returns an error line per message that was not accepted (empty when all were)."""
        ...


# --- status --------------------------------------------------------------------------------------------------


class TableStatistics(Protocol):
    """DynamoDB's own figures about a table (DescribeTable)."""

    def item_count(self, table: str) -> int | None: ...


class StreamPosition(BaseModel):
    table: str
    #: Latest sequence number the local poller has applied (None: nothing yet).
    checkpoint: str | None = None
    #: Records in the stream after the checkpoint (at most ``capped_at``).
    pending: int = 0
    capped: bool = False
    #: Age of the oldest record not applied yet, seconds (0 when nothing is pending).
    lag_s: float = 0.0


class DeadLetterCount(BaseModel):
    waiting: int = 0
    where: str = ""
    approximate: bool = False


# --- streams and the search index -----------------------------------------------------------------------------

#: Version of nothing: any record or backfill beats it.
ZERO_SEQUENCE = "0"


def later_sequence(a: str, b: str) -> str:
    """The later of two stream sequence numbers (they compare as integers)."""
    return a if int(a) >= int(b) else b


class ShardPosition(Protocol):
    """Where the local poller stands in one shard."""

    @property
    def sequence_number(self) -> str | None:
        """Last sequence number applied (None: nothing yet)."""
        ...

    @property
    def finished(self) -> bool:
        """The shard is closed and was read to its end."""
        ...


class StreamCheckpoints(Protocol):
    """The local poller's checkpoints, as status reads them."""

    def shards(self, stream_arn: str) -> Mapping[str, ShardPosition]: ...

    def get(self, stream_arn: str, shard_id: str) -> ShardPosition | None: ...


class TableScanner(Protocol):
    """The one thing backfill needs from the store (``ItemStore.scan`` satisfies it)."""

    def scan(self, table: str, *, segments: int = 1) -> Iterator[dict[str, Any]]: ...


Operation = Literal["upsert", "delete"]


@dataclass(frozen=True)
class Change:
    """One document change for the index."""

    table: str
    doc_id: str
    operation: Operation
    version: str
    document: dict[str, Any] | None
    sequence_number: str
    #: The full stream record (for dead letters); None for backfill.
    record: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    #: Approximate creation time of the record, epoch seconds (lag).
    created_at: float | None = field(default=None, compare=False)


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
    """Versioned upserts and tombstoned deletes, and ranked search.

    Both adapters give the same guarantees: a change applies only when its version is newer than the stored one
    (document or tombstone), so duplicated, replayed and reordered changes converge; a delete leaves a tombstone
    carrying its version, kept for ``TOMBSTONE_RETENTION_S`` (longer than any record can stay in a stream, 24 h), so
    a late upsert can never resurrect it."""

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
