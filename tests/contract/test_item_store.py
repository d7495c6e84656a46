"""The ItemStore contract (pollen.ports.ItemStore), held by the in-memory fake and by the DynamoDB store alike:
upserts (new, unchanged, stale, duplicates, the caller's stored versions), deletes, reads, sort-key moves, leases,
dead letters and the write report's counts. The port has no transaction method of its own: its one transaction is
``move_sort_key``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from pollen.deadline import Deadline
from pollen.errors import DeadLettersLost, LeaseBlocked, LeaseHeld, NotFound, PermanentError
from pollen.ports import CONTENT_HASH, VERSION_ATTRIBUTES
from tests.contract.conftest import Harness

OLD = "2026-01-01T00:00:00Z"
SYNC = "2026-02-01T00:00:00Z"
NEW = "2026-03-01T00:00:00Z"


def statement(symbol: str, eps: Any = Decimal("1.25"), sync: str | None = SYNC, **extra: Any) -> dict[str, Any]:
    item = {"symbol": symbol, "fiscalPeriod": "ANNUAL#2025-12-31", "period": "annual", "reportedEPS": eps, **extra}
    if sync is not None:
        item["lastSyncDate"] = sync
    return item


def key(symbol: str) -> dict[str, str]:
    return {"symbol": symbol, "fiscalPeriod": "ANNUAL#2025-12-31"}


def stored_item(store: Any, symbol: str) -> dict[str, Any]:
    item = store.get("earnings", key(symbol))
    assert item is not None, f"{symbol} is not stored"
    return dict(item)


def asset(symbol: str, when: str = "1970-01-01T00:00:00Z", sync: str = SYNC, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "lastPollenationDate": when, "status": "active", "lastSyncDate": sync, **extra}


def counts(report: Any) -> dict[str, int]:
    names = ("written", "unchanged", "duplicates", "stale", "invalid", "failed")
    return {name: getattr(report, name) for name in names if getattr(report, name)}


# --- upsert ----------------------------------------------------------------------------------------------------


def test_new_items_are_written_and_read_back_as_stored(harness: Harness) -> None:
    store = harness.port
    report = store.upsert("earnings", [statement("A"), statement("B", detail={"list": [Decimal("1.50"), None, True]})])
    assert counts(report) == {"written": 2} and report.ok and report.error_lines() == []
    got = store.get("earnings", key("B"))
    assert got == statement("B", detail={"list": [Decimal("1.5"), None, True]})
    assert CONTENT_HASH not in got
    assert harness.sink.entries == []


def test_unchanged_content_is_counted_unchanged_and_not_rewritten(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A", tags={"x", "y"}, count=2)])
    again = store.upsert("earnings", [statement("A", sync=NEW, tags={"y", "x"}, count=2)])
    assert counts(again) == {"unchanged": 1}
    assert stored_item(store, "A")["lastSyncDate"] == SYNC  # not rewritten: keeps its own sync date


def test_content_is_compared_as_stored_not_as_passed(harness: Harness) -> None:
    """Equal as DynamoDB stores them (numbers by value, tuples as lists, an empty set dropped) is unchanged."""
    store = harness.port
    store.upsert("earnings", [statement("A", eps=Decimal("2.50"), parts=[1, 2])])
    same = statement("A", eps=Decimal("2.5"), parts=(Decimal(1), Decimal("2.0")), sync=NEW, none=set())
    assert counts(store.upsert("earnings", [same])) == {"unchanged": 1}
    assert counts(store.upsert("earnings", [statement("A", eps=Decimal("2.51"), sync=NEW)])) == {"written": 1}
    assert stored_item(store, "A")["reportedEPS"] == Decimal("2.51")


def test_an_older_item_is_stale_and_never_applied(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A", eps=Decimal(1))])
    assert counts(store.upsert("earnings", [statement("A", eps=Decimal(2), sync=OLD)])) == {"stale": 1}
    assert stored_item(store, "A")["reportedEPS"] == Decimal(1)
    # Same content is unchanged whatever its date: the hash is compared first.
    assert counts(store.upsert("earnings", [statement("A", eps=Decimal(1), sync=OLD)])) == {"unchanged": 1}


def test_a_missing_last_sync_date_never_makes_an_item_stale(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A", eps=Decimal(1), sync=None)])
    assert counts(store.upsert("earnings", [statement("A", eps=Decimal(2), sync=OLD)])) == {"written": 1}
    # An incoming item without a date replaces a dated one too: there is nothing to compare.
    assert counts(store.upsert("earnings", [statement("A", eps=Decimal(3), sync=None)])) == {"written": 1}
    got = store.get("earnings", key("A"))
    assert got is not None and got["reportedEPS"] == Decimal(3) and "lastSyncDate" not in got


def test_an_item_another_tool_wrote_without_a_hash_is_rewritten_once(harness: Harness) -> None:
    harness.plant_foreign("earnings", statement("A"))
    store = harness.port
    assert counts(store.upsert("earnings", [statement("A")])) == {"written": 1}
    assert counts(store.upsert("earnings", [statement("A")])) == {"unchanged": 1}


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        (NEW, OLD, NEW),  # the newer lastSyncDate wins, whatever the order
        (OLD, NEW, NEW),
        (SYNC, SYNC, "second"),  # equal dates: the later input
        (None, OLD, "second"),  # a missing date: the later input
        (OLD, None, "second"),
    ],
)
def test_duplicates_in_one_call_keep_the_newer_else_the_later_input(
    harness: Harness, first: str | None, second: str | None, kept: str
) -> None:
    store = harness.port
    items = [statement("A", eps=Decimal(1), sync=first), statement("A", eps=Decimal(2), sync=second)]
    report = store.upsert("earnings", [*items, statement("B")])
    assert counts(report) == {"written": 2, "duplicates": 1}
    winner = items[1] if kept in ("second", second) else items[0]
    assert store.get("earnings", key("A")) == winner


def test_the_same_item_twice_in_one_call_is_written_once(harness: Harness) -> None:
    store = harness.port
    assert counts(store.upsert("earnings", [statement("A"), statement("A")])) == {"written": 1, "duplicates": 1}
    assert counts(store.upsert("earnings", [statement("A"), statement("A")])) == {"unchanged": 1, "duplicates": 1}


def test_stored_versions_from_the_caller_replace_the_read(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A"), statement("B"), statement("C")])
    stored = list(store.scan("earnings", attributes=["symbol", "fiscalPeriod", *VERSION_ATTRIBUTES]))
    assert sorted(stored, key=lambda i: i["symbol"])[0].keys() == {"symbol", "fiscalPeriod", *VERSION_ATTRIBUTES}
    versions = [v for v in stored if v["symbol"] != "C"]
    incoming = [statement("A", sync=NEW), statement("B", eps=Decimal(9), sync=OLD), statement("C", sync=NEW)]
    report = store.upsert("earnings", incoming, stored=versions)
    # A unchanged, B older than its stored version, C absent from the caller's versions: taken as new.
    assert counts(report) == {"unchanged": 1, "stale": 1, "written": 1}
    assert stored_item(store, "C")["lastSyncDate"] == NEW


# --- deletes ---------------------------------------------------------------------------------------------------


def test_deletes_count_existing_and_missing_keys_and_a_repeated_key_once(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A"), statement("B")])
    report = store.delete("earnings", [key("A"), key("MISSING"), key("A")])
    assert counts(report) == {"written": 2, "duplicates": 1}
    assert store.get("earnings", key("A")) is None and store.get("earnings", key("B")) is not None


def test_a_bad_key_is_invalid_and_dead_lettered_as_a_delete(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A")])
    report = store.delete("earnings", [{"symbol": "A"}, key("A")])
    assert counts(report) == {"invalid": 1, "written": 1} and not report.ok
    assert len(report.error_lines()) == 1 and "fiscalPeriod" in report.error_lines()[0]
    assert [(t, item, operation) for (t, item, _), operation in zip(*_letters(harness), strict=True)] == [
        ("earnings", {"symbol": "A"}, "delete")
    ]


def _letters(harness: Harness) -> tuple[list[tuple[str, dict[str, Any], str]], list[str]]:
    return harness.sink.entries, list(harness.sink.operations)


# --- reads -----------------------------------------------------------------------------------------------------


def test_batch_get_keeps_the_order_of_the_keys_without_duplicates_or_missing_ones(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement(s) for s in "ABC"])
    found = store.batch_get("earnings", [key("C"), key("X"), key("A"), key("C")])
    assert [i["symbol"] for i in found] == ["C", "A"]
    assert all(CONTENT_HASH not in i for i in found)


def test_a_read_by_an_incomplete_key_is_refused_with_a_clear_error(harness: Harness) -> None:
    store = harness.port
    with pytest.raises(PermanentError, match="fiscalPeriod"):
        store.get("earnings", {"symbol": "A"})
    with pytest.raises(PermanentError, match="fiscalPeriod"):
        store.batch_get("earnings", [key("A"), {"symbol": "A"}])


def test_query_on_the_base_table_by_sort_range_order_limit_and_projection(harness: Harness) -> None:
    store = harness.port
    periods = ["ANNUAL#2023-12-31", "ANNUAL#2024-12-31", "ANNUAL#2025-12-31", "QUARTERLY#2025-09-30"]
    store.upsert("earnings", [{**statement("A"), "fiscalPeriod": p} for p in periods] + [statement("B")])
    annual = store.query("earnings", partition=("symbol", "A"), sort_between=("ANNUAL#", "ANNUAL#~"))
    assert [i["fiscalPeriod"] for i in annual] == periods[:3]
    latest = store.query("earnings", partition=("symbol", "A"), descending=True, limit=2, attributes=["period"])
    assert list(latest) == [{"symbol": "A", "fiscalPeriod": p, "period": "annual"} for p in (periods[3], periods[2])]


def test_query_through_an_index_holds_only_items_with_its_keys_in_its_order(harness: Harness) -> None:
    store = harness.port
    store.upsert(
        "assets",
        [
            asset("A", volume=Decimal(5)),
            asset("B", volume=Decimal(50)),
            asset("C", volume=Decimal(7)),
            asset("D", volume=Decimal(1), status="inactive"),
            asset("E"),  # no volume: not in the index
        ],
    )
    found = store.query("assets", partition=("status", "active"), index="status-index", descending=True, limit=2)
    assert [i["symbol"] for i in found] == ["B", "C"]
    ranged = store.query(
        "assets", partition=("status", "active"), index="status-index", sort_between=(Decimal(5), Decimal(7))
    )
    assert [(i["symbol"], i["volume"]) for i in ranged] == [("A", Decimal(5)), ("C", Decimal(7))]
    projected = list(store.query("assets", partition=("status", "active"), index="status-index", attributes=["x"]))
    assert projected[0] == {"symbol": "A", "lastPollenationDate": "1970-01-01T00:00:00Z", "status": "active",
                            "volume": Decimal(5)}  # fmt: skip


def test_query_through_an_unknown_index_scans_the_table_for_the_partition(harness: Harness) -> None:
    store = harness.port
    store.upsert("assets", [asset("A", volume=Decimal(5)), asset("B"), asset("C", status="inactive")])
    found = store.query("assets", partition=("status", "active"), index="no-such-index")
    assert sorted(i["symbol"] for i in found) == ["A", "B"]


def test_scan_returns_every_item_or_the_projection_and_the_hash_only_when_named(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("A"), statement("B")])
    assert sorted(i["symbol"] for i in store.scan("earnings")) == ["A", "B"]
    assert all(CONTENT_HASH not in i for i in store.scan("earnings"))
    projected = sorted(store.scan("earnings", attributes=["symbol", "period"]), key=lambda i: i["symbol"])
    assert projected == [{"symbol": "A", "period": "annual"}, {"symbol": "B", "period": "annual"}]
    hashes = {i["symbol"]: i[CONTENT_HASH] for i in store.scan("earnings", attributes=["symbol", CONTENT_HASH])}
    assert hashes["A"] != hashes["B"] and all(isinstance(h, str) and len(h) == 32 for h in hashes.values())


# --- moves -----------------------------------------------------------------------------------------------------


def test_a_move_puts_the_item_under_the_new_sort_key_and_removes_the_old(harness: Harness) -> None:
    store = harness.port
    store.upsert("assets", [asset("A", volume=Decimal(3))])
    moved = store.move_sort_key("assets", {"symbol": "A", "lastPollenationDate": "1970-01-01T00:00:00Z"}, NEW)
    assert moved == asset("A", NEW, volume=Decimal(3))
    assert list(store.query("assets", partition=("symbol", "A"))) == [moved]
    # The content kept its hash: writing the same content again changes nothing.
    assert counts(store.upsert("assets", [asset("A", NEW, sync=NEW, volume=Decimal(3))])) == {"unchanged": 1}


def test_a_move_to_the_same_or_an_older_key_leaves_the_item_where_it_is(harness: Harness) -> None:
    store = harness.port
    store.upsert("assets", [asset("A", SYNC, volume=Decimal(3))])
    same = store.move_sort_key("assets", {"symbol": "A", "lastPollenationDate": SYNC}, SYNC)
    older = store.move_sort_key("assets", {"symbol": "A", "lastPollenationDate": SYNC}, OLD)
    assert same == older == asset("A", SYNC, volume=Decimal(3))
    assert CONTENT_HASH not in same
    assert list(store.query("assets", partition=("symbol", "A"))) == [same]


def test_a_move_folds_a_second_item_of_the_partition_into_the_newest_synced_content(harness: Harness) -> None:
    """What a race between a sync and a pollenation can leave: two items of one symbol. The move keeps one, with
    the newest synced content, under the newest sort key."""
    store = harness.port
    store.upsert(
        "assets", [asset("A", OLD, sync=NEW, volume=Decimal(9)), asset("A", SYNC, sync=OLD, volume=Decimal(1))]
    )
    moved = store.move_sort_key("assets", {"symbol": "A", "lastPollenationDate": OLD}, "2026-01-15T00:00:00Z")
    assert moved == asset("A", SYNC, sync=NEW, volume=Decimal(9))
    assert list(store.query("assets", partition=("symbol", "A"))) == [moved]


def test_a_move_of_nothing_or_on_a_table_without_sort_key_fails_and_changes_nothing(harness: Harness) -> None:
    store = harness.port
    store.upsert("assets", [asset("A")])
    with pytest.raises(NotFound):
        store.move_sort_key("assets", {"symbol": "B", "lastPollenationDate": OLD}, NEW)
    with pytest.raises(PermanentError):
        store.move_sort_key("companyOverview", {"symbol": "A"}, NEW)
    assert [i["symbol"] for i in store.scan("assets")] == ["A"]


# --- leases ----------------------------------------------------------------------------------------------------


class Clock:
    """A clock the test moves (an hour ahead of the wall clock, so no TTL sweep ever sees these leases)."""

    def __init__(self) -> None:
        self.now = time.time() + 3600

    def __call__(self) -> float:
        return self.now


def test_a_lease_is_exclusive_until_released(harness: Harness) -> None:
    store, clock = harness.store, Clock()
    with store.lease("job", 30, heartbeat=False, clock=clock) as held:
        with pytest.raises(LeaseHeld), store.lease("job", 30, heartbeat=False, clock=clock):
            pass
        with harness.other().lease("other-job", 30, heartbeat=False, clock=clock):
            pass  # another job's lease is another lease
    assert held.lost is None and held.notes == []
    with harness.other().lease("job", 30, heartbeat=False, clock=clock) as again:
        assert again.lost is None
    assert again.lost is None and again.notes == []


def test_force_takes_a_live_lease_over_and_says_so(harness: Harness) -> None:
    store, clock = harness.store, Clock()
    with store.lease("job", 30, heartbeat=False, clock=clock) as first:
        with harness.other().lease("job", 30, heartbeat=False, clock=clock, force=True) as forced:
            assert forced.notes and forced.notes[0].startswith("forced")
        assert forced.lost is None
    # The first run finds at release that the lease was taken from it (and released by its taker meanwhile: gone).
    assert first.notes == []


def test_an_expired_lease_is_taken_without_force_and_its_old_holder_learns_it_lost_it(harness: Harness) -> None:
    store, clock = harness.store, Clock()
    first = store.lease("job", 10, heartbeat=False, clock=clock)
    first.__enter__()
    clock.now += 11
    with harness.other().lease("job", 30, heartbeat=False, clock=clock) as second:
        assert second.notes == []  # an expired lease is free: no takeover to report
        with pytest.raises(LeaseHeld) as lost:
            first.renew()
        assert lost.value.code == "LeaseLost" and first.lost is not None
        first.__exit__(None, None, None)
    assert second.lost is None


def test_a_renewed_lease_lives_its_ttl_from_the_renewal(harness: Harness) -> None:
    store, clock = harness.store, Clock()
    first = store.lease("job", 10, heartbeat=False, clock=clock)
    with first:
        clock.now += 8
        first.renew()
        clock.now += 3  # 11 s after taking it, 3 s after renewing it
        with pytest.raises(LeaseHeld), harness.other().lease("job", 10, heartbeat=False, clock=clock):
            pass
        clock.now += 8  # past the renewed expiry: another run takes it, and this one finds it lost at release
        with harness.other().lease("job", 10, heartbeat=False, clock=clock):
            first.__exit__(None, None, None)
            assert first.lost is not None and "lost" in first.lost


def test_a_move_unless_leased_is_refused_while_the_lease_is_held_and_goes_through_once_it_is_free(
    harness: Harness,
) -> None:
    """What keeps a pollenation's move out of a running SyncAssets: refused (transient, nothing changed) while
    the job's lease is held, whoever holds it; allowed once it is released, or once it has expired (a crashed run)."""
    store = harness.port
    store.upsert("assets", [asset("A"), asset("B")])
    clock = Clock()  # an hour ahead of the wall clock the moves compare with: held
    with harness.other().lease("sync-assets", 30, heartbeat=False, clock=clock):
        with pytest.raises(LeaseBlocked) as refused:
            store.move_sort_key("assets", {"symbol": "A"}, NEW, unless_leased="sync-assets")
        assert refused.value.transient and refused.value.job == "sync-assets"
        assert list(store.query("assets", partition=("symbol", "A"))) == [asset("A")]
        # Another job's lease, or no guard at all, does not stop a move.
        assert store.move_sort_key("assets", {"symbol": "B"}, SYNC, unless_leased="other-job") == asset("B", SYNC)
        assert store.move_sort_key("assets", {"symbol": "B"}, NEW) == asset("B", NEW)
    assert store.move_sort_key("assets", {"symbol": "A"}, SYNC, unless_leased="sync-assets") == asset("A", SYNC)

    crashed = Clock()
    crashed.now -= 7200  # taken two hours before the wall clock, for 30 s: long expired, never released
    harness.other().lease("sync-assets", 30, heartbeat=False, clock=crashed).__enter__()
    moved = store.move_sort_key("assets", {"symbol": "A"}, NEW, unless_leased="sync-assets")
    assert moved == asset("A", NEW)
    assert list(store.query("assets", partition=("symbol", "A"))) == [moved]


