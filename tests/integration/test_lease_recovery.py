# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""Job leases against the moto server over HTTP: a dead holder's lease taken over at once, ``force``, holders on
other hosts left to their TTL, and every lease call through the retry policy (faults aimed at one call by a proxy
that fails exactly the first requests of an operation). Clocks are injected; nothing waits for a TTL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pollen.adapters.dynamodb.holder import Holder, boot_id, process_start
from pollen.adapters.dynamodb.lease import LEASE_TTL_S, MAX_LEASE_TTL_S, JobLease
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.errors import LeaseHeld
from pollen.observability import MetricsRecorder
from pollen.report import JobReport, note_lease
from tests.integration.store_support import make_store, proxy, store, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class FirstRequestsFail(FaultProxy):
    """Fails the first ``count`` requests of each operation in ``plan`` in the given way: "throttle", "500",
    "reset" (before the request reaches the server) or "lost" (applied by the server, then the answer is lost)."""

    def __init__(self, upstream: str, plan: dict[str, tuple[str, int]]) -> None:
        super().__init__(upstream)
        self.plan = plan
        self.seen: Counter[str] = Counter()

    def handle(self, operation: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        how, count = self.plan.get(operation, ("", 0))
        self.seen[operation] += 1
        if self.seen[operation] > count:
            return super().handle(operation, body, headers)
        if how == "throttle":
            return 400, b'{"__type": "ProvisionedThroughputExceededException", "message": "slow down"}'
        if how == "500":
            return 500, b'{"__type": "InternalServerError", "message": "oops"}'
        if how == "lost":
            super().handle(operation, body, headers)
        return None


def _item(store: DynamoStore, job: str) -> dict[str, object] | None:
    return store.get("pollenControl", {"pk": f"lease#{job}", "sk": "lease"})


def _held_by_killed_process(endpoint: str, prefix: str, home: Path, job: str) -> int:
    """A child process takes the lease, then is killed with SIGKILL (no release): returns its pid."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.integration.store_support import make_store\n"
        f"store = make_store({endpoint!r}, {prefix!r}, Path({str(home)!r}))\n"
        f"store.lease({job!r}).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return child.pid


def test_a_dead_holder_on_this_host_is_taken_over_at_once_and_the_report_says_so(
    store: DynamoStore, proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    pid = _held_by_killed_process(proxy.endpoint, tables, tmp_path, "load:earnings")
    stored = _item(store, "load:earnings")
    assert stored is not None and stored["pid"] == pid and stored["host"] == socket.gethostname()

    with store.lease("load:earnings") as lease:  # at once: the TTL (two minutes) is far from over
        assert lease.held and lease.taken_over is not None
        assert f"dead run (process {pid} on {socket.gethostname()}" in lease.taken_over
        assert _item(store, "load:earnings")["owner"] == lease.owner  # type: ignore[index]
    report = JobReport(job="load")
    note_lease(report, lease)
    assert report.ok and report.lease_notes == [lease.taken_over]
    assert store.metrics.total("LeaseTakenOver", job="load:earnings") == 1
    assert _item(store, "load:earnings") is None


def test_a_live_holder_is_refused_with_its_process_named_and_force_takes_over_with_a_warning(
    store: DynamoStore, proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    with make_store(proxy.endpoint, tables, tmp_path) as other:
        first = store.lease("sync-assets", heartbeat=False)
        first.acquire()  # this very process: alive
        with pytest.raises(LeaseHeld, match=rf"process {os.getpid()} on .*--force"):
            other.lease("sync-assets", heartbeat=False).acquire()
        with other.lease("sync-assets", heartbeat=False, force=True) as forced:
            assert forced.taken_over is not None and forced.taken_over.startswith("forced")
            with pytest.raises(LeaseHeld) as lost:
                first.renew()
            assert lost.value.code == "LeaseLost"
        assert other.metrics.total("LeaseTakenOver", job="sync-assets") == 1


def test_a_holder_on_another_host_expires_by_ttl_only(store: DynamoStore) -> None:
    now = 1_900_000_000.0
    elsewhere = Holder("another-host", "another-boot", 4_000_000, 1)  # such a pid is not running here either
    JobLease(store, "sync-assets", clock=lambda: now, holder=elsewhere, heartbeat=False).acquire()
    with pytest.raises(LeaseHeld, match="another-host"):
        store.lease("sync-assets", clock=lambda: now + LEASE_TTL_S - 1).acquire()
    late = store.lease("sync-assets", clock=lambda: now + LEASE_TTL_S + 1, heartbeat=False)
    late.acquire()
    assert late.taken_over is None  # simply expired
    late.release()


def test_a_reused_pid_is_a_dead_holder() -> None:
    here = Holder.current()
    assert here.started == process_start(os.getpid()) and here.boot == boot_id()
    assert not here.is_dead()
    assert Holder(here.host, here.boot, here.pid, here.started + 1).is_dead()  # same pid, a later process
    assert not Holder("another-host", here.boot, 4_000_000, 1).is_dead()


def test_lease_ttls_are_bounded_to_minutes(store: DynamoStore) -> None:
    now = 1_900_000_000.0
    lease = store.lease("bounded", ttl_s=960.0, clock=lambda: now, heartbeat=False)
    lease.acquire()
    assert float(_item(store, "bounded")["expiresAt"]) == now + MAX_LEASE_TTL_S  # type: ignore[arg-type]
    lease.release()
    with store.lease("default", clock=lambda: now, heartbeat=False):
        assert float(_item(store, "default")["expiresAt"]) == now + LEASE_TTL_S  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["throttle", "500", "reset", "lost"])
def test_one_fault_on_acquire_or_release_is_retried(endpoint: str, tables: str, tmp_path: Path, how: str) -> None:
    plan = {"PutItem": (how, 1), "DeleteItem": (how, 1)}
    metrics = MetricsRecorder()
    with (
        FirstRequestsFail(endpoint, plan) as failing,
        make_store(failing.endpoint, tables, tmp_path, metrics=metrics) as s,
    ):
        with s.lease("load:earnings", heartbeat=False) as lease:
            assert lease.held
        assert (lease.lost, lease.release_error, lease.notes) == (None, None, [])
        assert _item(s, "load:earnings") is None
        assert failing.seen["PutItem"] == 2 and failing.seen["DeleteItem"] == 2
        if how in ("reset", "lost"):
            # The lean transport sends a request dropped on a kept-alive connection once more, uncounted.
            assert 0 <= metrics.total("DynamoRetries") <= 2
        else:
            assert metrics.total("DynamoRetries") == 2
        with s.lease("load:earnings", heartbeat=False):  # free again at once
            pass


def test_a_renewal_is_retried(endpoint: str, tables: str, tmp_path: Path) -> None:
    with (
        FirstRequestsFail(endpoint, {"UpdateItem": ("500", 2)}) as failing,
        make_store(failing.endpoint, tables, tmp_path) as s,
    ):
        now = 1_900_000_000.0
        lease = s.lease("renewed", clock=lambda: now, heartbeat=False)
        lease.acquire()
        now += 100
        lease.renew()
        assert float(_item(s, "renewed")["expiresAt"]) == now + LEASE_TTL_S  # type: ignore[arg-type]
        assert failing.seen["UpdateItem"] == 3 and lease.renewals == 1
        lease.release()


def test_a_release_that_keeps_failing_is_reported(endpoint: str, tables: str, tmp_path: Path) -> None:
    metrics = MetricsRecorder()
    with (
        FirstRequestsFail(endpoint, {"DeleteItem": ("500", 1000)}) as failing,
        make_store(failing.endpoint, tables, tmp_path, metrics=metrics) as s,
    ):
        with s.lease("load:earnings", heartbeat=False) as lease:
            pass
        assert lease.release_error is not None and "expires by itself" in lease.release_error
        report = JobReport(job="load")
        note_lease(report, lease)
        assert report.lease_notes == [lease.release_error] and report.ok  # the load itself succeeded
        assert metrics.total("LeaseReleaseFailure", job="load:earnings") == 1
        assert failing.seen["DeleteItem"] > 1  # retried before giving up
