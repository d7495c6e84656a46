"""The pollenation's sort-key move against concurrent syncs, on the moto server over HTTP: a sync's write between
the move's read and its transaction is never overwritten; no move commits while SyncAssets holds its lease (so a
sync never writes an asset back at the sort key a move left); and SyncAssets and PollenateAsset running at the same
time on the same symbols end with one item per symbol holding the newest synced content and pollenation date."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.backoff import Backoff
from pollen.deadline import Deadline
from pollen.domain.values import timestamp
from pollen.errors import LeaseBlocked
from pollen.jobs.check import ASSETS_LEASE
from pollen.jobs.pollenate import PollenateAsset
from pollen.jobs.sync_assets import SyncAssets
from pollen.observability import MetricsRecorder
from pollen.tables import ALL_TABLES, NEVER_POLLENATED
from tests import payloads
from tests.clocks import ManualClock
from tests.fakes import FakeAssetSource, FakeFundamentals
from tests.integration.store_support import make_store
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

SYMBOLS = [f"R{i:02d}" for i in range(6)]
ROUNDS = 12
START = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


class BeforeOperation(FaultProxy):
    """Runs ``hook`` once, just before the first request of ``operation`` reaches the server (which waits for it)."""

    def __init__(self, upstream: str, hook: Callable[[], None], operation: str = "TransactWriteItems") -> None:
        super().__init__(upstream)
        self.hook: Callable[[], None] | None = hook
        self.operation = operation

    def handle(self, operation: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if operation == self.operation and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return super().handle(operation, body, headers)


#: Waits of a pollenation's move for a running sync in these tests: short, and never giving up before the deadline.
QUICK_SYNC_WAIT = Backoff(base_s=0.01, cap_s=0.05, max_attempts=100_000)


@pytest.fixture
def all_tables(dynamodb: Any, table_prefix: str) -> str:
    ensure_tables(dynamodb, table_prefix, ALL_TABLES)
    return table_prefix


def _asset(symbol: str, sync: str, key: str, name: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "lastPollenationDate": key,
        "name": name,
        "status": "active",
        "volume": Decimal(1),
        "lastSyncDate": sync,
    }


def test_a_sync_written_between_the_moves_read_and_its_transaction_is_moved_not_overwritten(
    endpoint: str, all_tables: str, tmp_path: Path
) -> None:
    with make_store(endpoint, all_tables, tmp_path) as syncer:
        syncer.upsert("assets", [_asset("AAPL", "2026-11-01T00:00:00Z", "1970-01-01T00:00:00Z", "Apple")])

        def sync_meanwhile() -> None:
            newer = _asset("AAPL", "2026-11-02T00:00:00Z", "1970-01-01T00:00:00Z", "Apple Inc.")
            assert syncer.upsert("assets", [newer]).written == 1

        with BeforeOperation(endpoint, sync_meanwhile) as racing:
            metrics = MetricsRecorder()
            with make_store(racing.endpoint, all_tables, tmp_path, metrics=metrics) as mover:
                moved = mover.move_sort_key(
                    "assets", {"symbol": "AAPL", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "2026-11-03T00:00:00Z"
                )
        expected = _asset("AAPL", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", "Apple Inc.")
        assert moved == expected
        assert list(syncer.query("assets", partition=("symbol", "AAPL"))) == [expected]
        assert metrics.total("MoveConflicts") == 1


def test_a_second_item_left_by_a_race_is_folded_into_the_move(endpoint: str, all_tables: str, tmp_path: Path) -> None:
    with make_store(endpoint, all_tables, tmp_path) as store:
        # A sync wrote the old key again after a pollenation had moved it: two items for one symbol.
        store.upsert(
            "assets",
            [
                _asset("AAPL", "2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z", "Apple"),
                _asset("AAPL", "2026-11-02T00:00:00Z", "1970-01-01T00:00:00Z", "Apple Inc."),
            ],
        )
        moved = store.move_sort_key("assets", {"symbol": "AAPL"}, "2026-11-03T00:00:00Z")
        assert list(store.query("assets", partition=("symbol", "AAPL"))) == [moved]
        assert moved == _asset("AAPL", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", "Apple Inc.")


def test_a_move_unless_leased_is_refused_while_the_sync_holds_its_lease_and_goes_through_after(
    endpoint: str, all_tables: str, tmp_path: Path
) -> None:
    old = {"symbol": "AAPL", "lastPollenationDate": NEVER_POLLENATED}
    with make_store(endpoint, all_tables, tmp_path) as syncer, make_store(endpoint, all_tables, tmp_path) as mover:
        syncer.upsert("assets", [_asset("AAPL", "2026-11-01T00:00:00Z", NEVER_POLLENATED, "Apple")])
        with syncer.lease(ASSETS_LEASE, heartbeat=False) as lease:
            with pytest.raises(LeaseBlocked) as refused:
                mover.move_sort_key("assets", old, "2026-11-03T00:00:00Z", unless_leased=ASSETS_LEASE)
            assert refused.value.transient and refused.value.keys == [old]
            assert lease.owner in refused.value.message  # the holder, as the cancellation returned the lease item
            assert list(mover.query("assets", partition=("symbol", "AAPL"))) == [
                _asset("AAPL", "2026-11-01T00:00:00Z", NEVER_POLLENATED, "Apple")
            ]
        moved = mover.move_sort_key("assets", old, "2026-11-03T00:00:00Z", unless_leased=ASSETS_LEASE)
        assert moved == _asset("AAPL", "2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z", "Apple")
        assert list(syncer.query("assets", partition=("symbol", "AAPL"))) == [moved]


def _feed(round_: int) -> FakeAssetSource:
    assets = [payloads.alpaca_asset(s, name=f"{s} round {round_}") for s in SYMBOLS]
    return FakeAssetSource(assets, dict.fromkeys(SYMBOLS, round_))


def test_a_pollenation_between_the_syncs_scan_and_its_writes_never_leaves_a_second_item(
    endpoint: str, all_tables: str, tmp_path: Path
) -> None:
    """The race, made to happen: a pollenation of R00 runs between the sync's Scan (which read R00 at its old key)
    and the sync's first BatchWriteItem (held until the pollenation is done). Its deadline comes as its move is
    sent, so it does not wait for the sync it is holding up: the move is refused, and the sync writes R00 where it
    is, leaving one item. (Before the guard the move committed and the sync's put recreated the old key.)"""
    with make_store(endpoint, all_tables, tmp_path) as store:
        assert SyncAssets(store, _feed(0), metrics=MetricsRecorder(), clock=lambda: START).run().ok
        pollenation_time = START + timedelta(minutes=30)
        deadline_clock = ManualClock()
        results = []

        def pollenate_meanwhile() -> None:
            def deadline_comes() -> None:
                deadline_clock.advance(3600)

            with (
                BeforeOperation(endpoint, deadline_comes) as late,
                make_store(late.endpoint, all_tables, tmp_path) as mover,
            ):
                job = PollenateAsset(
                    mover, FakeFundamentals(), metrics=MetricsRecorder(), clock=lambda: pollenation_time
                )
                results.append(job.pollenate("R00", Deadline.after(60, clock=deadline_clock.__call__)))

        synced_at = START + timedelta(hours=1)
        with (
            BeforeOperation(endpoint, pollenate_meanwhile, operation="BatchWriteItem") as held,
            make_store(held.endpoint, all_tables, tmp_path) as syncer,
        ):
            report = SyncAssets(syncer, _feed(1), metrics=MetricsRecorder(), clock=lambda: synced_at).run()
        assert report.ok and report.written == len(SYMBOLS), report
        assert len(results) == 1

        (item,) = store.query("assets", partition=("symbol", "R00"))  # one item, right after the sync
        assert (item["lastPollenationDate"], item["name"]) == (NEVER_POLLENATED, "R00 round 1")
        assert sorted(i["symbol"] for i in store.scan("assets", consistent=True)) == SYMBOLS
        (deferred,) = results
        assert not deferred.ok and deferred.move_deferred and deferred.status == "stays due"
        assert "SyncAssets" in (deferred.error or "")

        # Pollenated again once the sync is done: the move goes through, still one item with the sync's content.
        again = PollenateAsset(store, FakeFundamentals(), metrics=MetricsRecorder(), clock=lambda: pollenation_time)
        assert again.pollenate("R00").ok
        (item,) = store.query("assets", partition=("symbol", "R00"))
        assert (item["lastPollenationDate"], item["name"]) == (timestamp(pollenation_time), "R00 round 1")


def _clock(start: datetime, step: timedelta) -> Callable[[], datetime]:
    """A strictly increasing clock for one thread."""
    ticks: Iterator[int] = iter(range(1_000_000))
    return lambda: start + step * next(ticks)


def test_sync_and_pollenation_at_the_same_time_keep_the_newest_content_and_pollenation_date(
    endpoint: str, all_tables: str, tmp_path: Path
) -> None:
    synced = threading.Event()
    moved = threading.Event()
    stop = threading.Event()
    sync_times: list[str] = []
    pollenated: dict[str, str] = {}
    failures: list[BaseException] = []

    def syncing() -> None:
        try:
            with make_store(endpoint, all_tables, tmp_path) as store:
                for round_ in range(ROUNDS):
                    when = START + timedelta(hours=round_)
                    report = SyncAssets(store, _feed(round_), metrics=MetricsRecorder(), clock=lambda w=when: w).run()
                    assert report.ok and not report.errors, report.errors
                    sync_times.append(timestamp(when))
                    synced.set()
                    # Back to back the syncs would leave the moves hardly a gap: let one in before the next sync.
                    moved.wait(30)
                    moved.clear()
        except BaseException as exc:
            failures.append(exc)
            synced.set()
        finally:
            stop.set()

    def pollenating() -> None:
        try:
            synced.wait(60)
            clock = _clock(START + timedelta(minutes=1), timedelta(minutes=7))
            with make_store(endpoint, all_tables, tmp_path) as store:
                job = PollenateAsset(
                    store, FakeFundamentals(), metrics=MetricsRecorder(), clock=clock, sync_wait=QUICK_SYNC_WAIT
                )

                def record(result: Any) -> None:
                    assert result.ok, result
                    pollenated[result.symbol] = max(pollenated.get(result.symbol, ""), result.last_pollenation or "")
                    moved.set()

                rounds = 0
                while not stop.is_set() or rounds < 2:
                    rounds += 1
                    job.run(SYMBOLS, on_result=record)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=syncing), threading.Thread(target=pollenating)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not failures, failures

    with make_store(endpoint, all_tables, tmp_path) as store:
        items = list(store.scan("assets"))
    assert sorted(i["symbol"] for i in items) == SYMBOLS  # exactly one item per symbol
    last = ROUNDS - 1
    for item in items:
        symbol = item["symbol"]
        assert (item["name"], item["volume"], item["lastSyncDate"]) == (f"{symbol} round {last}", last, sync_times[-1])
        assert item["lastPollenationDate"] == pollenated[symbol]
