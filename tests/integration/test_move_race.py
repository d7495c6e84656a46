"""The pollenation's sort-key move against concurrent syncs, on the moto server over HTTP: a sync's write between
the move's read and its transaction is never overwritten, and SyncAssets and PollenateAsset running at the same
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
from pollen.domain.values import timestamp
from pollen.jobs.pollenate import PollenateAsset
from pollen.jobs.sync_assets import SyncAssets
from pollen.observability import MetricsRecorder
from pollen.tables import ALL_TABLES
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals
from tests.integration.store_support import make_store
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

SYMBOLS = [f"R{i:02d}" for i in range(6)]
ROUNDS = 12
START = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


class BeforeTransaction(FaultProxy):
    """Runs ``hook`` once, just before the first TransactWriteItems reaches the server."""

    def __init__(self, upstream: str, hook: Callable[[], None]) -> None:
        super().__init__(upstream)
        self.hook: Callable[[], None] | None = hook

    def handle(self, operation: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if operation == "TransactWriteItems" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return super().handle(operation, body, headers)


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

        with BeforeTransaction(endpoint, sync_meanwhile) as racing:
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


def _clock(start: datetime, step: timedelta) -> Callable[[], datetime]:
    """A strictly increasing clock for one thread."""
    ticks: Iterator[int] = iter(range(1_000_000))
    return lambda: start + step * next(ticks)


def test_sync_and_pollenation_at_the_same_time_keep_the_newest_content_and_pollenation_date(
    endpoint: str, all_tables: str, tmp_path: Path
) -> None:
    def feed(round_: int) -> FakeAssetSource:
        assets = [payloads.alpaca_asset(s, name=f"{s} round {round_}") for s in SYMBOLS]
        return FakeAssetSource(assets, dict.fromkeys(SYMBOLS, round_))

    synced = threading.Event()
    stop = threading.Event()
    sync_times: list[str] = []
    pollenated: dict[str, str] = {}
    failures: list[BaseException] = []

    def syncing() -> None:
        try:
            with make_store(endpoint, all_tables, tmp_path) as store:
                for round_ in range(ROUNDS):
                    when = START + timedelta(hours=round_)
                    report = SyncAssets(store, feed(round_), metrics=MetricsRecorder(), clock=lambda w=when: w).run()
                    assert report.ok and not report.errors, report.errors
                    sync_times.append(timestamp(when))
                    synced.set()
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
                job = PollenateAsset(store, FakeFundamentals(), metrics=MetricsRecorder(), clock=clock)
                # Rounds until one that started after the last sync ended: a sync that read a symbol before a
                # move and wrote it after leaves a second item, which the next move of that symbol folds.
                rounds = 0
                while True:
                    final = stop.is_set() and rounds >= 1
                    rounds += 1
                    for result in job.run(SYMBOLS).assets:
                        assert result.ok, result
                        pollenated[result.symbol] = max(
                            pollenated.get(result.symbol, ""), result.last_pollenation or ""
                        )
                    if final:
                        break
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
