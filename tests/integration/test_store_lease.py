# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""The job lease against the moto server over HTTP: renewal, the heartbeat that keeps a long run exclusive, and a
lease lost to another run. The leases run on a manual clock (tests/clocks.py): nothing waits for a TTL or a heartbeat."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pollen.adapters.dynamodb.store import DynamoStore
from pollen.errors import LeaseHeld, PermanentError, ThrottledError, TransientError
from pollen.observability import MetricsRecorder
from tests.clocks import ManualClock
from tests.integration.store_support import make_store, proxy, store, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration

UPDATES_ONLY = frozenset({"UpdateItem"})


def _lease_item(store: DynamoStore, job: str) -> dict[str, object] | None:
    return store.get("pollenControl", {"pk": f"lease#{job}", "sk": "lease"})


def _expires_at(store: DynamoStore, job: str) -> float:
    item = _lease_item(store, job)
    assert item is not None
    return float(item["expiresAt"])  # type: ignore[arg-type]


def test_renew_extends_the_lease_and_reports_it_lost_once_another_run_took_it(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    metrics = MetricsRecorder()
    clock = ManualClock()
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        lease = store.lease("renewed", ttl_s=30, heartbeat=False, clock=clock)
        lease.acquire()
        assert _expires_at(store, "renewed") == clock() + 30
        clock.advance(10)
        lease.renew(ttl_s=120)
        assert _expires_at(store, "renewed") == clock() + 120
        clock.advance(60)  # past the TTL it was taken with: the renewal keeps a second run out
        with pytest.raises(LeaseHeld, match="already running"):
            other.lease("renewed", ttl_s=30, heartbeat=False, clock=clock).acquire()
        assert metrics.total("LeaseRenewed") == 1

        lease.renew(ttl_s=10)
        clock.advance(11)  # expired, as if renewals had stopped: another run takes it over
        taker = other.lease("renewed", ttl_s=30, heartbeat=False, clock=clock)
        taker.acquire()
        assert taker.taken_over is None  # simply expired
        with pytest.raises(LeaseHeld) as caught:
            lease.renew()
        assert caught.value.code == "LeaseLost"
        assert lease.lost is not None and taker.owner in lease.lost and not lease.held
        assert metrics.total("LeaseLost") == 1
        with pytest.raises(LeaseHeld):  # and it stays lost
            lease.renew()
        lease.release()  # leaves the other run's lease alone
        assert _lease_item(store, "renewed")["owner"] == taker.owner  # type: ignore[index]
        taker.release()
        assert _lease_item(store, "renewed") is None
        with pytest.raises(PermanentError, match="not held"):
            taker.renew()


def test_a_failing_renewal_is_translated_and_keeps_the_lease(store: DynamoStore, proxy: FaultProxy) -> None:
    lease = store.lease("flaky", ttl_s=30, heartbeat=False)
    lease.acquire()
    proxy.faults = Faults(server_error=1.0, operations=UPDATES_ONLY)
    with pytest.raises(TransientError, match="renew lease flaky: InternalServerError") as failed:
        lease.renew()
    assert failed.value.transient
    proxy.faults = Faults(throttle=1.0, operations=UPDATES_ONLY)
    with pytest.raises(ThrottledError, match="ProvisionedThroughputExceeded"):
        lease.renew()
    proxy.faults = Faults(reset=1.0, operations=UPDATES_ONLY)
    with pytest.raises(TransientError) as reset:
        lease.renew()
    assert reset.value.transient
    assert (lease.held, lease.lost) == (True, None)
    proxy.faults = Faults()
    lease.renew()
    lease.release()
    assert _lease_item(store, "flaky") is None


def test_the_heartbeat_keeps_a_run_longer_than_its_ttl_exclusive_and_stops_at_release(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    metrics = MetricsRecorder()
    clock = ManualClock()
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as runner,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        with runner.lease("long", ttl_s=30, clock=clock, wait=clock.wait) as lease:  # renewed every 10 s
            clock.settle()  # the heartbeat is waiting for its first renewal
            for beat in range(1, 4):  # 45 s in all: half as long again as the TTL
                clock.advance(15)
                clock.settle()
                assert lease.renewals == beat
                assert _expires_at(runner, "long") == clock() + 30
                with pytest.raises(LeaseHeld, match="already running"):
                    other.lease("long", ttl_s=30, heartbeat=False, clock=clock).acquire()
        assert lease.lost is None and lease.renewals == 3
        assert metrics.total("LeaseRenewed", job="long") == 3
        assert not [t for t in threading.enumerate() if t.name == "pollen-lease-long"]
        assert _lease_item(runner, "long") is None
        updates = proxy.requests["UpdateItem"]
        clock.advance(60)  # past several of the heartbeat's intervals: no renewal after release
        clock.settle(paused=0)
        assert proxy.requests["UpdateItem"] == updates
        with other.lease("long", ttl_s=30, heartbeat=False, clock=clock) as again:
            assert again.held


def test_the_heartbeat_notices_a_lease_lost_while_renewals_failed(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    metrics = MetricsRecorder()
    clock = ManualClock()
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as runner,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        proxy.faults = Faults(server_error=1.0, operations=UPDATES_ONLY)
        with runner.lease("fragile", ttl_s=30, clock=clock, wait=clock.wait) as lease:
            clock.settle()
            clock.advance(10)  # the first renewal fails (its retries run out): the next comes sooner, at 12.5 s
            clock.settle()
            assert metrics.total("LeaseRenewFailure", job="fragile") == 1
            clock.advance(21)  # the second one fails too, and the lease (taken at 0 for 30 s) expires
            clock.settle()
            assert metrics.total("LeaseRenewFailure", job="fragile") == 2
            taker = other.lease("fragile", ttl_s=30, heartbeat=False, clock=clock)
            taker.acquire()
            proxy.faults = Faults()
            clock.advance(10)  # the next renewal gets through and finds the lease taken: the heartbeat ends
            clock.settle(paused=0)
            assert lease.lost is not None and taker.owner in lease.lost
        assert metrics.total("LeaseLost", job="fragile") == 1
        assert metrics.total("LeaseRenewed", job="fragile") == 0
        # The run's release left the other run's lease in place.
        assert _lease_item(runner, "fragile")["owner"] == taker.owner  # type: ignore[index]
        taker.release()
