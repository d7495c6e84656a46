"""SyncAssets against the in-memory store and a fake Alpaca."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pollen.deadline import Deadline
from pollen.errors import AuthError, DeadLettersLost, LeaseHeld, ServiceUnavailable
from pollen.jobs.sync_assets import WRITES_IN_FLIGHT, SyncAssets
from pollen.observability import MetricsRecorder
from pollen.tables import NEVER_POLLENATED
from tests import payloads
from tests.fakes import FakeAssetSource, InMemoryStore, transient

DAY1 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def sync(store: InMemoryStore, source: FakeAssetSource, when: datetime = DAY1, **kwargs: object):  # type: ignore[no-untyped-def]
    return SyncAssets(store, source, metrics=MetricsRecorder(), clock=lambda: when).run(**kwargs)  # type: ignore[arg-type]


def market(n: int = 30) -> FakeAssetSource:
    symbols = [f"S{i:03d}" for i in range(n)]
    assets = [payloads.alpaca_asset(s) for s in symbols] + [payloads.crypto_asset()]
    return FakeAssetSource(assets, {s: 1000 * i for i, s in enumerate(symbols)})


def test_first_sync_writes_every_asset_with_never_pollenated_key_volume_and_sync_time() -> None:
    store, source = InMemoryStore(), market()
    report = sync(store, source)
    assert report.ok, report.errors
    assert report.written == 31 and report.new == 31 and report.unchanged == 0
    items = store.items("assets")
    assert len(items) == 31
    s005 = store.by("assets", symbol="S005")[0]
    assert s005["lastPollenationDate"] == NEVER_POLLENATED
    assert s005["volume"] == Decimal(5000)
    assert s005["lastSyncDate"] == "2026-11-02T14:00:00Z"
    assert store.by("assets", symbol="BTC/USD")[0]["volume"] == 0  # unknown volume
    assert report.check["duplicate_symbols"] == 0


def test_second_sync_of_the_same_day_writes_nothing_and_keeps_last_sync_date() -> None:
    store, source = InMemoryStore(), market()
    sync(store, source)
    writes = store.writes["assets"]
    report = sync(store, source, DAY2)
    assert report.ok
    assert report.written == 0 and report.unchanged == 31
    assert store.writes["assets"] == writes
    assert {i["lastSyncDate"] for i in store.items("assets")} == {"2026-11-02T14:00:00Z"}


class UpsertCountingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.upserted: list[int] = []

    def upsert(self, table, items, *, deadline=None, stored=None):  # type: ignore[no-untyped-def]
        items = list(items)
        self.upserted.append(len(items))
        return super().upsert(table, items, deadline=deadline, stored=stored)


def test_only_the_listings_that_changed_are_handed_to_the_upsert() -> None:
    store, source = UpsertCountingStore(), market()
    sync(store, source)
    store.upserted.clear()
    assert sync(store, source, DAY2).unchanged == 31
    assert store.upserted == []  # a same-day re-sync hands nothing to the upsert
    renamed = {**source.assets[3], "name": "Renamed Corp"}
    changed = FakeAssetSource([*source.assets[:3], renamed, *source.assets[4:]], source.volumes)
    report = sync(store, changed, DAY2)
    assert (report.written, report.unchanged) == (1, 30)
    assert store.upserted == [1]


def test_next_day_writes_only_deltas_keeps_sort_keys_and_deactivates_vanished_assets() -> None:
    store, source = InMemoryStore(), market()
    sync(store, source)
    # S001 was pollenated meanwhile: its key moved.
    store.move_sort_key("assets", {"symbol": "S001", "lastPollenationDate": NEVER_POLLENATED}, "2026-11-02T15:00:00Z")
    source.assets = [a for a in source.assets if a["symbol"] != "S002"]  # delisted
    source.assets.append(payloads.alpaca_asset("NEW.B"))  # listed
    source.volumes["S001"] = 777  # changed
    next(a for a in source.assets if a["symbol"] == "S003")["name"] = "Renamed Inc."
    report = sync(store, source, DAY2)
    assert report.ok, report.errors
    assert report.written == 4  # S001 volume, S003 name, NEW.B, S002 inactive
    assert report.new == 1 and report.deactivated == 1
    s001 = store.by("assets", symbol="S001")
    assert len(s001) == 1
    assert s001[0]["lastPollenationDate"] == "2026-11-02T15:00:00Z"
    assert s001[0]["volume"] == 777
    assert s001[0]["lastSyncDate"] == "2026-11-03T14:00:00Z"
    s002 = store.by("assets", symbol="S002")
    assert len(s002) == 1 and s002[0]["status"] == "inactive"
    assert store.by("assets", symbol="S004")[0]["lastSyncDate"] == "2026-11-02T14:00:00Z"
    # The inactive one stays inactive and unchanged on the following day.
    third = sync(store, source, datetime(2026, 11, 4, tzinfo=UTC))
    assert third.written == 0 and third.deactivated == 0


def test_a_reappearing_asset_becomes_active_again_on_its_old_key() -> None:
    store, source = InMemoryStore(), market(3)
    sync(store, source)
    gone = source.assets.pop(0)
    sync(store, source, DAY2)
    assert store.by("assets", symbol=gone["symbol"])[0]["status"] == "inactive"
    source.assets.append(gone)
    sync(store, source, datetime(2026, 11, 4, tzinfo=UTC))
    (item,) = store.by("assets", symbol=gone["symbol"])
    assert item["status"] == "active"


def test_bad_records_are_counted_and_skipped_and_never_deactivate_their_asset() -> None:
    store, source = InMemoryStore(), market(3)
    sync(store, source)
    source.assets[0]["id"] = "not-a-uuid"
    source.assets.append({"symbol": "EVIL\x00", "status": "active"})
    source.assets.append("not an object")
    report = sync(store, source, DAY2)
    assert report.invalid == 3
    assert report.ok
    assert any("S000" in e and "id" in e for e in report.errors)
    assert store.by("assets", symbol="S000")[0]["status"] == "active"  # in the feed, just invalid today
    assert len(store.items("assets")) == 4


def test_a_feed_that_would_deactivate_most_assets_is_not_trusted() -> None:
    store, source = InMemoryStore(), market(10)
    sync(store, source)
    source.assets = source.assets[:2]
    report = sync(store, source, DAY2)
    assert not report.ok
    assert report.deactivated == 0
    assert all(i["status"] == "active" for i in store.items("assets"))


def test_volume_failure_keeps_stored_volumes_and_still_writes_assets() -> None:
    store, source = InMemoryStore(), market(3)
    sync(store, source)
    source.volume_error = transient("data API throttled")
    source.assets.append(payloads.alpaca_asset("ZZZ"))
    report = sync(store, source, DAY2)
    assert report.ok and report.written == 1
    assert store.by("assets", symbol="S002")[0]["volume"] == 2000
    assert store.by("assets", symbol="ZZZ")[0]["volume"] == 0
    assert any("volumes unavailable" in e for e in report.errors)


def test_auth_error_from_the_source_ends_the_run() -> None:
    store, source = InMemoryStore(), market(3)
    source.volume_error = AuthError("Alpaca refused the credentials")
    with pytest.raises(AuthError):
        sync(store, source)


def test_deadline_stops_between_chunks_and_the_next_run_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pollen.jobs.sync_assets.WRITE_CHUNK", 10)
    store, source = InMemoryStore(), market(45)

    class OneChunk(Deadline):
        """Expires once the first chunk is stored."""

        def __init__(self) -> None:
            super().__init__(None)

        def expired(self) -> bool:
            return len(store.tables["assets"]) >= 10

    report = sync(store, source, deadline=OneChunk())
    # The chunks already in flight when it expired finish; no other starts.
    assert not report.complete and report.ok
    assert 10 <= report.written <= 10 * WRITES_IN_FLIGHT
    assert report.remaining == 46 - report.written
    assert len(store.items("assets")) == report.written
    second = sync(store, source)
    assert second.complete and second.written == report.remaining and second.unchanged == report.written
    assert len(store.items("assets")) == 46


def test_chunks_are_written_several_at_once_and_counted_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two upserts wait for each other (one chunk at a time never gets past the first); the report and
    the progress still follow the chunks' order."""
    monkeypatch.setattr("pollen.jobs.sync_assets.WRITE_CHUNK", 10)
    store, source = InMemoryStore(), market(45)
    together = threading.Barrier(2, timeout=10)
    calls = itertools.count()
    upsert = store.upsert
    settled: list[int] = []

    def paired_upsert(*args: Any, **kwargs: Any) -> Any:
        if next(calls) < 2:
            together.wait()
        return upsert(*args, **kwargs)

    store.upsert = paired_upsert  # type: ignore[method-assign]
    report = SyncAssets(
        store, source, metrics=MetricsRecorder(), clock=lambda: DAY1, progress=lambda done, _: settled.append(done)
    ).run()
    assert report.ok and report.written == 46
    assert settled == [10, 20, 30, 40, 46]


