"""A symbol listed more than once in Alpaca's feed: the listing kept depends on content only, never on feed order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pollen.jobs.sync_assets import SyncAssets
from pollen.observability import MetricsRecorder
from tests import payloads
from tests.fakes import FakeAssetSource, InMemoryStore

DAY1 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def _sync(store: InMemoryStore, feed: list[dict[str, Any]], when: datetime) -> Any:
    source = FakeAssetSource(feed, {a["symbol"]: 100 for a in feed})
    return SyncAssets(store, source, metrics=MetricsRecorder(), clock=lambda: when).run()


def _listing(symbol: str, n: int, status: str, tradable: bool | None, name: str) -> dict[str, Any]:
    listing = payloads.alpaca_asset(
        symbol, id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{symbol}/{n % 3}")), status=status, name=name
    )
    if tradable is None:
        del listing["tradable"]
    else:
        listing["tradable"] = tradable
    return listing


listings = st.builds(
    _listing,
    st.sampled_from(["AAA", "BBB", "CCC"]),
    st.integers(0, 5),
    st.sampled_from(["active", "inactive"]),
    st.sampled_from([True, False, None]),
    st.sampled_from(["Old Name Inc.", "New Name Inc."]),
)


def _assets(store: InMemoryStore) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "lastSyncDate"} for item in store.items("assets")]


def test_active_and_tradable_listings_win_whatever_their_position() -> None:
    inactive = _listing("AAA", 2, "inactive", True, "Gone Inc.")
    untradable = _listing("AAA", 1, "active", False, "Halted Inc.")
    keeper = _listing("AAA", 0, "active", True, "Live Inc.")
    for feed in ([inactive, untradable, keeper], [keeper, untradable, inactive], [untradable, keeper, inactive]):
        store = InMemoryStore()
        report = _sync(store, feed, DAY1)
        assert report.duplicates == 2
        (item,) = store.items("assets")
        assert (item["name"], item["id"]) == ("Live Inc.", keeper["id"])


@settings(max_examples=60, deadline=None)
@given(feed=st.lists(listings, min_size=1, max_size=8), data=st.data())
def test_the_same_feed_in_any_order_keeps_the_same_items_and_a_second_run_writes_nothing(
    feed: list[dict[str, Any]], data: st.DataObject
) -> None:
    store = InMemoryStore()
    assert _sync(store, feed, DAY1).ok
    first = _assets(store)
    for reordered in (list(reversed(feed)), data.draw(st.permutations(feed), label="shuffled")):
        again = _sync(store, reordered, DAY2)
        assert again.written == 0, again.errors
        assert _assets(store) == first
        fresh = InMemoryStore()
        _sync(fresh, reordered, DAY1)
        assert _assets(fresh) == first
