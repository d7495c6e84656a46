"""The DynamoDB store: the single dispatch point for every DynamoDB call the jobs, `pollen load` and `pollen export` make.

Write strategy (``upsert``): **read-diff-write**, run under the job's lease (``store.lease(job)``, taken by the jobs
and by ``pollen load``) so that no second writer of the same job interleaves between read and write.

1. Every input item is encoded (:mod:`.codec`: exact numbers, DynamoDB's types), its key checked and its size
   measured by DynamoDB's rules; a bad item is *invalid*: reported and dead-lettered, never sent.
2. Duplicate keys in one call are resolved before anything is sent: the newer ``lastSyncDate`` wins, else the later
   input (:func:`.batching.resolve_duplicates`); losers are counted as *duplicates*.
3. Each item gets a content hash (``contentHash``) over all attributes except the bookkeeping ones
   (``lastSyncDate`` by default; the parameter ``bookkeeping``), stored with the item.
4. The stored ``contentHash`` and ``lastSyncDate`` of the keys are read with strong consistency, whichever way
   costs fewer read units: by key (each worker reads its chunk in BatchGetItems of 100 keys; every item costs at
   least one unit, whatever the projection) or, for a large upsert into a table that is small next to it, by one
   parallel projected Scan of the whole table before the writes (a Scan is charged by the bytes read, so reading
   10,000 small items costs a few hundred units instead of 10,000). The choice uses DescribeTable's size and count,
   which DynamoDB refreshes only every few hours, so the Scan gives up, and the reads go by key, once it has read
   more items than the estimate allowed. Workers (``write_concurrency`` threads, each with its own client) take
   chunks of the items and skip an item whose hash is unchanged (*unchanged*: not rewritten, so it keeps its stored ``lastSyncDate``) or
   whose ``lastSyncDate`` is older than the stored one (*stale*). A stored item without a hash (written by another
   tool) counts as changed and is rewritten once, with its hash.
5. The rest goes out in BatchWriteItem calls of at most 25 requests and 16 MB, never two requests for one key.
   UnprocessedItems, throttling, 5xx, resets and timeouts are retried with capped exponential backoff and full jitter;
   the retry budget counts rounds *without progress*. A ValidationException is isolated to its item by splitting the
   batch in halves, so its neighbours are written. All workers share an AIMD rate limiter in WCU/s, fed by throttling
   errors and by the unprocessed share of 200 responses, capped by ``wcu_limit``.
6. At the deadline no new request starts; whatever is not written is *failed* with the reason "deadline".
   Every failed or invalid item is named in the returned :class:`WriteReport` and put to the dead-letter sink.

Where atomicity matters the store uses conditional writes instead: the job lease (:mod:`.lease`: conditional puts
in ``pollenControl``) and ``move_sort_key`` (one TransactWriteItems over the whole partition, each action conditional
on its item being unchanged since it was read; re-read and retried on a conflict; idempotency token).

Reads: ``query`` goes through a GSI when given and falls back to a filtered, sorted Scan of the base table when the
index cannot answer: it is missing or still backfilling (an error naming the index), or it keeps failing with
throttling, 5xx or resets after a small retry budget (3 rounds, waits capped at 1 s). Any other error is raised, never
hidden by a fallback. Items already yielded before a failure are not repeated. Metrics: ``GsiQueryFailure`` (with
the reason) and ``GsiFallback``. ``scan`` reads segments in parallel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from operator import attrgetter
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batching import (
    MAX_BATCH_GET,
    MAX_TRANSACT_ACTIONS,
    resolve_duplicates,
    take_batch,
)
from pollen.adapters.dynamodb.client import make_client, resolve_endpoint
from pollen.adapters.dynamodb.errors import MissingResource, error_code, translate
from pollen.adapters.dynamodb.lease import LEASE_TTL_S, JobLease
from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter
from pollen.backoff import DYNAMODB_BACKOFF, Backoff
from pollen.deadline import Deadline
from pollen.errors import (
    ConfigError,
    NotFound,
    PermanentError,
    PollenError,
    ServiceUnavailable,
    ThrottledError,
    TransientError,
)
from pollen.observability import MetricsRecorder
from pollen.ports import DeadLetterOperation, DeadLetterSink, Item, Key
from pollen.report import JobReport
from pollen.settings import Settings
from pollen.tables import TABLES

log = logging.getLogger(__name__)

SYNC_ATTRIBUTE = "lastSyncDate"
HASH_ATTRIBUTE = "contentHash"
HASH_ATTRIBUTE_BYTES = len(HASH_ATTRIBUTE)
DEFAULT_BOOKKEEPING: frozenset[str] = frozenset({SYNC_ATTRIBUTE})

# Metric names (seeds 000-002: write success/failure, batch timing, retries, throttles, conflicts, GSI queries).
M_WRITTEN = "DynamoWriteSuccess"
M_FAILED = "DynamoWriteFailure"
M_INVALID = "DynamoWriteInvalid"
M_BATCH_MS = "BatchWriteLatency"
M_BATCH_COUNT = "BatchWriteRequests"
M_RETRIES = "DynamoRetries"
M_THROTTLES = "DynamoThrottles"
M_UNCHANGED = "UpsertUnchanged"
M_STALE = "UpsertStale"
M_DUPLICATES = "UpsertDuplicates"
M_UPSERT_MS = "UpsertDuration"
M_GSI_MS = "GsiQueryLatency"
M_GSI_FAILURE = "GsiQueryFailure"
M_GSI_FALLBACK = "GsiFallback"
M_TX_CANCELLED = "TransactionCancelled"
M_MOVE_CONFLICTS = "MoveConflicts"
M_BATCH_FAILED = "BatchWriteFailures"
M_UNITS = "WriteCapacityUnits"
M_GSI_QUERIES = "GsiQueries"
M_RETRY_EXHAUSTED = "RetryExhausted"

M_COMPARE_SCANS = "UpsertCompareScans"

#: A sort-key move that meets a concurrent write reads the partition again and retries, at most this often.
MOVE_ATTEMPTS = 8

#: At most this many items per Query page when a limit is given (without one, DynamoDB's 1 MB pages).
QUERY_PAGE_ITEMS = 1000

#: Items one worker takes at a time: read in BatchGetItems of 100, then written in BatchWriteItems of 25.
WORK_UNIT = 500
#: Upserts smaller than this always read by key (a few BatchGetItems; not worth a DescribeTable).
SCAN_COMPARE_MIN_ITEMS = 1_000
#: Read units per item read by key, strongly consistent (items up to 4 KB), and bytes per unit for a Scan.
RCU_BYTES = 4096

#: DynamoDB's rule for table names.
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


def check_table_name(name: str) -> None:
    """ConfigError (exit 2) for a name DynamoDB would refuse, before any call is made."""
    if not TABLE_NAME.match(name):
        raise ConfigError(
            f"illegal table name {name[:80]!r}: DynamoDB allows 3-255 characters: letters, digits, '_', '.', '-'"
        )


# --- reports -----------------------------------------------------------------------------------------------------


@dataclass
class ItemFailure:
    """One item that was not written, with its key and why."""

    key: dict[str, Any]
    reason: str
    kind: str = "failed"  # or "invalid"


#: Longer key values are cut in messages, so that a report line still shows why its item failed.
KEY_TEXT_CHARS = 80


def key_text(key: Mapping[str, Any]) -> str:
    def short(value: Any) -> str:
        text = str(value)
        return text if len(text) <= KEY_TEXT_CHARS else f"{text[:KEY_TEXT_CHARS]}...({len(text)} chars)"

    return "{" + ", ".join(f"{k}={short(v)}" for k, v in key.items()) + "}"


@dataclass
class WriteReport:
    """What one upsert/delete did. Satisfies ``pollen.ports.WriteOutcome``."""

    table: str
    written: int = 0
    unchanged: int = 0
    duplicates: int = 0
    stale: int = 0
    invalid: int = 0
    failed: int = 0
    deadline_reached: bool = False
    failures: list[ItemFailure] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.invalid == 0

    @property
    def total(self) -> int:
        return self.written + self.unchanged + self.duplicates + self.stale + self.invalid + self.failed

    def error_lines(self, limit: int | None = None) -> list[str]:
        lines = [f"{self.table} {key_text(f.key)}: {f.kind}: {f.reason}" for f in self.failures]
        return lines if limit is None else lines[:limit]

    def add_to(self, report: JobReport) -> None:
        """Add these counts and error lines into a job report (and ``duplicates``/``stale`` where it has them)."""
        report.written += self.written
        report.unchanged += self.unchanged
        report.failed += self.failed
        report.invalid += self.invalid
        for name in ("duplicates", "stale"):
            if name in type(report).model_fields:
                setattr(report, name, getattr(report, name) + getattr(self, name))
        for line in self.error_lines():
            report.add_error(line)
        if not self.ok:
            report.ok = False

    def merge(self, other: WriteReport) -> None:
        for name in ("written", "unchanged", "duplicates", "stale", "invalid", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.deadline_reached = self.deadline_reached or other.deadline_reached


class TransactionCancelled(PermanentError):
    """A TransactWriteItems call was cancelled; ``outcomes`` has one (code, message) per action."""

    def __init__(self, message: str, *, outcomes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.outcomes = outcomes


# --- table metadata ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableInfo:
    logical: str
    physical: str
    key_schema: tuple[tuple[str, str], ...]
    indexes: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @cached_property
    def key_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.key_schema)


@dataclass
class _Record:
    """One input item on its way through an upsert."""

    position: int
    plain: Mapping[str, Any]
    key: dict[str, Any]
    wire: dict[str, Any]
    signature: tuple[str, ...]
    sync: str | None
    digest: str
    size: int
    #: The complete item's JSON (wire form), set with the digest.
    json: str = ""


@dataclass
class _Write:
    signature: tuple[str, ...]
    request: dict[str, Any]
    #: ``request`` as compact JSON, for clients that take a ready body (``call_json``).
    json: str
    size: int
    units: int
    record: Any  # _Record for puts, the plain key for deletes


@dataclass
class _SentCounts:
    batches: int = 0
    units: int = 0


@dataclass
class _ChunkResult:
    report: WriteReport
    dead: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    settled: int = 0
    #: Key signatures already counted (written, unchanged, stale, invalid or failed): what a crash leaves is the rest.
    done: set[tuple[str, ...]] = field(default_factory=set)
    #: An error that must end the run (configuration, unreachable service), raised once everything is accounted for.
    fatal: PollenError | None = None


class DynamoStore:
    """``pollen.ports.ItemStore`` on DynamoDB. Table names are logical; ``table_prefix`` is added.

    ``client`` is used for every call when given without ``client_factory`` (boto3 clients are thread-safe);
    ``client_factory`` builds one client per worker thread (required for :class:`.wire.WireClient`).
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
    ) -> None:
        if client is None and client_factory is None:
            client_factory = lambda: make_client("dynamodb", region=region, endpoint_url=endpoint_url)  # noqa: E731
        self._shared_client = client
        self._factory = client_factory
        self.table_prefix = table_prefix
        self.metrics = metrics or MetricsRecorder()
        self.dead_letters = dead_letters
        self.concurrency = max(1, concurrency)
        self.retry = retry or DYNAMODB_BACKOFF
        self.limiter = AdaptiveRateLimiter(wcu_limit)
        self.bookkeeping = frozenset(bookkeeping) | {HASH_ATTRIBUTE}
        self.run_id = run_id or uuid.uuid4().hex
        self._local = threading.local()
        self._tables: dict[str, TableInfo] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        #: Whether DynamoDB has answered this store at all: an endpoint that cannot be reached before that is
        #: configuration or an outage at the start (not retried: exit 2 at once), after it an outage mid-run.
        self._reached = False

    # --- plumbing --------------------------------------------------------------------------------------------------

    def client(self) -> Any:
        """This thread's client."""
        if self._factory is None:
            return self._shared_client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._factory()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="pollen-store")
            return self._executor

    def close(self) -> None:
        """Stop the workers and close the connections of the clients this store built."""
        with self._lock:
            executor, self._executor = self._executor, None
            clients, self._clients = self._clients, []
        if executor is not None:
            executor.shutdown(wait=True)
        for client in clients:
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()
        self._local = threading.local()

    def __enter__(self) -> DynamoStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def table_info(self, table: str) -> TableInfo:
        """Key schema and indexes of a logical table (pollen's definitions, else DescribeTable)."""
        info = self._tables.get(table)
        if info is not None:
            return info
        definition = TABLES.get(table)
        if definition is not None:
            check_table_name(self.table_prefix + table)
            info = TableInfo(
                table,
                self.table_prefix + table,
                tuple((k.name, k.type) for k in (definition.partition, definition.sort) if k is not None),
                {
                    i.name: tuple((k.name, k.type) for k in (i.partition, i.sort) if k is not None)
                    for i in definition.indexes
                },
            )
        else:
            info = self._describe(table)
        self._tables[table] = info
        return info

    def _describe(self, table: str) -> TableInfo:
        candidates = [self.table_prefix + table] + ([table] if self.table_prefix else [])
        candidates = [name for name in candidates if TABLE_NAME.match(name)] or [candidates[0]]
        for physical in candidates:
            check_table_name(physical)
            try:
                described = self._call("describe_table", Deadline.never(), TableName=physical)["Table"]
            except MissingResource:
                continue
            types = {a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])}

            def schema(keys: list[dict[str, str]], types: dict[str, str] = types) -> tuple[tuple[str, str], ...]:
                ordered = sorted(keys, key=lambda k: k["KeyType"] != "HASH")
                return tuple((k["AttributeName"], types[k["AttributeName"]]) for k in ordered)

            return TableInfo(
                table,
                physical,
                schema(described["KeySchema"]),
                {g["IndexName"]: schema(g["KeySchema"]) for g in described.get("GlobalSecondaryIndexes", [])},
            )
        raise MissingResource(
            f"table {' or '.join(dict.fromkeys(candidates))} does not exist (run `pollen tables create`)",
            code="ResourceNotFoundException",
        )

    def require_table(self, table: str) -> TableInfo:
        """The table's metadata, after checking with DescribeTable that it exists (MissingResource, exit 2, if not):
        for a job that should not start without it."""
        info = self.table_info(table)
        self._call("describe_table", Deadline.never(), TableName=info.physical)
        return info

    def _translate(self, exc: Exception, *, keys: Sequence[Mapping[str, Any]] = (), action: str = "") -> PollenError:
        """:func:`.errors.translate`, plus what the store knows: whether DynamoDB has answered it before. An
        endpoint that was never reached is not retried (exit 2, one line, at once); one that answered before and
        is now unreachable is an outage mid-run: transient, retried, and reported like any other failure."""
        err = translate(exc, keys=keys, action=action)
        if isinstance(exc, ClientError):
            self._reached = True
        elif isinstance(err, ServiceUnavailable):
            if self._reached:
                return TransientError(err.message, keys=keys, code=err.code)
            err.transient = False
        return err

    def _call(
        self,
        operation: str,
        deadline: Deadline,
        keys: Sequence[Mapping[str, Any]] = (),
        retry: Backoff | None = None,
        **params: Any,
    ) -> Any:
        """One call with the retry policy (the store's, or ``retry``) for transient errors (single-item operations
        and reads)."""
        retry = retry or self.retry
        stalls = 0
        while True:
            try:
                response = getattr(self.client(), operation)(**params)
                self._reached = True
                return response
            except (ClientError, BotoCoreError, ConnectionError) as exc:
                err = self._translate(exc, keys=keys, action=_camel(operation))
                if isinstance(err, MissingResource) and "index" not in err.message.lower():
                    err = _missing_table(err, params)
                if not err.transient:
                    raise err from exc
                if isinstance(err, ThrottledError):
                    self.metrics.count(M_THROTTLES, operation=_camel(operation))
                stalls += 1
                if retry.exhausted(stalls) or deadline.expired():
                    raise err from exc
                self.metrics.count(M_RETRIES, operation=_camel(operation))
                retry.sleep(stalls, deadline)

    # --- upsert ----------------------------------------------------------------------------------------------------

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
        deadline = deadline or Deadline.never()
        started = time.perf_counter()
        info = self.table_info(table)
        report = WriteReport(table)
        dead: list[tuple[Mapping[str, Any], str]] = []
        records: list[_Record] = []
        #: Records read but not handed to a worker yet, and the workers' chunks not merged yet: what an exception
        #: in this thread leaves unsettled.
        unsubmitted: list[_Record] = records
        in_flight: list[tuple[Future[_ChunkResult], Sequence[_Record]]] = []
        fatal: PollenError | None = None
        try:
            for position, item in enumerate(items):
                try:
                    records.append(self._prepare_key(info, position, item))
                except codec.CodecError as exc:
                    key = _plain_key(item, info)
                    report.invalid += 1
                    report.failures.append(ItemFailure(key, exc.message, "invalid"))
                    dead.append((item, f"invalid {key_text(key)}: {exc.message}"))
            if report.invalid and progress:
                progress(report.invalid)
            resolved = resolve_duplicates(records, key=attrgetter("signature"), version=attrgetter("sync"))
            report.duplicates = len(resolved.losers)
            unsubmitted = winners = resolved.winners
            if report.duplicates and progress:
                progress(report.duplicates)
            if not compare:
                known = None
            elif stored is not None:
                known = self._versions_of(info, stored)
            else:
                known = self._versions_by_scan(info, winners, deadline)
            chunk_size = WORK_UNIT
            for i in range(0, len(winners), chunk_size):
                chunk = winners[i : i + chunk_size]
                in_flight.append(
                    (self._pool().submit(self._upsert_chunk, info, chunk, deadline, compare, known), chunk)
                )
                unsubmitted = winners[i + chunk_size :]
            while in_flight:
                result = in_flight[0][0].result()
                in_flight.pop(0)
                report.merge(result.report)
                dead.extend(result.dead)
                fatal = fatal or result.fatal
                if progress:
                    progress(result.settled)
        except BaseException as exc:
            # Interrupted (or a bug in this thread): every item not settled yet is failed and dead-lettered.
            reason = f"not written: the upsert stopped ({type(exc).__name__}: {str(exc)[:200]})"
            self._settle_after_error(info, report, dead, unsubmitted, in_flight, reason)
            raise
        finally:
            self._dead_letter(table, dead)
        if fatal is not None:
            raise fatal
        report.duration_s = round(time.perf_counter() - started, 3)
        self._count_report(report, "upsert")
        if not report.ok:
            log.warning(
                "upsert left items unwritten",
                extra={"table": table, "failed": report.failed, "invalid": report.invalid},
            )
        return report

    def _settle_after_error(
        self,
        info: TableInfo,
        report: WriteReport,
        dead: list[tuple[Mapping[str, Any], str]],
        unsubmitted: Sequence[_Record],
        in_flight: list[tuple[Future[_ChunkResult], Sequence[_Record]]],
        reason: str,
    ) -> None:
        """Account for every item of an upsert that an exception interrupted: chunks not started are failed,
        chunks running are waited for (a worker never leaves its chunk unsettled), the rest is failed."""
        leftover = _ChunkResult(WriteReport(info.logical))
        self._fail_all(leftover, info, unsubmitted, reason)
        cancelled = [future.cancel() for future, _ in in_flight]  # all first: a worker moves on while we wait
        for (future, chunk), was_cancelled in zip(in_flight, cancelled, strict=True):
            if was_cancelled:
                self._fail_all(leftover, info, chunk, reason)
                continue
            try:
                result = future.result()
            except BaseException:  # the worker itself was interrupted: its chunk's outcome is unknown
                self._fail_all(leftover, info, chunk, reason)
                continue
            report.merge(result.report)
            dead.extend(result.dead)
        in_flight.clear()
        report.merge(leftover.report)
        dead.extend(leftover.dead)

    def _prepare_key(self, info: TableInfo, position: int, item: Mapping[str, Any]) -> _Record:
        """The cheap first pass (key and version only), enough to resolve duplicates before the workers start."""
        if not isinstance(item, Mapping):
            raise codec.CodecError(f"an item must be a JSON object, not {type(item).__name__}")
        key_wire, signature = _guarded_encoding(codec.encode_key, item, info.key_schema)
        sync = item.get(SYNC_ATTRIBUTE)
        return _Record(
            position=position,
            plain=item,
            key={name: item[name] for name in info.key_names},
            wire=key_wire,
            signature=signature,
            sync=sync if isinstance(sync, str) else None,
            digest="",
            size=0,
        )

    def _complete(self, record: _Record) -> None:
        """The full encoding, content hash and size check (done by the workers, in parallel with the I/O)."""
        if HASH_ATTRIBUTE in record.plain:
            raise codec.CodecError(
                f"attribute name {HASH_ATTRIBUTE!r} is reserved: pollen stores its content hash there (rename it)"
            )
        wire, size = _guarded_encoding(codec.encode_item_sized, record.plain)
        size += HASH_ATTRIBUTE_BYTES + codec.HASH_CHARS
        if size > codec.MAX_ITEM_BYTES:
            raise codec.CodecError(f"item is {size} bytes, over DynamoDB's 400 KB limit")
        digest, text = _guarded_encoding(codec.add_content_hash, wire, self.bookkeeping, HASH_ATTRIBUTE)
        record.wire, record.digest, record.size, record.json = wire, digest, size, text

    def _prepare(self, info: TableInfo, position: int, item: Mapping[str, Any]) -> _Record:
        record = self._prepare_key(info, position, item)
        self._complete(record)
        return record

    def _upsert_chunk(
        self,
        info: TableInfo,
        records: Sequence[_Record],
        deadline: Deadline,
        compare: bool,
        known: Mapping[tuple[str, ...], tuple[str | None, str | None]] | None = None,
    ) -> _ChunkResult:
        """One worker's chunk. Never raises: whatever an unexpected error leaves unsettled is failed (and a
        run-ending error is kept in ``fatal`` for the caller to raise once everything is dead-lettered)."""
        result = _ChunkResult(WriteReport(info.logical), settled=len(records))
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
            self._fail_all(result, info, unsettled, f"not written: {type(exc).__name__}: {str(exc)[:200]}")
        return result

    def _upsert_records(
        self,
        result: _ChunkResult,
        info: TableInfo,
        records: Sequence[_Record],
        deadline: Deadline,
        compare: bool,
        known: Mapping[tuple[str, ...], tuple[str | None, str | None]] | None,
    ) -> None:
        valid: list[_Record] = []
        for record in records:
            try:
                self._complete(record)
            except codec.CodecError as exc:
                result.report.invalid += 1
                result.report.failures.append(ItemFailure(record.key, exc.message, "invalid"))
                result.dead.append((record.plain, f"invalid {key_text(record.key)}: {exc.message}"))
                result.done.add(record.signature)
                continue
            valid.append(record)
        records = valid
        to_write: list[_Record] = list(records)
        if deadline.expired():
            self._fail_all(result, info, to_write, "deadline reached before the item was sent", deadline=True)
            return
        if compare:
            try:
                stored = known if known is not None else self._stored_versions(info, records, deadline)
            except PollenError as exc:
                if exc.exit_code == 2 and not exc.transient:  # the job cannot run at all (no table, no service)
                    raise
                self._fail_all(result, info, to_write, f"could not read the stored version: {exc.message}")
                return
            to_write = []
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
        writes = [
            _Write(
                r.signature,
                {"PutRequest": {"Item": r.wire}},
                '{"PutRequest":{"Item":' + r.json + "}}",
                r.size,
                codec.write_units(r.size),
                r,
            )
            for r in to_write
        ]
        self._send(info, writes, deadline, result)

    def _versions_of(
        self, info: TableInfo, stored: Iterable[Item]
    ) -> dict[tuple[str, ...], tuple[str | None, str | None]]:
        """The versions of items a caller has read (plain items with their content hash), by key signature."""
        found: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
        for item in stored:
            try:
                _, signature = codec.encode_key(item, info.key_schema)
            except codec.CodecError:
                continue  # not a key of this table: it cannot match an incoming item either
            digest, sync = item.get(HASH_ATTRIBUTE), item.get(SYNC_ATTRIBUTE)
            found[signature] = (
                digest if isinstance(digest, str) else None,
                sync if isinstance(sync, str) else None,
            )
        return found

    def _versions_by_scan(
        self, info: TableInfo, records: Sequence[_Record], deadline: Deadline
    ) -> dict[tuple[str, ...], tuple[str | None, str | None]] | None:
        """The stored versions of the whole table by one projected, strongly consistent, parallel Scan, when that costs
        fewer read units than reading the records' keys; None when reading by key is cheaper or the Scan gave up."""
        count = len(records)
        if count < SCAN_COMPARE_MIN_ITEMS:
            return None
        try:
            described = self._call("describe_table", deadline, TableName=info.physical)["Table"]
        except PollenError as exc:
            log.info("describe failed; reading by key", extra={"table": info.logical, "error": exc.message[:200]})
            return None
        stored_items = int(described.get("ItemCount", 0))
        # A size of 0 next to a count (not refreshed yet, or an emulator): assume items like the incoming ones.
        stored_bytes = int(described.get("TableSizeBytes", 0)) or stored_items * _mean_size(records)
        if stored_bytes / RCU_BYTES >= count:
            return None
        # Both figures may be hours old: stop once the Scan has read clearly more than they promised.
        budget = 2 * max(stored_items, count)
        attributes = [*info.key_names, HASH_ATTRIBUTE, SYNC_ATTRIBUTE]
        found: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
        items = self.scan(info.logical, segments=self.concurrency, attributes=attributes, consistent=True, wire=True)
        try:
            for item in items:
                if len(found) >= budget or deadline.expired():
                    log.info("comparison scan abandoned", extra={"table": info.logical, "read": len(found)})
                    return None
                found[codec.key_signature(item, info.key_names)] = (
                    item.get(HASH_ATTRIBUTE, {}).get("S"),
                    item.get(SYNC_ATTRIBUTE, {}).get("S"),
                )
        except PollenError as exc:
            log.info("comparison scan failed; reading by key", extra={"table": info.logical, "error": exc.message})
            return None
        finally:
            items.close()
        self.metrics.count(M_COMPARE_SCANS, table=info.logical)
        return found

    def _stored_versions(
        self, info: TableInfo, records: Sequence[_Record], deadline: Deadline
    ) -> dict[tuple[str, ...], tuple[str | None, str | None]]:
        """Stored ``contentHash`` and ``lastSyncDate`` by key signature, 100 keys per BatchGetItem; unprocessed keys
        go back in the queue and ride along with the next request."""
        names = {f"#k{i}": name for i, name in enumerate(info.key_names)}
        names.update({"#h": HASH_ATTRIBUTE, "#s": SYNC_ATTRIBUTE})
        waiting = deque({name: r.wire[name] for name in info.key_names} for r in records)
        found: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
        stalls = 0
        while waiting:
            keys = [waiting.popleft() for _ in range(min(MAX_BATCH_GET, len(waiting)))]
            request = {
                info.physical: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            response = self._call("batch_get_item", deadline, RequestItems=request)
            for item in response.get("Responses", {}).get(info.physical, []):
                digest = item.get(HASH_ATTRIBUTE, {}).get("S")
                sync = item.get(SYNC_ATTRIBUTE, {}).get("S")
                found[codec.key_signature(item, info.key_names)] = (digest, sync)
            left = response.get("UnprocessedKeys", {}).get(info.physical, {}).get("Keys", [])
            if not left:
                stalls = 0
                continue
            stalls = stalls + 1 if len(left) == len(keys) else 0
            waiting.extend(left)
            if self.retry.exhausted(stalls) or deadline.expired():
                raise TransientError(f"BatchGetItem: {len(waiting)} keys left unprocessed after retries")
            self.metrics.count(M_RETRIES, operation="BatchGetItem")
            self.retry.sleep(stalls, deadline)
        return found

    def _send(self, info: TableInfo, writes: list[_Write], deadline: Deadline, result: _ChunkResult) -> None:
        """Send writes in BatchWriteItem calls until each is written or failed. Unprocessed requests go back in the
        queue and fill the next batch with fresh ones (so retries cost few extra requests); the halves of a batch
        that hit a permanent error are sent on their own until the offending item is alone."""
        waiting: deque[_Write] = deque(writes)
        suspects: list[list[_Write]] = []
        stalls = 0
        table_json = codec.wire_json(info.physical)

        def give_up(batch: Sequence[_Write], reason: str, *, at_deadline: bool = False) -> None:
            rest = [*batch, *waiting, *(w for s in suspects for w in s)]
            waiting.clear()
            suspects.clear()
            if not at_deadline:
                self.metrics.count(M_RETRY_EXHAUSTED, len(rest), table=info.logical)
            self._fail_writes(result, info, rest, reason, deadline=at_deadline)

        sent = _SentCounts()
        try:
            while waiting or suspects:
                batch = suspects.pop() if suspects else _next_batch(waiting)
                units = sum(w.units for w in batch)
                if deadline.expired() or not self.limiter.acquire(units, deadline):
                    give_up(batch, "deadline reached before the item was written", at_deadline=True)
                    return
                generation = self.limiter.generation  # the response tells about the rate this batch was sent at
                started = time.perf_counter()
                try:
                    client = self.client()
                    call_json = getattr(client, "call_json", None)
                    if call_json is not None:
                        body = '{"RequestItems":{' + table_json + ":[" + ",".join([w.json for w in batch]) + "]}}"
                        response = call_json("BatchWriteItem", body)
                    else:
                        response = client.batch_write_item(RequestItems={info.physical: [w.request for w in batch]})
                    self._reached = True
                except (ClientError, BotoCoreError, ConnectionError) as exc:
                    err = self._translate(exc, action="BatchWriteItem")
                    self.metrics.timing_ms(M_BATCH_MS, (time.perf_counter() - started) * 1000, table=info.logical)
                    sent.batches += 1
                    self.metrics.count(M_BATCH_FAILED, table=info.logical)
                    if not err.transient:
                        if err.exit_code == 2:  # the job cannot run at all (no table, no service)
                            raise err from exc
                        if err.code == "ValidationException" and len(batch) > 1:
                            half = len(batch) // 2
                            suspects.extend([batch[half:], batch[:half]])
                        else:
                            self._fail_writes(result, info, batch, err.message)
                        continue
                    if isinstance(err, ThrottledError):
                        self.limiter.record(units, units, generation)
                        self.metrics.count(M_THROTTLES, table=info.logical)
                    stalls += 1
                    if self.retry.exhausted(stalls):
                        give_up(batch, f"gave up after {stalls} rounds without progress: {err.message}")
                        return
                    waiting.extendleft(reversed(batch))
                    self.metrics.count(M_RETRIES, table=info.logical)
                    self.retry.sleep(stalls, deadline)
                    continue
                self.metrics.timing_ms(M_BATCH_MS, (time.perf_counter() - started) * 1000, table=info.logical)
                sent.batches += 1
                unprocessed = response.get("UnprocessedItems", {}).get(info.physical, [])
                if not unprocessed:
                    self.limiter.record(units, 0, generation)
                    sent.units += units
                    result.report.written += len(batch)
                    result.done.update(w.signature for w in batch)
                    stalls = 0
                    continue
                left = {codec.key_signature(_request_key(u), info.key_names) for u in unprocessed}
                pending = [w for w in batch if w.signature in left]
                self.limiter.record(units, sum(w.units for w in pending), generation)
                sent.units += units - sum(w.units for w in pending)
                self.metrics.count(M_THROTTLES, table=info.logical)
                result.report.written += len(batch) - len(pending)
                result.done.update(w.signature for w in batch if w.signature not in left)
                stalls = 0 if len(pending) < len(batch) else stalls + 1
                if self.retry.exhausted(stalls):
                    give_up(pending, f"still unprocessed after {stalls} rounds without progress")
                    return
                waiting.extend(pending)
                self.metrics.count(M_RETRIES, table=info.logical)
                self.retry.sleep(stalls, deadline)
        finally:  # counted once per call, not per batch (each count takes the recorder's lock)
            if sent.batches:
                self.metrics.count(M_BATCH_COUNT, sent.batches, table=info.logical)
            if sent.units:
                self.metrics.count(M_UNITS, sent.units, table=info.logical)

    def _fail_writes(
        self, result: _ChunkResult, info: TableInfo, writes: Sequence[_Write], reason: str, *, deadline: bool = False
    ) -> None:
        for write in writes:
            record = write.record
            result.done.add(write.signature)
            if isinstance(record, _Record):
                self._fail_one(result, record.key, record.plain, reason)
            else:
                self._fail_one(result, record, record, reason)
        result.report.deadline_reached = result.report.deadline_reached or deadline

    def _fail_all(
        self, result: _ChunkResult, info: TableInfo, records: Sequence[_Record], reason: str, *, deadline: bool = False
    ) -> None:
        for record in records:
            result.done.add(record.signature)
            self._fail_one(result, record.key, record.plain, reason)
        result.report.deadline_reached = result.report.deadline_reached or deadline

    @staticmethod
    def _fail_one(result: _ChunkResult, key: dict[str, Any], plain: Mapping[str, Any], reason: str) -> None:
        result.report.failed += 1
        result.report.failures.append(ItemFailure(key, reason))
        result.dead.append((plain, f"failed {key_text(key)}: {reason}"))

    def _dead_letter(
        self, table: str, dead: list[tuple[Mapping[str, Any], str]], *, operation: DeadLetterOperation = "put"
    ) -> None:
        if self.dead_letters is None or not dead:
            return
        put_many = getattr(self.dead_letters, "put_many", None)
        if callable(put_many):
            put_many(table, dead, operation=operation)
            return
        for item, reason in dead:
            self.dead_letters.put(table, item, reason, operation=operation)

    def _count_report(self, report: WriteReport, operation: str) -> None:
        dims = {"table": report.table, "operation": operation}
        for metric, value in (
            (M_WRITTEN, report.written),
            (M_FAILED, report.failed),
            (M_INVALID, report.invalid),
            (M_UNCHANGED, report.unchanged),
            (M_STALE, report.stale),
            (M_DUPLICATES, report.duplicates),
        ):
            if value:
                self.metrics.count(metric, value, **dims)
        self.metrics.timing_ms(M_UPSERT_MS, report.duration_s * 1000, **dims)

    # --- delete ----------------------------------------------------------------------------------------------------

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> WriteReport:
        """Delete items by key (a missing item is not an error); duplicate keys are sent once."""
        deadline = deadline or Deadline.never()
        started = time.perf_counter()
        info = self.table_info(table)
        report = WriteReport(table)
        dead: list[tuple[Mapping[str, Any], str]] = []
        writes: dict[tuple[str, ...], _Write] = {}
        result = _ChunkResult(report)
        try:
            for key in keys:
                plain = {name: key.get(name) for name in info.key_names} if isinstance(key, Mapping) else {}
                try:
                    if not isinstance(key, Mapping):
                        raise codec.CodecError(f"a key must be a JSON object, not {type(key).__name__}")
                    wire = _guarded_encoding(
                        codec.encode_item, {name: key[name] for name in info.key_names if name in key}
                    )
                    codec.check_key(wire, info.key_schema)
                    codec.item_size(wire)
                except (codec.CodecError, TypeError) as exc:
                    message = exc.message if isinstance(exc, PollenError) else str(exc)
                    report.invalid += 1
                    report.failures.append(ItemFailure(plain, message, "invalid"))
                    dead.append((key if isinstance(key, Mapping) else plain, f"invalid {key_text(plain)}: {message}"))
                    continue
                signature = codec.key_signature(wire, info.key_names)
                if signature in writes:
                    report.duplicates += 1
                request = {"DeleteRequest": {"Key": wire}}
                writes[signature] = _Write(
                    signature, request, codec.wire_json(request), codec.item_size(wire), 1, plain
                )
            self._send(info, list(writes.values()), deadline, result)
        except BaseException as exc:
            # Every key not deleted yet is failed and dead-lettered, whatever stopped the call.
            reason = f"not deleted: {type(exc).__name__}: {str(exc)[:200]}"
            self._fail_writes(result, info, [w for s, w in writes.items() if s not in result.done], reason)
            if not isinstance(exc, Exception) or (isinstance(exc, PollenError) and exc.exit_code == 2):
                raise
            log.exception("delete failed", extra={"table": table})
        finally:
            dead.extend(result.dead)
            self._dead_letter(table, dead, operation="delete")
        report.duration_s = round(time.perf_counter() - started, 3)
        self._count_report(report, "delete")
        return report

    # --- reads -----------------------------------------------------------------------------------------------------

    def _strip(self, item: Mapping[str, Any], *, keep_hash: bool = False) -> Item:
        plain = codec.decode_item(item)
        if not keep_hash:
            plain.pop(HASH_ATTRIBUTE, None)
        return plain

    def get(self, table: str, key: Key) -> Item | None:
        info = self.table_info(table)
        wire = codec.encode_item({name: key[name] for name in info.key_names})
        response = self._call(
            "get_item", Deadline.never(), keys=[key], TableName=info.physical, Key=wire, ConsistentRead=True
        )
        item = response.get("Item")
        return self._strip(item) if item else None

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]:
        """The items that exist, in the order of ``keys`` (duplicates and missing keys left out)."""
        info = self.table_info(table)
        order: dict[tuple[str, ...], dict[str, Any]] = {}
        for key in keys:
            wire = codec.encode_item({name: key[name] for name in info.key_names})
            order.setdefault(codec.key_signature(wire, info.key_names), wire)
        found: dict[tuple[str, ...], Item] = {}
        wires = list(order.values())
        for start in range(0, len(wires), MAX_BATCH_GET):
            pending = wires[start : start + MAX_BATCH_GET]
            stalls = 0
            while pending:
                response = self._call(
                    "batch_get_item",
                    Deadline.never(),
                    RequestItems={info.physical: {"Keys": pending, "ConsistentRead": True}},
                )
                for item in response.get("Responses", {}).get(info.physical, []):
                    found[codec.key_signature(item, info.key_names)] = self._strip(item)
                left = response.get("UnprocessedKeys", {}).get(info.physical, {}).get("Keys", [])
                stalls = stalls + 1 if len(left) == len(pending) else 0
                pending = left
                if pending:
                    if self.retry.exhausted(stalls):
                        raise TransientError(f"BatchGetItem {table}: {len(pending)} keys left unprocessed")
                    self.retry.sleep(stalls, Deadline.never())
        return [found[s] for s in order if s in found]

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
        (see the module docstring and :func:`index_failure`). ``attributes`` projects the items onto those (the
        table's and the index's keys always included; naming ``contentHash`` keeps it)."""
        info = self.table_info(table)
        schema = info.indexes.get(index) if index else info.key_schema
        sort_name = _sort_name(schema, info, index)
        keep_hash = bool(attributes) and HASH_ATTRIBUTE in (attributes or ())
        if attributes:
            needed = [*info.key_names, partition[0], *([sort_name] if sort_name else [])]
            attributes = list(dict.fromkeys([*attributes, *needed]))
        names = {"#p": partition[0]}
        values = {":p": codec.encode_value(partition[1])}
        condition = "#p = :p"
        if sort_between is not None and sort_name is not None:
            names["#s"] = sort_name
            values[":lo"] = codec.encode_value(sort_between[0])
            values[":hi"] = codec.encode_value(sort_between[1])
            condition += " AND #s BETWEEN :lo AND :hi"
        seen: set[tuple[str, ...]] = set()  # keys already yielded, so a fallback mid-way does not repeat them
        if index and schema is None:
            log.warning("unknown index; scanning the table instead", extra={"table": table, "index": index})
        if schema is not None:
            params: dict[str, Any] = {
                "TableName": info.physical,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": not descending,
            }
            if index:
                params["IndexName"] = index
                self.metrics.count(M_GSI_QUERIES, index=index)
            if limit is not None:
                params["Limit"] = max(1, min(limit, QUERY_PAGE_ITEMS))
            if attributes:
                projected = {f"#a{i}": name for i, name in enumerate(attributes)}
                params["ProjectionExpression"] = ", ".join(projected)
                params["ExpressionAttributeNames"] = {**names, **projected}
            # Through an index, transient failures get a small retry budget before the Scan takes over.
            retry = self.retry if not index else replace(self.retry, cap_s=min(self.retry.cap_s, 1.0), max_attempts=4)
            try:
                while True:
                    started = time.perf_counter()
                    response = self._call("query", Deadline.never(), retry=retry, **params)
                    if index:
                        self.metrics.timing_ms(M_GSI_MS, (time.perf_counter() - started) * 1000, index=index)
                    for item in response.get("Items", []):
                        if limit is not None and len(seen) >= limit:
                            return
                        seen.add(codec.key_signature(item, info.key_names))
                        yield self._strip(item, keep_hash=keep_hash)
                    last = response.get("LastEvaluatedKey")
                    if not last or (limit is not None and len(seen) >= limit):
                        return
                    params["ExclusiveStartKey"] = last
            except PollenError as exc:
                reason = index_failure(exc) if index else None
                if reason is None:
                    raise
                self.metrics.count(M_GSI_FAILURE, index=index or "", reason=reason)
                log.warning(
                    "index query failed; scanning the table instead",
                    extra={"index": index, "reason": reason, "error": exc.message},
                )
        if index:
            self.metrics.count(M_GSI_FALLBACK, index=index)
        if sort_name is not None and sort_between is None:
            condition += " AND attribute_exists(#s)"
            names["#s"] = sort_name
        matches = [
            item
            for item in self._scan_pages(
                info, segment=None, filter_=(condition, names, values), attributes=attributes, wire=True
            )
            if codec.key_signature(item, info.key_names) not in seen
        ]
        plain = [self._strip(item, keep_hash=keep_hash) for item in matches]
        if sort_name is not None:  # ties in the table's key order, so the answer is the same every time
            keys = info.key_names
            plain.sort(
                key=lambda item: (_sort_value(item.get(sort_name)), *(_sort_value(item.get(k)) for k in keys)),
                reverse=descending,
            )
        yield from plain if limit is None else plain[: max(0, limit - len(seen))]

    def _scan_pages(
        self,
        info: TableInfo,
        *,
        segment: tuple[int, int] | None,
        filter_: tuple[str, dict[str, str], dict[str, Any]] | None = None,
        stop: threading.Event | None = None,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
        wire: bool = False,
    ) -> Iterator[Item]:
        """Scan pages; ``wire`` yields items in DynamoDB's wire format (contentHash included). A projection that
        names ``contentHash`` keeps it in the plain items too (the versions a caller hands back to ``upsert``)."""
        keep_hash = bool(attributes) and HASH_ATTRIBUTE in (attributes or ())
        params: dict[str, Any] = {"TableName": info.physical}
        if consistent:
            params["ConsistentRead"] = True
        if segment is not None:
            params["Segment"], params["TotalSegments"] = segment
        if filter_ is not None:
            params["FilterExpression"], params["ExpressionAttributeNames"], params["ExpressionAttributeValues"] = (
                filter_
            )
        if attributes:
            names = {f"#p{i}": name for i, name in enumerate(dict.fromkeys(attributes))}
            params["ProjectionExpression"] = ", ".join(names)
            params["ExpressionAttributeNames"] = {**params.get("ExpressionAttributeNames", {}), **names}
        while stop is None or not stop.is_set():
            response = self._call("scan", Deadline.never(), **params)
            for item in response.get("Items", []):
                yield item if wire else self._strip(item, keep_hash=keep_hash)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

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
        info = self.table_info(table)
        if segments <= 1:
            yield from self._scan_pages(info, segment=None, attributes=attributes, consistent=consistent, wire=wire)
            return
        out: queue.Queue[Any] = queue.Queue(maxsize=segments * 200)
        stop = threading.Event()
        done = object()

        def reader(segment: int) -> None:
            try:
                pages = self._scan_pages(
                    info,
                    segment=(segment, segments),
                    stop=stop,
                    attributes=attributes,
                    consistent=consistent,
                    wire=wire,
                )
                for item in pages:
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # handed to the consumer, which re-raises it
                out.put(exc)
            finally:
                out.put(done)

        threads = [
            threading.Thread(target=reader, args=(s,), name=f"pollen-scan-{s}", daemon=True) for s in range(segments)
        ]
        for thread in threads:
            thread.start()
        try:
            finished = 0
            while finished < segments:
                entry = out.get()
                if entry is done:
                    finished += 1
                elif isinstance(entry, BaseException):
                    raise entry
                else:
                    yield entry
        finally:
            stop.set()
            while any(t.is_alive() for t in threads):
                with suppress(queue.Empty):
                    out.get(timeout=0.05)

    # --- transactions ----------------------------------------------------------------------------------------------

    def put_action(
        self, table: str, item: Item, *, condition: str | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A TransactWriteItems Put of a plain item (encoded, checked, with its content hash)."""
        info = self.table_info(table)
        record = self._prepare(info, 0, item)
        action: dict[str, Any] = {"TableName": info.physical, "Item": record.wire}
        if condition:
            action["ConditionExpression"] = condition
            if names:
                action["ExpressionAttributeNames"] = names
        return {"Put": action}

    def delete_action(self, table: str, key: Key, *, must_exist: bool = False) -> dict[str, Any]:
        info = self.table_info(table)
        wire = codec.encode_item({name: key[name] for name in info.key_names})
        codec.check_key(wire, info.key_schema)
        action: dict[str, Any] = {"TableName": info.physical, "Key": wire}
        if must_exist:
            action["ConditionExpression"] = "attribute_exists(#pk)"
            action["ExpressionAttributeNames"] = {"#pk": info.key_names[0]}
        return {"Delete": action}

    def transact_write(
        self, actions: Sequence[dict[str, Any]], *, token: str | None = None, deadline: Deadline | None = None
    ) -> None:
        """One TransactWriteItems (at most 100 actions) with an idempotency token (derived from the actions when not
        given, so a retried call is not applied twice). Transient cancellations (conflicts, throttling) are retried
        with the same token; otherwise raises :class:`TransactionCancelled` with one outcome per action."""
        if not actions:
            return
        if len(actions) > MAX_TRANSACT_ACTIONS:
            raise PermanentError(f"a transaction holds at most {MAX_TRANSACT_ACTIONS} actions, not {len(actions)}")
        deadline = deadline or Deadline.never()
        if token is None:
            text = json.dumps(actions, sort_keys=True, default=_token_default)
            token = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
        stalls = 0
        while True:
            try:
                self.client().transact_write_items(TransactItems=list(actions), ClientRequestToken=token)
                self._reached = True
                return
            except ClientError as exc:
                self._reached = True
                err = self._transaction_error(exc, actions)
            except (BotoCoreError, ConnectionError) as exc:
                err = self._translate(exc, action="TransactWriteItems")
            if not err.transient:
                if isinstance(err, TransactionCancelled):
                    self.metrics.count(M_TX_CANCELLED)
                raise err
            stalls += 1
            if self.retry.exhausted(stalls) or deadline.expired():
                raise err
            self.metrics.count(M_RETRIES, operation="TransactWriteItems")
            self.retry.sleep(stalls, deadline)

    def _transaction_error(self, exc: ClientError, actions: Sequence[dict[str, Any]]) -> PollenError:
        if error_code(exc) != "TransactionCanceledException":
            return translate(exc, action="TransactWriteItems")
        reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
        outcomes = [(str(r.get("Code") or "None"), str(r.get("Message") or "")) for r in reasons]
        transient_codes = {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
        failing = [(i, code, message) for i, (code, message) in enumerate(outcomes) if code != "None"]
        parts = []
        for i, code, message in failing:
            verb, body = next(iter(actions[i].items())) if i < len(actions) else ("?", {})
            what = key_text(codec.decode_item(body.get("Key") or {})) if verb != "Put" else "new item"
            explain = (
                " (the item to delete does not exist)" if code == "ConditionalCheckFailed" and verb == "Delete" else ""
            )
            parts.append(f"action {i + 1} ({verb} {what}): {code}{explain}{': ' + message if message else ''}")
        transient = bool(failing) and all(code in transient_codes for _, code, _ in failing)
        message = "transaction cancelled: " + ("; ".join(parts) or str(exc))
        return TransactionCancelled(message[:500], outcomes=outcomes, code="TransactionCanceled", transient=transient)

    def move_sort_key(self, table: str, key: Key, new_sort: Any) -> Item:
        """Give the item of ``key``'s partition the sort key ``new_sort``, atomically and without losing a
        concurrent write: one TransactWriteItems that deletes every item of the partition (a second item left by a
        race included) and puts the newest synced content (greatest ``lastSyncDate``, then sort key) under the
        greater of ``new_sort`` and the newest stored sort key. Each action is conditional on its item being
        unchanged since it was read (its ``contentHash`` and ``lastSyncDate``; a new key on not existing yet), so a
        sync that wrote meanwhile is never overwritten: on such a conflict the partition is read again and the move
        retried (``MoveConflicts``), up to ``MOVE_ATTEMPTS`` times. Returns the item as stored. Raises NotFound
        when the partition is empty, TransactionCancelled (a PollenError) when the move keeps conflicting or is
        cancelled for another reason."""
        info = self.table_info(table)
        if len(info.key_names) != 2:
            raise PermanentError(f"{table} has no sort key to move")
        partition_name, sort_name = info.key_names
        for attempt in range(1, MOVE_ATTEMPTS + 1):
            stored = self._partition(info, key[partition_name])
            if not stored:
                raise NotFound(f"{table} {partition_name}={key[partition_name]}: no item to move", keys=[key])
            content = max(stored, key=lambda i: (str(i.get(SYNC_ATTRIBUTE, "")), _sort_value(i[sort_name])))
            target = max([new_sort, *(i[sort_name] for i in stored)], key=_sort_value)
            item = {k: v for k, v in content.items() if k != HASH_ATTRIBUTE} | {sort_name: target}
            if len(stored) == 1 and content[sort_name] == target:
                return item  # already there
            actions = [self._unchanged_action(table, info, i, item) for i in stored]
            if not any("Put" in a for a in actions):
                put = self.put_action(table, item)
                put["Put"]["ConditionExpression"] = "attribute_not_exists(#k)"
                put["Put"]["ExpressionAttributeNames"] = {"#k": partition_name}
                actions.append(put)
            try:
                self.transact_write(actions)
                return item
            except TransactionCancelled as exc:
                if not any(code == "ConditionalCheckFailed" for code, _ in exc.outcomes) or attempt == MOVE_ATTEMPTS:
                    raise
                self.metrics.count(M_MOVE_CONFLICTS, table=table)
                log.info("sort-key move conflicted with a concurrent write; reading again", extra={"key": key})
        raise AssertionError("unreachable")

    def _partition(self, info: TableInfo, value: Any) -> list[Item]:
        """Every item of one partition, strongly consistent, with ``contentHash`` (for the move's conditions)."""
        params: dict[str, Any] = {
            "TableName": info.physical,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": info.key_names[0]},
            "ExpressionAttributeValues": {":p": codec.encode_value(value)},
            "ConsistentRead": True,
        }
        items: list[Item] = []
        while True:
            response = self._call("query", Deadline.never(), keys=[{info.key_names[0]: value}], **params)
            items.extend(codec.decode_item(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            params["ExclusiveStartKey"] = last

    def _unchanged_action(self, table: str, info: TableInfo, stored: Item, item: Item) -> dict[str, Any]:
        """The move's action on one stored item: a Delete, or the Put of ``item`` when it has the same key; either
        holds only while the stored item is unchanged (same ``contentHash`` and ``lastSyncDate``)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        parts = []
        for n, attribute in enumerate((HASH_ATTRIBUTE, SYNC_ATTRIBUTE)):
            names[f"#c{n}"] = attribute
            if attribute in stored:
                values[f":c{n}"] = codec.encode_value(stored[attribute])
                parts.append(f"#c{n} = :c{n}")
            else:
                parts.append(f"attribute_not_exists(#c{n})")
        same_key = all(stored[k] == item[k] for k in info.key_names)
        if same_key:
            action = self.put_action(table, item)
        else:
            action = self.delete_action(table, {k: stored[k] for k in info.key_names})
        body = next(iter(action.values()))
        body["ConditionExpression"] = " AND ".join(parts)
        body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        return action

    def lease(
        self,
        job: str,
        ttl_s: float = LEASE_TTL_S,
        *,
        heartbeat: bool = True,
        force: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> JobLease:
        """Hold the job's lease for the ``with`` block, renewed in the background while the block runs (see
        :mod:`.lease`); raises LeaseHeld when another live run holds it (``force``: take it over anyway)."""
        return JobLease(self, job, ttl_s, heartbeat=heartbeat, force=force, clock=clock)


# --- helpers -----------------------------------------------------------------------------------------------------


def _missing_table(err: MissingResource, params: Mapping[str, Any]) -> MissingResource:
    """Name the table in a ResourceNotFoundException (DynamoDB's message does not)."""
    names = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
    if not names:
        return err
    return MissingResource(
        f"{err.message}: table {', '.join(map(str, names))} does not exist (run `pollen tables create`)",
        keys=err.keys,
        code=err.code,
    )


def _guarded_encoding(encode: Callable[..., Any], *args: Any) -> Any:
    """Run a codec function, turning what malformed input makes Python raise into an invalid item."""
    try:
        return encode(*args)
    except UnicodeError as exc:  # a lone surrogate ("\\ud800") has no UTF-8 form
        raise codec.CodecError(f"a string has no UTF-8 form ({getattr(exc, 'reason', 'bad character')})") from None
    except RecursionError:
        raise codec.CodecError("nested too deeply") from None


def _mean_size(records: Sequence[_Record], sample: int = 16) -> int:
    """DynamoDB size of the records' items, averaged over a few spread across them (at least 1 byte)."""
    step = max(1, len(records) // sample)
    sizes = []
    for record in records[::step][:sample]:
        with suppress(codec.CodecError):
            sizes.append(codec.item_size(codec.encode_item(record.plain)))
    return max(1, sum(sizes) // len(sizes)) if sizes else RCU_BYTES


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _token_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


_write_signature = attrgetter("signature")
_write_size = attrgetter("size")


def _next_batch(waiting: deque[_Write]) -> list[_Write]:
    return take_batch(waiting, key=_write_signature, size=_write_size)


def _request_key(request: Mapping[str, Any]) -> Mapping[str, Any]:
    if "PutRequest" in request:
        return request["PutRequest"]["Item"]  # type: ignore[no-any-return]
    return request["DeleteRequest"]["Key"]  # type: ignore[no-any-return]


def _plain_key(item: Any, info: TableInfo) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        return {}
    return {name: item.get(name) for name in info.key_names}


def _sort_name(schema: tuple[tuple[str, str], ...] | None, info: TableInfo, index: str | None) -> str | None:
    if schema is not None:
        return schema[1][0] if len(schema) > 1 else None
    # Unknown index: guess nothing about its sort key; the fallback then returns the matches unsorted.
    return None


#: How DynamoDB says that an index cannot serve reads while its table can: it does not exist (ValidationException
#: "The table does not have the specified index: X"; moto: ResourceNotFoundException "Invalid index: X for table: Y")
#: or is still being built (ValidationException "Cannot read from backfilling global secondary index: X").
_INDEX_UNUSABLE = {
    "does not have the specified index": "missing",
    "invalid index": "missing",
    "backfilling global secondary index": "backfilling",
}


def index_failure(error: PollenError) -> str | None:
    """Why a failed query through an index may fall back to a Scan of the base table ("missing", "backfilling",
    "throttled", "unavailable"), or None when the error must be raised: a permanent error that is not about the index
    (a value of the wrong type, a missing table, denied access) would fail or mislead the Scan as well."""
    if error.transient:
        return "throttled" if isinstance(error, ThrottledError) else "unavailable"
    if error.code in ("ValidationException", "ResourceNotFoundException"):
        text = error.message.lower()
        for phrase, reason in _INDEX_UNUSABLE.items():
            if phrase in text:
                return reason
    return None


def _sort_value(value: Any) -> tuple[int, Any]:
    if isinstance(value, Decimal | int):
        return (0, Decimal(value))
    if isinstance(value, bytes):
        return (2, value)
    return (1, "" if value is None else str(value))


def build_store(settings: Settings, metrics: MetricsRecorder, **options: Any) -> DynamoStore:
    """The store for these settings: per-worker clients, ``write_concurrency`` workers, the ``wcu_limit``
    ceiling, dead letters under ``settings.home / "dead-letters"`` (or to the SQS queue of
    POLLEN_DEAD_LETTER_QUEUE_URL, the local files then catching what SQS refuses). ``options`` go to
    :class:`DynamoStore`; ``durable_dead_letters=True`` (Lambda, where /tmp does not survive) requires the queue and
    has no local fallback: dead letters SQS does not take fail the call.

    ``transport``: ``"auto"`` (default) uses the lean wire client wherever it connects exactly as boto3 would
    (botocore's endpoint, region and CA bundle) and boto3 clients where boto3 would use a proxy or a client
    certificate; ``"wire"`` or ``"boto3"`` force one."""
    from pollen.adapters.deadletters import JsonlDeadLetters, SqsDeadLetters
    from pollen.adapters.dynamodb.wire import wire_client_factory

    transport = options.pop("transport", "auto")
    if transport not in ("auto", "wire", "boto3"):
        raise ConfigError(f"unknown DynamoDB transport {transport!r}: use auto, wire or boto3")
    durable = bool(options.pop("durable_dead_letters", False))
    if "client" not in options and "client_factory" not in options:
        if transport != "boto3":
            endpoint = resolve_endpoint(region=settings.region, endpoint_url=settings.dynamodb_endpoint)
            if transport == "auto" and endpoint.unsupported:
                log.info("using the boto3 transport", extra={"reason": endpoint.unsupported})
                transport = "boto3"
        if transport == "boto3":
            options["client_factory"] = lambda: make_client(
                "dynamodb",
                region=settings.region,
                endpoint_url=settings.dynamodb_endpoint,
                max_pool_connections=max(10, settings.write_concurrency * 2),
            )
        else:
            options["client_factory"] = wire_client_factory(endpoint=endpoint)
    if durable and "dead_letters" not in options and not settings.dead_letter_queue_url:
        raise ConfigError("POLLEN_DEAD_LETTER_QUEUE_URL is not set: in Lambda, dead letters need the queue")
    local = None if durable else JsonlDeadLetters(settings.home / "dead-letters")
    if settings.dead_letter_queue_url and "dead_letters" not in options:
        options["dead_letters"] = SqsDeadLetters(settings.dead_letter_queue_url, region=settings.region, fallback=local)
    options.setdefault("dead_letters", local)
    options.setdefault("concurrency", settings.write_concurrency)
    options.setdefault("wcu_limit", settings.wcu_limit)
    return DynamoStore(
        table_prefix=settings.table_prefix,
        metrics=metrics,
        region=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        **options,
    )