def test_a_failing_store_call_is_reported_not_raised_and_an_unreachable_store_ends_the_run() -> None:
    store, source = InMemoryStore(), market(3)
    store.fail_upsert["assets"] = transient()
    report = sync(store, source)
    assert not report.ok and report.failed == 4
    store.fail_upsert["assets"] = ServiceUnavailable("cannot reach DynamoDB")
    with pytest.raises(ServiceUnavailable):
        sync(store, source)
    # Items neither written nor kept as dead letters (SQS refused them in Lambda): the run fails, to be retried.
    store.fail_upsert["assets"] = DeadLettersLost("assets: 4 dead letters could not be sent to SQS")
    with pytest.raises(DeadLettersLost):
        sync(store, source)


def test_lease_held_by_another_run() -> None:
    store, source = InMemoryStore(), market(3)
    with store.lease("sync-assets", 60), pytest.raises(LeaseHeld):
        sync(store, source)


def test_a_lease_lost_during_the_run_makes_the_report_say_so() -> None:
    store, source = InMemoryStore(), market(3)
    store.lose_leases = "lease of job 'sync-assets' lost (now held by host:other)"
    report = sync(store, source)
    assert report.written == 4  # the work itself is done and counted
    assert not report.ok
    assert any("lease of job 'sync-assets' lost" in e for e in report.errors)


