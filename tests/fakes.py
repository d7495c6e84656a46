"""In-process fakes of the ports: an ItemStore that honours the contract, and upstream sources built from raw
payload dicts, each with fault injection."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pollen.deadline import Deadline
from pollen.domain.values import same_content
from pollen.errors import (
    DeadLettersLost,
    LeaseHeld,
    NotFound,
    PermanentError,
    PollenError,
    QuotaExhausted,
    TransientError,
)
from pollen.ports import Item, Key, StatementFunction
from pollen.tables import TABLES, TableDef

BOOKKEEPING = frozenset({"lastSyncDate"})


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


def _sort_value(value: Any) -> Any:
    return (0, value) if isinstance(value, (int, Decimal)) else (1, str(value))


class InMemoryStore:
    """The ItemStore contract in memory: unchanged items are not rewritten (they keep lastSyncDate), an item older
    than the stored one is refused as stale, queries by partition / sort range / index, move_sort_key atomic, leases.

    Faults: ``fail_upsert`` (tables whose upsert and delete fail every item, or raise an exit-2 error), ``fail_items`` (tables whose every item fails),
    ``fail_moves`` (move_sort_key raises; nothing changes), ``broken_indexes`` (the index query falls back to a
    scan, as the real store does).
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Item]] = {name: {} for name in TABLES}
        self.writes: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.deletes: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.moves = 0
        self.queries: list[tuple[str, str | None]] = []
        self.scans: list[str] = []
        self.upserts_with_stored = 0
        self.fail_upsert: dict[str, PollenError] = {}
        #: (table, item or key, reason) of every item an injected ``fail_upsert`` failed.
        self.dead_letters: list[tuple[str, Item, str]] = []
        self.fail_items: set[str] = set()
        self.fail_moves: PollenError | None = None
        self.leases: set[str] = set()
        #: Set to a reason to have every lease found lost while its block runs (as the store's heartbeat would).
        self.lose_leases: str | None = None
        self._lock = threading.Lock()

    # --- helpers for tests ---------------------------------------------------------------------------------------
    def put_raw(self, table: str, item: Item) -> None:
        """Plant an item as is (no comparison, no counting)."""
        self.tables[table][self._key(TABLES[table], item)] = copy.deepcopy(item)

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

    # --- ItemStore ----------------------------------------------------------------------------------------------
    def _injected(self, table: str, keys: Iterable[Mapping[str, Any]]) -> FakeWriteReport | None:
        """``fail_upsert`` as the real store behaves: a run-ending error (exit 2) and dead letters no durable place
        took are raised, any other error fails every item of the call, each named in the report (the real store also
        dead-letters them)."""
        error = self.fail_upsert.get(table)
        if error is None:
            return None
        if error.exit_code == 2 or isinstance(error, DeadLettersLost):
            raise error
        report = FakeWriteReport()
        for key in keys:
            report.failed += 1
            report.errors.append(f"{table} {dict(key)}: failed: {error}")
        self.dead_letters.extend((table, dict(k), str(error)) for k in keys)
        return report

    def upsert(
        self,
        table: str,
        items: Iterable[Item],
        *,
        deadline: Deadline | None = None,
        stored: Iterable[Item] | None = None,
    ) -> FakeWriteReport:
        """``stored`` is recorded (``upserts_with_stored``); the comparison is against the fake's own contents."""
        items = list(items)
        if stored is not None:
            self.upserts_with_stored += 1
        injected = self._injected(table, items)
        if injected is not None:
            return injected
        definition = TABLES[table]
        report = FakeWriteReport()
        batch: dict[tuple[Any, ...], Item] = {}
        for item in items:
            key = self._key(definition, item)
            if key in batch:
                report.duplicates += 1
            batch[key] = item
        with self._lock:
            stored = self.tables[table]
            for key, item in batch.items():
                if deadline is not None and deadline.expired():
                    report.failed += 1
                    report.errors.append(f"{table} {key}: deadline reached")
                    continue
                if table in self.fail_items:
                    report.failed += 1
                    report.errors.append(f"{table} {key}: injected failure")
                    continue
                old = stored.get(key)
                if old is not None and str(old.get("lastSyncDate", "")) > str(item.get("lastSyncDate", "")):
                    report.stale += 1
                    continue
                if old is not None and same_content(old, item, ignore=BOOKKEEPING):
                    report.unchanged += 1
                    continue
                stored[key] = copy.deepcopy(item)
                self.writes[table] += 1
                report.written += 1
        return report

    def delete(self, table: str, keys: Iterable[Key], *, deadline: Deadline | None = None) -> FakeWriteReport:
        keys = list(keys)
        injected = self._injected(table, keys)
        if injected is not None:
            return injected
        definition = TABLES[table]
        report = FakeWriteReport()
        with self._lock:
            for key in keys:
                k = self._key(definition, key)
                if self.tables[table].pop(k, None) is not None:
                    self.deletes[table] += 1
                report.written += 1
        return report

    def get(self, table: str, key: Key) -> Item | None:
        item = self.tables[table].get(self._key(TABLES[table], key))
        return copy.deepcopy(item) if item is not None else None

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]:
        return [i for i in (self.get(table, k) for k in keys) if i is not None]

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
        if index is None:
            sort_name = definition.sort.name if definition.sort else None
        else:
            (index_def,) = [i for i in definition.indexes if i.name == index]
            sort_name = index_def.sort.name if index_def.sort else None
        name, value = partition
        found = [i for i in self.tables[table].values() if i.get(name) == value]
        if sort_name is not None:
            if index is not None:
                found = [i for i in found if sort_name in i]  # a GSI holds only items with its key attributes
            if sort_between is not None:
                low, high = sort_between
                found = [i for i in found if low <= i[sort_name] <= high]
            found.sort(key=lambda i: (_sort_value(i[sort_name]), str(self._key(definition, i))), reverse=descending)
        if limit is not None:
            found = found[:limit]
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
        self.scans.append(table)
        if attributes is None:
            return iter(self.items(table))
        wanted = set(attributes)
        return iter([{k: v for k, v in item.items() if k in wanted} for item in self.items(table)])

    def move_sort_key(self, table: str, key: Key, new_sort: Any) -> Item:
        """The store's move: every item of the partition folded into the newest synced content under the greater
        of ``new_sort`` and the newest stored sort key (atomic here under the lock)."""
        definition = TABLES[table]
        if self.fail_moves is not None:
            raise self.fail_moves
        partition_name, sort_name = definition.key_names
        with self._lock:
            stored = [i for i in self.tables[table].values() if i.get(partition_name) == key[partition_name]]
            if not stored:
                raise NotFound(f"{table} {key[partition_name]}: no item to move", keys=[key])
            content = max(stored, key=lambda i: (str(i.get("lastSyncDate", "")), _sort_value(i[sort_name])))
            target = max([new_sort, *(i[sort_name] for i in stored)], key=_sort_value)
            item = {**content, sort_name: target}
            if len(stored) == 1 and content[sort_name] == target:
                return copy.deepcopy(item)
            for old in stored:
                del self.tables[table][self._key(definition, old)]
            self.tables[table][self._key(definition, item)] = copy.deepcopy(item)
            self.moves += 1
            return copy.deepcopy(item)

    @contextmanager
    def lease(self, job: str, ttl_s: float = 120.0, *, force: bool = False) -> Iterator[FakeLease]:
        held = FakeLease()
        with self._lock:
            if job in self.leases and not force:
                raise LeaseHeld(f"another {job} run holds the lease")
            if job in self.leases:
                held.notes.append(f"forced: took over the lease of job {job!r}")
            self.leases.add(job)
        try:
            yield held
        finally:
            held.lost = self.lose_leases
            with self._lock:
                self.leases.discard(job)


@dataclass
class FakeLease:
    lost: str | None = None
    notes: list[str] = field(default_factory=list)


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
