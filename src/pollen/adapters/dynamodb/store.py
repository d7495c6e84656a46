"""The DynamoDB store: the single dispatch point for every DynamoDB call the jobs, `pollen load` and `pollen export` make.

:class:`DynamoStore` is a facade over the modules of this package; every call it makes goes through its one
:class:`.dispatch.Dispatcher`.

Write strategy (``upsert``, :mod:`.upsert`): **read-diff-write**, run under the job's lease (``store.lease(job)``,
taken by the jobs and by ``pollen load``) so that no second writer of the same job interleaves between read and write.

1. Every input item is encoded (:mod:`.codec`: exact numbers, DynamoDB's types), its key checked and its size
   measured by DynamoDB's rules; a bad item is *invalid*: reported and dead-lettered, never sent.
2. Duplicate keys in one call are resolved before anything is sent: the newer ``lastSyncDate`` wins, else the later
   input (:func:`.batching.resolve_duplicates`); losers are counted as *duplicates*.
3. Each item gets a content hash (``contentHash``) over all attributes except the bookkeeping ones
   (``lastSyncDate`` by default; the parameter ``bookkeeping``), stored with the item.
4. The stored ``contentHash`` and ``lastSyncDate`` of the keys are read with strong consistency, by key or by one
   parallel projected Scan, whichever costs fewer read units (:mod:`.versions`). Workers (``write_concurrency``
   threads, each with its own client) take chunks of the items and skip an item whose hash is unchanged
   (*unchanged*: not rewritten, so it keeps its stored ``lastSyncDate``) or whose ``lastSyncDate`` is older than the
   stored one (*stale*). A stored item without a hash (written by another tool) counts as changed and is rewritten
   once, with its hash.
5. The rest goes out in BatchWriteItem calls of at most 25 requests and 16 MB, never two requests for one key
   (:mod:`.batch_writer`: retries with capped exponential backoff and full jitter, the retry budget counting rounds
   *without progress*; a ValidationException isolated to its item by bisection; an AIMD rate limiter in WCU/s shared
   by all workers, capped by ``wcu_limit``).
6. At the deadline no new request starts; whatever is not written is *failed* with the reason "deadline".
   Every failed or invalid item is named in the returned :class:`.reports.WriteReport` and put to the dead-letter
   sink (:mod:`.settlement`).

Where atomicity matters the store uses conditional writes instead: the job lease (:mod:`.lease`: conditional puts
in ``pollenControl``) and ``move_sort_key`` (:mod:`.transactions`: one TransactWriteItems over the whole partition,
each action conditional on its item being unchanged since it was read; re-read and retried on a conflict;
idempotency token; optionally conditional on a job's lease being free, so that no move commits while SyncAssets
runs).

Reads (:mod:`.reader`): ``query`` goes through a GSI when given and falls back to a filtered, sorted Scan of the base
table when the index cannot answer; ``scan`` (:mod:`.scan`) reads segments in parallel.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pollen.adapters.dynamodb.batch_writer import BatchWriter
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.deletes import Deleter
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.lease import LEASE_TTL_S, HeartbeatWait, JobLease, wait_on_event
from pollen.adapters.dynamodb.reader import Reader
from pollen.adapters.dynamodb.reports import WriteReport
from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter
from pollen.adapters.dynamodb.scan import Scanner
from pollen.adapters.dynamodb.schema import DEFAULT_BOOKKEEPING, HASH_ATTRIBUTE, TableCatalog, TableInfo
from pollen.adapters.dynamodb.transactions import Transactions
from pollen.adapters.dynamodb.upsert import UpsertPlanner
from pollen.adapters.dynamodb.versions import VersionReader
from pollen.backoff import DYNAMODB_BACKOFF, Backoff
from pollen.deadline import Deadline
from pollen.observability import MetricsRecorder
from pollen.ports import DeadLetterSink, Item, Key

log = logging.getLogger(__name__)


class DynamoStore:
    """``pollen.ports.ItemStore`` on DynamoDB. Table names are logical; ``table_prefix`` is added.

    ``client`` is used for every call when given without ``client_factory`` (boto3 clients are thread-safe);
    ``client_factory`` builds one client per worker thread (required for :class:`.wire.WireClient`). ``clock``: wall
    time (epoch seconds) a move guarded by a lease compares the lease's expiry with.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        client_factory: Callable[[], Any] | None = None,
        table_prefix: str = "",
        metrics: MetricsRecorder | None = None,
        dead_letters: DeadLetterSink | None = None,
        concurrency: int = 4,
        wcu_limit: float | None = None,
        retry: Backoff | None = None,
        bookkeeping: Iterable[str] = DEFAULT_BOOKKEEPING,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        run_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None and client_factory is None:
            client_factory = lambda: make_client("dynamodb", region=region, endpoint_url=endpoint_url)  # noqa: E731
        self.table_prefix = table_prefix
        self.metrics = metrics or MetricsRecorder()
        self.dead_letters = dead_letters
        self.concurrency = max(1, concurrency)
        self.retry = retry or DYNAMODB_BACKOFF
        self.limiter = AdaptiveRateLimiter(wcu_limit)
        self.bookkeeping = frozenset(bookkeeping) | {HASH_ATTRIBUTE}
        self.run_id = run_id or uuid.uuid4().hex
        self.dispatcher = Dispatcher(
            client, client_factory, metrics=self.metrics, retry=self.retry, concurrency=self.concurrency
        )
        self.catalog = TableCatalog(self.dispatcher, table_prefix)
        self.scanner = Scanner(self.dispatcher, self.catalog)
        writer = BatchWriter(self.dispatcher, self.limiter)
        versions = VersionReader(self.dispatcher, self.scanner)
        self.upserter = UpsertPlanner(
            self.catalog, self.dispatcher, versions, writer, bookkeeping=self.bookkeeping, dead_letters=dead_letters
        )
        self.deleter = Deleter(self.catalog, self.dispatcher, writer, dead_letters)
        self.reader = Reader(self.dispatcher, self.catalog, self.scanner)
        self.transactions = Transactions(self.catalog, self.dispatcher, self.bookkeeping, clock)

    # --- plumbing --------------------------------------------------------------------------------------------------

    def client(self) -> Any:
        """This thread's client."""
        return self.dispatcher.client()

    def close(self) -> None:
        """Stop the workers and close the connections of the clients this store built."""
        self.dispatcher.close()

    def __enter__(self) -> DynamoStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def table_info(self, table: str) -> TableInfo:
        """Key schema and indexes of a logical table (pollen's definitions, else DescribeTable)."""
        return self.catalog.info(table)

    def require_table(self, table: str) -> TableInfo:
        """The table's metadata, after checking with DescribeTable that it exists (MissingResource, exit 2, if not):
        for a job that should not start without it."""
        return self.catalog.require(table)

    def _call(
        self,
        operation: str,
        deadline: Deadline,
        keys: Sequence[Mapping[str, Any]] = (),
        retry: Backoff | None = None,
        **params: Any,
    ) -> Any:
        """One call through the dispatcher's retry loop (for the lease's reads)."""
        return self.dispatcher.call(operation, deadline, keys, retry, **params)

    # --- writes ----------------------------------------------------------------------------------------------------

    def upsert(
        self,
        table: str,
        items: Iterable[Item],
        *,
        deadline: Deadline | None = None,
        compare: bool = True,
        progress: Callable[[int], None] | None = None,
        stored: Iterable[Item] | None = None,
    ) -> WriteReport:
        """Write the items that changed; see the module docstring for the rules. ``compare=False`` writes every
        valid item without reading first (no unchanged/stale detection). ``progress(n)`` is called as items
        settle. ``stored``: what the caller has just read of the whole table (each item's key, ``contentHash``
        and ``lastSyncDate``, e.g. a Scan projected onto them); the items are compared with it instead of being
        read again, and a key absent from it is taken as new."""
        return self.upserter.upsert(table, items, deadline=deadline, compare=compare, progress=progress, stored=stored)

    def changed(self, table: str, items: Sequence[Item], stored: Iterable[Item]) -> list[Item]:
        """The items an ``upsert(table, items, stored=stored)`` would not count unchanged, in order: an item whose
        plain content hashes to its stored ``contentHash`` is left out (nothing encoded, read or written; in the
        calling thread). A caller that writes only these skips the upsert's per-item bookkeeping for the rest."""
        return self.upserter.changed(table, items, stored)

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> WriteReport:
        """Delete items by key (a missing item is not an error); duplicate keys are sent once."""
        return self.deleter.delete(table, keys, deadline=deadline)

    # --- reads -----------------------------------------------------------------------------------------------------

    def get(self, table: str, key: Key) -> Item | None:
        return self.reader.get(table, key)

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]:
        """The items that exist, in the order of ``keys`` (duplicates and missing keys left out)."""
        return self.reader.batch_get(table, keys)

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
        """Items with ``partition[0] == partition[1]`` (sort key within ``sort_between``, inclusive), in sort-key
        order, through ``index`` when given; falls back to a filtered Scan when the index is missing or failing
        (see :mod:`.reader`). ``attributes`` projects the items onto those (the table's and the index's keys always
        included; naming ``contentHash`` keeps it)."""
        return self.reader.query(
            table,
            partition=partition,
            sort_between=sort_between,
            index=index,
            descending=descending,
            limit=limit,
            attributes=attributes,
        )

    def scan(
        self,
        table: str,
        *,
        segments: int = 1,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
        wire: bool = False,
    ) -> Generator[Item, None, None]:
        """Every item of a table; ``segments > 1`` reads that many segments in parallel (one client each);
        ``attributes`` projects each item onto those attributes; ``consistent`` asks for strongly consistent reads;
        ``wire`` yields the items as DynamoDB returned them (typed values, with the content hash); a projection that
        names ``contentHash`` keeps it in the plain items."""
        return self.scanner.scan(table, segments=segments, attributes=attributes, consistent=consistent, wire=wire)

    # --- transactions and leases -----------------------------------------------------------------------------------

    def put_action(
        self, table: str, item: Item, *, condition: str | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A TransactWriteItems Put of a plain item (encoded, checked, with its content hash)."""
        return self.transactions.put_action(table, item, condition=condition, names=names)

    def delete_action(self, table: str, key: Key, *, must_exist: bool = False) -> dict[str, Any]:
        return self.transactions.delete_action(table, key, must_exist=must_exist)

    def transact_write(
        self, actions: Sequence[dict[str, Any]], *, token: str | None = None, deadline: Deadline | None = None
    ) -> None:
        """One TransactWriteItems (at most 100 actions) with an idempotency token (derived from the actions when not
        given, so a retried call is not applied twice). Transient cancellations (conflicts, throttling) are retried
        with the same token; otherwise raises :class:`.transactions.TransactionCancelled`."""
        self.transactions.transact_write(actions, token=token, deadline=deadline)

    def move_sort_key(self, table: str, key: Key, new_sort: Any, *, unless_leased: str | None = None) -> Item:
        """Give the item of ``key``'s partition the sort key ``new_sort``, atomically and without losing a
        concurrent write: one TransactWriteItems that deletes every item of the partition (a second item left by a
        race included) and puts the newest synced content (greatest ``lastSyncDate``, then sort key) under the
        greater of ``new_sort`` and the newest stored sort key. Each action is conditional on its item being
        unchanged since it was read (its ``contentHash`` and ``lastSyncDate``; a new key on not existing yet), so a
        sync that wrote meanwhile is never overwritten: on such a conflict the partition is read again and the move
        retried (``MoveConflicts``), up to ``MOVE_ATTEMPTS`` times.

        ``unless_leased``: a job whose lease must be free (no item in ``pollenControl``, or expired by this store's
        ``clock``); the transaction then carries a ConditionCheck on the lease item as one more action, so it cannot
        commit while that job runs. A job that takes its lease before it reads the table (SyncAssets) therefore
        either reads the moved item or runs while no guarded move commits: its writes at the keys it read never
        recreate a moved item's old key. Refused while the lease is held: :class:`pollen.errors.LeaseBlocked`
        (transient; nothing changed, the caller may try again later).

        Returns the item as stored. Raises NotFound when the partition is empty, TransactionCancelled (a
        PollenError) when the move keeps conflicting or is cancelled for another reason."""
        return self.transactions.move_sort_key(table, key, new_sort, unless_leased=unless_leased)

    def lease(
        self,
        job: str,
        ttl_s: float = LEASE_TTL_S,
        *,
        heartbeat: bool = True,
        force: bool = False,
        clock: Callable[[], float] = time.time,
        wait: HeartbeatWait = wait_on_event,
    ) -> JobLease:
        """Hold the job's lease for the ``with`` block, renewed in the background while the block runs (see
        :mod:`.lease`); raises LeaseHeld when another live run holds it (``force``: take it over anyway)."""
        return JobLease(self, job, ttl_s, heartbeat=heartbeat, force=force, clock=clock, wait=wait)