# --- dead letters ----------------------------------------------------------------------------------------------

TOO_LARGE = "x" * (400 * 1024)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (statement("BIG", note=TOO_LARGE), "400 KB"),
        (statement("HASH", **{CONTENT_HASH: "mine"}), "reserved"),
        (statement("NAN", eps=Decimal("NaN")), "finite"),
        ({"symbol": "NOKEY", "lastSyncDate": SYNC}, "fiscalPeriod"),
        ({**statement("EMPTY"), "fiscalPeriod": ""}, "empty"),
        ({**statement("TYPE"), "fiscalPeriod": Decimal(1)}, "type"),
    ],
)
def test_an_item_the_store_refuses_is_invalid_named_and_dead_lettered(
    harness: Harness, bad: dict[str, Any], why: str
) -> None:
    store = harness.port
    report = store.upsert("earnings", [statement("A"), bad, statement("B")])
    assert counts(report) == {"written": 2, "invalid": 1} and not report.ok
    (line,) = report.error_lines()
    assert bad["symbol"] in line and why in line
    (letter,) = harness.sink.entries
    assert letter[0] == "earnings" and letter[1] == bad and why in letter[2] and bad["symbol"] in letter[2]
    assert harness.sink.operations == ["put"]
    assert sorted(i["symbol"] for i in store.scan("earnings")) == ["A", "B"]


