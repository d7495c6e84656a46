"""How the jobs use their leases: short TTLs whatever the deadline, ``check --repair`` under the sync's lease,
``force`` passed through, and what the lease went through in the report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from pollen.adapters.dynamodb.lease import MAX_LEASE_TTL_S
from pollen.deadline import Deadline
from pollen.errors import LeaseHeld
from pollen.jobs.check import ConsistencyCheck
from pollen.jobs.sync_assets import SyncAssets
from pollen.jobs.sync_earnings import SyncEarningsCalendar
from pollen.observability import MetricsRecorder
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals, FakeLease, InMemoryStore

NOW = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


class RecordingStore(InMemoryStore):
    """Records the TTL and ``force`` of every lease taken."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[tuple[str, float, bool]] = []

    @contextmanager
    def lease(self, job: str, ttl_s: float = 120.0, *, force: bool = False) -> Iterator[FakeLease]:
        self.taken.append((job, ttl_s, force))
        with super().lease(job, ttl_s, force=force) as held:
            yield held


def _assets() -> FakeAssetSource:
    return FakeAssetSource([payloads.alpaca_asset("AAA")], {"AAA": 1})


@pytest.mark.parametrize("deadline", [Deadline.never(), Deadline.after(14 * 60)])
def test_sync_leases_last_minutes_whatever_the_deadline(deadline: Deadline) -> None:
    store = RecordingStore()
    SyncAssets(store, _assets(), metrics=MetricsRecorder(), clock=lambda: NOW).run(deadline)
    SyncEarningsCalendar(store, FakeFundamentals(), metrics=MetricsRecorder(), clock=lambda: NOW).run(
        "3month", deadline
    )
    assert [job for job, _, _ in store.taken] == ["sync-assets", "sync-earnings"]
    assert all(ttl <= MAX_LEASE_TTL_S for _, ttl, _ in store.taken)


def test_check_repair_holds_the_sync_lease_and_a_plain_check_takes_none() -> None:
    store = RecordingStore()
    with store.lease("sync-assets"), pytest.raises(LeaseHeld):
        ConsistencyCheck(store, metrics=MetricsRecorder(), clock=lambda: NOW).run(repair=True)
    assert ConsistencyCheck(store, metrics=MetricsRecorder(), clock=lambda: NOW).run(repair=False).ok
    assert [job for job, _, _ in store.taken] == ["sync-assets", "sync-assets"]  # the test's, the repair's
    assert ConsistencyCheck(store, metrics=MetricsRecorder(), clock=lambda: NOW).run(repair=True).ok


def test_force_is_passed_to_the_lease_and_its_takeover_reported() -> None:
    store = RecordingStore()
    with store.lease("sync-assets"):
        report: Any = SyncAssets(store, _assets(), metrics=MetricsRecorder(), clock=lambda: NOW, force_lease=True).run()
        check: Any = ConsistencyCheck(store, metrics=MetricsRecorder(), force_lease=True).run(repair=True)
    assert report.ok and report.written == 1
    assert [force for _, _, force in store.taken] == [False, True, True]
    assert report.lease_notes and report.lease_notes[0].startswith("forced")
    assert check.ok
