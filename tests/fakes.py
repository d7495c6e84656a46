"""In-process fakes of the ports: an ItemStore that honours the contract, and upstream sources built from raw
payload dicts, each with fault injection."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.lease import MAX_LEASE_TTL_S
from pollen.deadline import Deadline
from pollen.errors import (
    DeadLettersLost,
    LeaseBlocked,
    LeaseHeld,
    NotFound,
    PermanentError,
    PollenError,
    QuotaExhausted,
    TransientError,
)
from pollen.ports import CONTENT_HASH, DeadLetterOperation, DeadLetterSink, Item, Key, StatementFunction
from pollen.tables import TABLES, TableDef

#: Attributes left out of the content hash, as the real store leaves them out (``lastSyncDate`` and the hash).
SYNC_ATTRIBUTE = "lastSyncDate"
BOOKKEEPING = frozenset({SYNC_ATTRIBUTE, CONTENT_HASH})
#: Bytes the stored hash adds to an item (its name and 32 hex characters), counted against the 400 KB limit.
HASH_BYTES = len(CONTENT_HASH) + 32


@dataclass
class FakeWriteReport:
    written: int = 0
    unchanged: int = 0
    duplicates: int = 0
    stale: int = 0
    invalid: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.invalid == 0

    def error_lines(self) -> list[str]:
        return list(self.errors)


def _sort_value(value: Any) -> tuple[int, Any]:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return (0, Decimal(value))
    if isinstance(value, bytes):
        return (2, value)
    return (1, "" if value is None else str(value))


def _key_text(key: Mapping[str, Any]) -> str:
    """A key as the real store names it in reports and dead letters (long values cut)."""

    def short(value: Any) -> str:
        text = str(value)
        return text if len(text) <= 80 else f"{text[:80]}...({len(text)} chars)"

    return "{" + ", ".join(f"{k}={short(v)}" for k, v in key.items()) + "}"


@dataclass
class _Incoming:
    """One input item of an upsert on its way: its key, version and (once encoded) stored form and hash."""

    plain: Mapping[str, Any]
    key: tuple[Any, ...]
    key_item: dict[str, Any]
    sync: str | None
    stored_form: Item = field(default_factory=dict)
    digest: str = ""


class InMemoryStore:
    """The ItemStore contract in memory, held to the same contract suite as the DynamoDB store
    (tests/contract): items are encoded and validated by the store's codec (an item DynamoDB would refuse is
    *invalid*, named in the report and dead-lettered), kept in the form DynamoDB returns them (numbers as
    Decimal, empty sets dropped), with the content hash the store keeps; unchanged items (same hash) are not
    rewritten (they keep lastSyncDate), an item whose lastSyncDate is older than the stored one is stale,
    duplicates in one call go to the newer lastSyncDate (else the later input); queries by partition / sort
    range / index, move_sort_key atomic, leases that expire by an injected clock.

    ``dead_letters``: the sink failed and invalid items go to (as the real store's; None keeps none).

    Faults: ``fail_upsert`` (tables whose upsert and delete fail every item, or raise an exit-2 error), ``fail_items`` (tables whose every item fails),
    ``fail_moves`` (move_sort_key raises; nothing changes), ``lose_leases`` (every lease is found lost).
    """

    def __init__(self, *, dead_letters: DeadLetterSink | None = None) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Item]] = {name: {} for name in TABLES}
        #: The content hash of each stored item (None: planted without one, as another tool would write it).
        self.hashes: dict[str, dict[tuple[Any, ...], str | None]] = {name: {} for name in TABLES}
        self.writes: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.deletes: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.moves = 0
        self.queries: list[tuple[str, str | None]] = []
        self.scans: list[str] = []
        self.upserts_with_stored = 0
        self.fail_upsert: dict[str, PollenError] = {}
        self.dead_letters = dead_letters
        self.fail_items: set[str] = set()
        self.fail_moves: PollenError | None = None
        #: The lease of each job: (owner, expiry on the holder's clock).
        self.leases: dict[str, tuple[str, float]] = {}
        #: Set to a reason to have every lease found lost while its block runs (as the store's heartbeat would).
        self.lose_leases: str | None = None
        #: Wall time a move guarded by a lease compares the lease's expiry with (as the real store's ``clock``).
        self.clock: Callable[[], float] = time.time
        self._lock = threading.RLock()

    # --- helpers for tests ---------------------------------------------------------------------------------------
    def put_raw(self, table: str, item: Item, *, hashed: bool = True) -> None:
        """Plant an item as is (no comparison, no counting). ``hashed=False``: without a content hash, as another
        tool would write it (the next upsert of its key rewrites it, as the real store does)."""
        key = self._key(TABLES[table], item)
        self.tables[table][key] = copy.deepcopy(item)
        self.hashes[table][key] = self._digest(item) if hashed else None

    def items(self, table: str) -> list[Item]:
        return [copy.deepcopy(i) for _, i in sorted(self.tables[table].items(), key=lambda kv: str(kv[0]))]

    def by(self, table: str, **attrs: Any) -> list[Item]:
        return [i for i in self.items(table) if all(i.get(k) == v for k, v in attrs.items())]

    @staticmethod
    def _key(table: TableDef, item: Mapping[str, Any]) -> tuple[Any, ...]:
        missing = [n for n in table.key_names if n not in item]
        if missing:
            raise PermanentError(f"{table.name}: item without key attribute {missing[0]}")
        return tuple(item[n] for n in table.key_names)

    @staticmethod
    def _digest(item: Mapping[str, Any]) -> str | None:
        try:
            return codec.content_hash(codec.encode_item(item), BOOKKEEPING)
        except codec.CodecError:
            return None

    def _dead_letter(
        self, table: str, dead: list[tuple[Mapping[str, Any], str]], operation: DeadLetterOperation = "put"
    ) -> None:
        """As the real store: one ``put_many`` when the sink has it, else ``put`` per entry; what the sink raises
        (dead letters no durable place took) ends the call."""
        if self.dead_letters is None or not dead:
            return
        put_many = getattr(self.dead_letters, "put_many", None)
        if callable(put_many):
            put_many(table, dead, operation=operation)
            return
        for item, reason in dead:
            self.dead_letters.put(table, item, reason, operation=operation)

    # --- ItemStore ----------------------------------------------------------------------------------------------
    def _injected(
        self, table: str, keys: Iterable[Mapping[str, Any]], operation: DeadLetterOperation = "put"
    ) -> FakeWriteReport | None:
        """``fail_upsert`` as the real store behaves: a run-ending error (exit 2) and dead letters no durable place
        took are raised, any other error fails every item of the call, each named in the report and dead-lettered."""
        error = self.fail_upsert.get(table)
        if error is None:
            return None
        if error.exit_code == 2 or isinstance(error, DeadLettersLost):
            raise error
        report = FakeWriteReport()
        keys = list(keys)
        for key in keys:
            report.failed += 1
            report.errors.append(f"{table} {dict(key)}: failed: {error}")
        names = TABLES[table].key_names
        self._dead_letter(
            table, [(dict(k), f"failed {_key_text({n: k.get(n) for n in names})}: {error}") for k in keys], operation
        )
        return report

    def _incoming(
        self, definition: TableDef, items: list[Any], report: FakeWriteReport, dead: list[tuple[Any, str]]
    ) -> list[_Incoming]:
        """Keys checked (a bad one is invalid) and duplicates resolved: the newer lastSyncDate wins, else the
        later input; the winner keeps the place of its key's first input."""
        chosen: dict[tuple[Any, ...], _Incoming] = {}
        schema = [(k.name, k.type) for k in (definition.partition, definition.sort) if k is not None]
        for item in items:
            try:
                if not isinstance(item, Mapping):
                    raise codec.CodecError(f"an item must be a JSON object, not {type(item).__name__}")
                codec.encode_key(item, schema)
            except codec.CodecError as exc:
                self._invalid(definition.name, item, exc.message, report, dead)
                continue
            sync = item.get(SYNC_ATTRIBUTE)
            incoming = _Incoming(
                item,
                self._key(definition, item),
                definition.key_of(dict(item)),
                sync if isinstance(sync, str) else None,
            )
            previous = chosen.get(incoming.key)
            if previous is None:
                chosen[incoming.key] = incoming
                continue
            report.duplicates += 1
            if previous.sync is None or incoming.sync is None or previous.sync <= incoming.sync:
                chosen[incoming.key] = incoming
        return list(chosen.values())

    @staticmethod
    def _invalid(table: str, item: Any, message: str, report: FakeWriteReport, dead: list[tuple[Any, str]]) -> None:
        names = TABLES[table].key_names
        key = {n: item.get(n) for n in names} if isinstance(item, Mapping) else {}
        report.invalid += 1
        report.errors.append(f"{table} {_key_text(key)}: invalid: {message}")
        dead.append((item if isinstance(item, Mapping) else key, f"invalid {_key_text(key)}: {message}"))

    def _encoded(self, table: str, incoming: _Incoming) -> None:
        """The store's full check (reserved hash attribute, DynamoDB's types and 400 KB), its stored form and hash."""
        if CONTENT_HASH in incoming.plain:
            raise codec.CodecError(
                f"attribute name {CONTENT_HASH!r} is reserved: pollen stores its content hash there (rename it)"
            )
        wire = codec.encode_item(incoming.plain)
        size = codec.item_size(wire) + HASH_BYTES
        if size > codec.MAX_ITEM_BYTES:
            raise codec.CodecError(f"item is {size} bytes, over DynamoDB's 400 KB limit")
        incoming.stored_form = codec.decode_item(wire)
        incoming.digest = codec.content_hash(wire, BOOKKEEPING)

    def _versions(
        self, table: str, stored: Iterable[Item] | None
    ) -> dict[tuple[Any, ...], tuple[str | None, str | None]]:
        """The stored (hash, lastSyncDate) by key: of ``stored`` when the caller read them (a key absent from it is
        new, as the real store takes it), else of the fake's own contents."""
        definition = TABLES[table]
        if stored is None:
            return {
                key: (self.hashes[table].get(key), _text(item.get(SYNC_ATTRIBUTE)))
                for key, item in self.tables[table].items()
            }
        found: dict[tuple[Any, ...], tuple[str | None, str | None]] = {}
        for item in stored:
            if all(n in item for n in definition.key_names):
                found[self._key(definition, item)] = (_text(item.get(CONTENT_HASH)), _text(item.get(SYNC_ATTRIBUTE)))
        return found

    def changed(self, table: str, items: Sequence[Item], stored: Iterable[Item]) -> list[Item]:
        """The real store's rule: an item whose content hashes to its version in ``stored`` is left out."""
        definition = TABLES[table]
        known = self._versions(table, stored)
        rest: list[Item] = []
        for item in items:
            if not isinstance(item, Mapping) or not all(n in item for n in definition.key_names):
                rest.append(item)
                continue
            version = known.get(self._key(definition, item))
            digest = None if CONTENT_HASH in item else self._digest(item)
            if version is None or version[0] is None or digest != version[0]:
                rest.append(item)
        return rest

    def upsert(
        self,
        table: str,
        items: Iterable[Item],
        *,
        deadline: Deadline | None = None,
        stored: Iterable[Item] | None = None,
    ) -> FakeWriteReport:
        """The real store's rules (see the class docstring); ``stored`` counted in ``upserts_with_stored``."""
        items = list(items)
        if stored is not None:
            self.upserts_with_stored += 1
        injected = self._injected(table, [i for i in items if isinstance(i, Mapping)])
        if injected is not None:
            return injected
        report = FakeWriteReport()
        dead: list[tuple[Any, str]] = []
        try:
            with self._lock:
                winners = self._incoming(TABLES[table], items, report, dead)
                known = self._versions(table, stored)
                for incoming in winners:
                    self._upsert_one(table, incoming, known, deadline, report, dead)
        finally:
            self._dead_letter(table, dead)
        return report

    def _upsert_one(
        self,
        table: str,
        incoming: _Incoming,
        known: Mapping[tuple[Any, ...], tuple[str | None, str | None]],
        deadline: Deadline | None,
        report: FakeWriteReport,
        dead: list[tuple[Any, str]],
    ) -> None:
        try:
            self._encoded(table, incoming)
        except codec.CodecError as exc:
            self._invalid(table, incoming.plain, exc.message, report, dead)
            return
        failure = None
        if deadline is not None and deadline.expired():
            failure = "deadline reached before the item was sent"
        elif table in self.fail_items:
            failure = "injected failure"
        if failure is not None:
            report.failed += 1
            report.errors.append(f"{table} {_key_text(incoming.key_item)}: failed: {failure}")
            dead.append((incoming.plain, f"failed {_key_text(incoming.key_item)}: {failure}"))
            return
        current = known.get(incoming.key)
        if current is not None and current[0] == incoming.digest:
            report.unchanged += 1
        elif current is not None and incoming.sync and current[1] and incoming.sync < current[1]:
            report.stale += 1
        else:
            self.tables[table][incoming.key] = incoming.stored_form
            self.hashes[table][incoming.key] = incoming.digest
            self.writes[table] += 1
            report.written += 1

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> FakeWriteReport:
        """By key (a missing item is not an error: written); a key sent twice counts once more as a duplicate."""
        keys = list(keys)
        injected = self._injected(table, [k for k in keys if isinstance(k, Mapping)], "delete")
        if injected is not None:
            return injected
        definition = TABLES[table]
        schema = [(k.name, k.type) for k in (definition.partition, definition.sort) if k is not None]
        report = FakeWriteReport()
        dead: list[tuple[Any, str]] = []
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for key in keys:
            try:
                if not isinstance(key, Mapping):
                    raise codec.CodecError(f"a key must be a JSON object, not {type(key).__name__}")
                codec.encode_key(key, schema)
            except codec.CodecError as exc:
                self._invalid(table, key, exc.message, report, dead)
                continue
            k = self._key(definition, key)
            if k in unique:
                report.duplicates += 1
            unique[k] = definition.key_of(dict(key))
        try:
            with self._lock:
                for k, plain in unique.items():
                    if deadline is not None and deadline.expired():
                        reason = "deadline reached before the item was written"
                        report.failed += 1
                        report.errors.append(f"{table} {_key_text(plain)}: failed: {reason}")
                        dead.append((plain, f"failed {_key_text(plain)}: {reason}"))
                        continue
                    if self.tables[table].pop(k, None) is not None:
                        self.hashes[table].pop(k, None)
                        self.deletes[table] += 1
                    report.written += 1
        finally:
            self._dead_letter(table, dead, "delete")
        return report

    def get(self, table: str, key: Key) -> Item | None:
        item = self.tables[table].get(self._key(TABLES[table], key))
        return copy.deepcopy(item) if item is not None else None

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]:
        """The items that exist, in the order of ``keys`` (duplicates and missing keys left out)."""
        definition = TABLES[table]
        unique = {self._key(definition, k): k for k in reversed(keys)}
        ordered = dict.fromkeys(self._key(definition, k) for k in keys)
        return [i for i in (self.get(table, unique[k]) for k in ordered) if i is not None]

    def _with_hash(self, table: str, item: Item, keep_hash: bool) -> Item:
        if not keep_hash:
            return item
        digest = self.hashes[table].get(self._key(TABLES[table], item))
        return {**item, CONTENT_HASH: digest} if digest is not None else item

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
        self.queries.append((table, index))
        definition = TABLES[table]
        sort_name = definition.sort.name if definition.sort else None
        if index is not None:
            # An unknown index: the real store scans the table for the partition and sorts by nothing.
            found_index = [i for i in definition.indexes if i.name == index]
            sort_name = found_index[0].sort.name if found_index and found_index[0].sort else None
        name, value = partition
        found = [i for i in self.tables[table].values() if i.get(name) == value]
        if sort_name is not None:
            if index is not None:
                found = [i for i in found if sort_name in i]  # a GSI holds only items with its key attributes
            if sort_between is not None:
                low, high = (_sort_value(v) for v in sort_between)
                found = [i for i in found if low <= _sort_value(i[sort_name]) <= high]
            found.sort(
                key=lambda i: (_sort_value(i[sort_name]), *map(_sort_value, self._key(definition, i))),
                reverse=descending,
            )
        if limit is not None:
            found = found[:limit]
        keep_hash = bool(attributes) and CONTENT_HASH in (attributes or ())
        found = [self._with_hash(table, i, keep_hash) for i in found]
        if attributes:
            wanted = {*attributes, *definition.key_names, name, *([sort_name] if sort_name else [])}
            found = [{k: v for k, v in i.items() if k in wanted} for i in found]
        return iter([copy.deepcopy(i) for i in found])

    def scan(
        self,
        table: str,
        *,
        segments: int = 1,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
    ) -> Iterator[Item]:
        """Every item; a projection naming ``contentHash`` returns the stored hash, as the real store does."""
        self.scans.append(table)
        if attributes is None:
            return iter(self.items(table))
        wanted = set(attributes)
        keep_hash = CONTENT_HASH in wanted
        items = [self._with_hash(table, item, keep_hash) for item in self.items(table)]
        return iter([{k: v for k, v in item.items() if k in wanted} for item in items])

    def move_sort_key(self, table: str, key: Key, new_sort: Any, *, unless_leased: str | None = None) -> Item:
        """The store's move: every item of the partition folded into the newest synced content under the greater
        of ``new_sort`` and the newest stored sort key (atomic here under the lock); refused (LeaseBlocked) while
        the lease of the job ``unless_leased`` is held and not expired."""
        definition = TABLES[table]
        if definition.sort is None:
            raise PermanentError(f"{table} has no sort key to move")
        if self.fail_moves is not None:
            raise self.fail_moves
        partition_name, sort_name = definition.key_names
        with self._lock:
            stored = [i for i in self.tables[table].values() if i.get(partition_name) == key[partition_name]]
            if not stored:
                raise NotFound(f"{table} {key[partition_name]}: no item to move", keys=[key])
            content = max(stored, key=lambda i: (str(i.get(SYNC_ATTRIBUTE, "")), _sort_value(i[sort_name])))
            target = max([new_sort, *(i[sort_name] for i in stored)], key=_sort_value)
            item = {**content, sort_name: target}
            if len(stored) == 1 and content[sort_name] == target:
                return copy.deepcopy(item)
            held = self.leases.get(unless_leased) if unless_leased is not None else None
            if unless_leased is not None and held is not None and held[1] >= self.clock():
                raise LeaseBlocked(
                    f"{table} {_key_text(key)} not moved: the lease of job {unless_leased!r} is held by {held[0]}",
                    job=unless_leased,
                    keys=[key],
                    code="LeaseBlocked",
                )
            for old in stored:
                old_key = self._key(definition, old)
                del self.tables[table][old_key]
                self.hashes[table].pop(old_key, None)
            self.put_raw(table, item)
            self.moves += 1
            return copy.deepcopy(item)

    def lease(
        self,
        job: str,
        ttl_s: float = 120.0,
        *,
        force: bool = False,
        heartbeat: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> FakeLease:
        """The job's lease: refused (LeaseHeld) while another unexpired one is held, taken over with ``force``;
        it expires ``ttl_s`` after it was taken or renewed, by ``clock`` (no heartbeat runs here)."""
        return FakeLease(self, job, min(ttl_s, MAX_LEASE_TTL_S), force=force, clock=clock)


class FakeLease:
    """A lease of :class:`InMemoryStore`: ``lost`` and ``notes`` as the real lease reports them, ``renew``."""

    def __init__(
        self, store: InMemoryStore, job: str, ttl_s: float, *, force: bool, clock: Callable[[], float]
    ) -> None:
        self.store, self.job, self.ttl_s, self.force, self.clock = store, job, ttl_s, force, clock
        self.owner = uuid.uuid4().hex
        self.held = False
        self.lost: str | None = None
        self.notes: list[str] = []

    def __enter__(self) -> FakeLease:
        with self.store._lock:
            current = self.store.leases.get(self.job)
            if current is not None and current[1] >= self.clock():  # free only once past its expiry
                if not self.force:
                    raise LeaseHeld(f"job {self.job!r} is already running (lease held by {current[0]})")
                self.notes.append(f"forced: took over the lease of job {self.job!r} held by {current[0]}")
            self.store.leases[self.job] = (self.owner, self.clock() + self.ttl_s)
            self.held = True
        return self

    def renew(self, ttl_s: float | None = None) -> None:
        """Extend the lease from now, if this run still holds it (else LeaseHeld with code LeaseLost)."""
        if self.lost is not None:
            raise LeaseHeld(self.lost, code="LeaseLost")
        if not self.held:
            raise PermanentError(f"job {self.job!r}: the lease is not held, so it cannot be renewed", code="NotHeld")
        with self.store._lock:
            current = self.store.leases.get(self.job)
            if current is None or current[0] != self.owner:
                self._lose(f"now held by {current[0] if current else 'nobody'}")
                raise LeaseHeld(self.lost or "lease lost", code="LeaseLost")
            self.store.leases[self.job] = (self.owner, self.clock() + min(ttl_s or self.ttl_s, MAX_LEASE_TTL_S))

    def _lose(self, how: str) -> None:
        self.held = False
        self.lost = f"lease of job {self.job!r} lost ({how}); another run may have overlapped this one"

    def __exit__(self, *exc_info: Any) -> None:
        if self.store.lose_leases is not None:
            self.lost = self.store.lose_leases
        if not self.held:
            return
        self.held = False
        with self.store._lock:
            current = self.store.leases.get(self.job)
            if current is not None and current[0] == self.owner:
                del self.store.leases[self.job]
            elif current is not None and self.lost is None:
                self._lose(f"at release it was held by {current[0]}")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class FakeAssetSource:
    """Alpaca: raw asset dicts and daily volumes, with call counts and an injectable volume failure."""

    def __init__(self, assets: list[dict[str, Any]], volumes: Mapping[str, int] | None = None) -> None:
        self.assets = assets
        self.volumes = dict(volumes or {})
        self.volume_error: PollenError | None = None
        self.asset_calls = 0
        self.volume_requests: list[list[str]] = []

    def active_assets(self) -> list[dict[str, Any]]:
        self.asset_calls += 1
        return copy.deepcopy(self.assets)

    def daily_volumes(self, symbols: Sequence[str]) -> dict[str, int]:
        self.volume_requests.append(list(symbols))
        if self.volume_error is not None:
            raise self.volume_error
        return {s: self.volumes[s] for s in symbols if s in self.volumes}


Function = Literal["OVERVIEW", "EARNINGS", "CASH_FLOW", "BALANCE_SHEET", "INCOME_STATEMENT"]


class FakeFundamentals:
    """Alpha Vantage: payloads per (function, symbol); a daily quota; per-call errors; the calendar rows."""

    def __init__(self, calendar: list[dict[str, str]] | None = None, *, quota: int | None = None) -> None:
        self.calendar = calendar or []
        self.payloads: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.errors: dict[tuple[str, str], PollenError] = {}
        self.quota = quota
        self.calls: list[tuple[str, str]] = []
        self.horizons: list[str] = []

    def add_company(self, symbol: str, *, overview: Any, earnings: Any, statements: Any) -> None:
        self.payloads[("OVERVIEW", symbol)] = overview
        self.payloads[("EARNINGS", symbol)] = earnings
        for function in ("CASH_FLOW", "BALANCE_SHEET", "INCOME_STATEMENT"):
            self.payloads[(function, symbol)] = statements

    def _call(self, function: str, symbol: str) -> dict[str, Any] | None:
        if self.quota is not None and len(self.calls) >= self.quota:
            raise QuotaExhausted("Alpha Vantage daily quota reached (25 requests per day)")
        self.calls.append((function, symbol))
        if (function, symbol) in self.errors:
            raise self.errors[(function, symbol)]
        if (function, symbol) not in self.payloads:
            raise NotFound(f"{function} {symbol}: Invalid API call", keys=[{"symbol": symbol}])
        return copy.deepcopy(self.payloads[(function, symbol)])

    def calls_for(self, symbol: str) -> list[str]:
        return [f for f, s in self.calls if s == symbol]

    def earnings_calendar(self, horizon: Literal["3month", "6month", "12month"]) -> Iterator[dict[str, str]]:
        self.horizons.append(horizon)
        for row in self.calendar:
            yield dict(row)

    def overview(self, symbol: str) -> dict[str, Any] | None:
        return self._call("OVERVIEW", symbol)

    def earnings(self, symbol: str) -> dict[str, Any] | None:
        return self._call("EARNINGS", symbol)

    def statement(self, function: StatementFunction, symbol: str) -> dict[str, Any] | None:
        return self._call(function, symbol)


def transient(message: str = "injected throttling") -> TransientError:
    return TransientError(message, code="ProvisionedThroughputExceededException")
