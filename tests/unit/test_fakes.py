"""The in-memory store keeps the ItemStore contract the jobs rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pollen.errors import LeaseHeld, PermanentError
from tests.fakes import InMemoryStore


def asset(
    symbol: str, volume: int, key: str = "1970-01-01T00:00:00Z", sync: str = "2026-11-02T00:00:00Z", **extra: object
) -> dict[str, object]:
    return {
        "symbol": symbol,
        "lastPollenationDate": key,
        "status": "active",
        "volume": Decimal(volume),
        "lastSyncDate": sync,
        **extra,
    }


def test_unchanged_items_keep_last_sync_date_and_older_items_are_stale() -> None:
    store = InMemoryStore()
    assert store.upsert("assets", [asset("A", 1)]).written == 1
    same = store.upsert("assets", [asset("A", 1, sync="2026-11-03T00:00:00Z")])
    assert same.unchanged == 1 and store.items("assets")[0]["lastSyncDate"] == "2026-11-02T00:00:00Z"
    assert store.upsert("assets", [asset("A", 2, sync="2026-11-01T00:00:00Z")]).stale == 1
    assert store.upsert("assets", [asset("A", 2, sync="2026-11-03T00:00:00Z")]).written == 1


def test_index_queries_sort_by_the_index_key_skip_items_without_it_and_honour_limit() -> None:
    store = InMemoryStore()
    store.upsert("assets", [asset("A", 5), asset("B", 50), asset("C", 7), asset("D", 1, status="inactive")])
    store.put_raw(
        "assets", {"symbol": "E", "lastPollenationDate": "x", "status": "active"}
    )  # no volume: not in the GSI
    found = store.query("assets", partition=("status", "active"), index="status-index", descending=True, limit=2)
    assert [i["symbol"] for i in found] == ["B", "C"]
    ranged = store.query(
        "assets", partition=("status", "active"), index="status-index", sort_between=(Decimal(5), Decimal(7))
    )
    assert [i["symbol"] for i in ranged] == ["A", "C"]


def test_move_sort_key_is_atomic_and_leases_exclude_each_other() -> None:
    store = InMemoryStore()
    store.upsert("assets", [asset("A", 1)])
    with pytest.raises(PermanentError):
        store.move_sort_key("assets", {"symbol": "B", "lastPollenationDate": "nope"}, "2026")
    assert len(store.items("assets")) == 1
    store.move_sort_key("assets", {"symbol": "A", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "2026")
    assert [i["lastPollenationDate"] for i in store.items("assets")] == ["2026"]
    with store.lease("job", 10), pytest.raises(LeaseHeld), store.lease("job", 10):
        pass
    with store.lease("job", 10):
        pass


def test_changed_leaves_out_what_the_upsert_would_count_unchanged() -> None:
    store = InMemoryStore()
    store.upsert("assets", [asset("A", 1), asset("B", 2), asset("C", 3)])
    stored = list(store.scan("assets", attributes=["symbol", "lastPollenationDate", "contentHash", "lastSyncDate"]))
    incoming = [
        asset("A", 1, sync="2026-11-03T00:00:00Z"),
        asset("B", 5),
        asset("D", 4),
        asset("C", 3, contentHash="x"),
    ]
    changed = store.changed("assets", incoming, stored)
    assert [i["symbol"] for i in changed] == ["B", "D", "C"]
    report = store.upsert("assets", incoming, stored=stored)
    assert report.unchanged == len(incoming) - len(changed)
