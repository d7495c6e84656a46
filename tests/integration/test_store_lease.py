# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""The job lease against the moto server over HTTP: renewal, the heartbeat that keeps a long run exclusive, and a
lease lost to another run. Short TTLs (under two seconds) keep these tests fast."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pollen.adapters.dynamodb.store import DynamoStore
from pollen.errors import LeaseHeld, PermanentError, ThrottledError, TransientError
from pollen.observability import MetricsRecorder
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


def _wait_for(condition: object, timeout_s: float) -> None:
    stop = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < stop:  # type: ignore[operator]
        time.sleep(0.02)


def test_renew_extends_the_lease_and_reports_it_lost_once_another_run_took_it(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    metrics = MetricsRecorder()
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as store,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        lease = store.lease("renewed", ttl_s=0.5, heartbeat=False)
        lease.acquire()
        first = _expires_at(store, "renewed")
        lease.renew(ttl_s=30)
        assert _expires_at(store, "renewed") >= max(first, time.time()) + 29
        time.sleep(0.6)  # past the TTL it was taken with: the renewal keeps a second run out
        with pytest.raises(LeaseHeld, match="already running"):
            other.lease("renewed", ttl_s=30, heartbeat=False).acquire()
        assert metrics.total("LeaseRenewed") == 1

        lease.renew(ttl_s=0.3)
        time.sleep(0.45)  # expired, as if renewals had stopped: another run takes it over
        taker = other.lease("renewed", ttl_s=30, heartbeat=False)
        taker.acquire()
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
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as runner,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        with runner.lease("long", ttl_s=2.0) as lease:  # renewed every 0.67 s
            for _ in range(3):  # 4.2 s in all: over twice the TTL
                time.sleep(1.4)
                with pytest.raises(LeaseHeld, match="already running"):
                    other.lease("long", ttl_s=30, heartbeat=False).acquire()
        assert lease.lost is None and lease.renewals >= 3
        assert metrics.total("LeaseRenewed", job="long") == lease.renewals
        assert not [t for t in threading.enumerate() if t.name == "pollen-lease-long"]
        assert _lease_item(runner, "long") is None
        updates = proxy.requests["UpdateItem"]
        time.sleep(0.8)  # longer than the heartbeat's interval: no renewal after release
        assert proxy.requests["UpdateItem"] == updates
        with other.lease("long", ttl_s=30, heartbeat=False) as again:
            assert again.held


def test_the_heartbeat_notices_a_lease_lost_while_renewals_failed(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    metrics = MetricsRecorder()
    with (
        make_store(proxy.endpoint, tables, tmp_path, metrics=metrics) as runner,
        make_store(proxy.endpoint, tables, tmp_path) as other,
    ):
        proxy.faults = Faults(server_error=1.0, operations=UPDATES_ONLY)
        with runner.lease("fragile", ttl_s=0.6) as lease:
            time.sleep(0.8)  # every renewal failed: the lease expired, and another run takes it over
            taker = other.lease("fragile", ttl_s=30, heartbeat=False)
            taker.acquire()
            proxy.faults = Faults()
            _wait_for(lambda: lease.lost is not None, 5.0)  # the next renewal finds it gone
            assert lease.lost is not None and taker.owner in lease.lost
        assert metrics.total("LeaseRenewFailure", job="fragile") >= 1
        assert metrics.total("LeaseLost", job="fragile") == 1
        assert metrics.total("LeaseRenewed", job="fragile") == 0
        # The run's release left the other run's lease in place.
        assert _lease_item(runner, "fragile")["owner"] == taker.owner  # type: ignore[index]
        taker.release()