def test_the_check_after_writing_folds_duplicates_left_by_a_race() -> None:
    store, source = InMemoryStore(), market(3)
    sync(store, source)
    item = store.by("assets", symbol="S001")[0]
    store.put_raw(
        "assets", {**item, "lastPollenationDate": "2026-11-01T00:00:00Z", "lastSyncDate": "2026-11-01T00:00:00Z"}
    )
    store.put_raw("assets", {**store.by("assets", symbol="S002")[0], "volume": None})
    del store.tables["assets"][("S002", NEVER_POLLENATED)]["volume"]
    source.volumes["S001"] = 5
    report = sync(store, source, DAY2)
    assert report.check["duplicate_symbols"] == 1
    assert report.check["repaired"] >= 1
    (s001,) = store.by("assets", symbol="S001")
    assert s001["lastPollenationDate"] == "2026-11-01T00:00:00Z"  # the newest key stays
    assert s001["volume"] == 5  # with the content synced last
    assert store.by("assets", symbol="S002")[0]["volume"] == 2000  # the sync itself restored it


def test_metrics_are_recorded() -> None:
    metrics = MetricsRecorder()
    store, source = InMemoryStore(), market(3)
    SyncAssets(store, source, metrics=metrics, clock=lambda: DAY1).run()
    assert metrics.total("AssetsWritten", job="SyncAssets") == 4
    assert metrics.total("AssetsFetched") == 4
    assert metrics.samples("SyncDuration")