def test_without_a_sink_the_report_still_names_what_was_refused(harness: Harness) -> None:
    store = harness.other(dead_letters=None)
    report = store.upsert("earnings", [statement("A"), statement("BIG", note=TOO_LARGE)])
    assert counts(report) == {"written": 1, "invalid": 1}
    assert "BIG" in report.error_lines()[0]


class RefusingSink:
    """A dead-letter sink with no durable place left (SQS refusing and no local fallback)."""

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: str = "put") -> None:
        raise DeadLettersLost(f"{table}: a dead letter could not be kept")


def test_dead_letters_no_sink_takes_end_the_call_after_the_valid_items_are_written(harness: Harness) -> None:
    store = harness.other(dead_letters=RefusingSink())
    with pytest.raises(DeadLettersLost):
        store.upsert("earnings", [statement("A"), statement("BIG", note=TOO_LARGE)])
    assert store.get("earnings", key("A")) == statement("A")
    with pytest.raises(DeadLettersLost):
        store.delete("earnings", [key("A"), {"symbol": "A"}])
    assert store.get("earnings", key("A")) is None


def test_items_past_the_deadline_are_failed_and_dead_lettered(harness: Harness) -> None:
    store = harness.port
    expired = Deadline(time.monotonic() - 1)
    report = store.upsert("earnings", [statement("A"), statement("B")], deadline=expired)
    assert counts(report) == {"failed": 2} and not report.ok
    assert all("deadline" in line for line in report.error_lines())
    assert sorted(e[1]["symbol"] for e in harness.sink.entries) == ["A", "B"]
    assert store.get("earnings", key("A")) is None
    deleted = store.delete("earnings", [key("A")], deadline=expired)
    assert counts(deleted) == {"failed": 1} and harness.sink.operations[-1] == "delete"


# --- the report ------------------------------------------------------------------------------------------------


def test_one_report_counts_every_item_once_in_its_outcome(harness: Harness) -> None:
    store = harness.port
    store.upsert("earnings", [statement("SAME"), statement("OLDER", eps=Decimal(1))])
    report = store.upsert(
        "earnings",
        [
            statement("NEW"),
            statement("SAME", sync=NEW),
            statement("OLDER", eps=Decimal(2), sync=OLD),
            statement("TWICE", eps=Decimal(1)),
            statement("TWICE", eps=Decimal(2)),
            statement("BAD", eps=Decimal("Infinity")),
        ],
    )
    assert counts(report) == {"written": 2, "unchanged": 1, "stale": 1, "duplicates": 1, "invalid": 1}
    assert not report.ok and len(report.error_lines()) == 1
    assert [e[1]["symbol"] for e in harness.sink.entries] == ["BAD"]
