"""Batching rules: duplicate resolution, 25 requests / 16 MB per batch, never two requests for one key."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from pollen.adapters.dynamodb.batching import MAX_REQUEST_BYTES, plan_batches, resolve_duplicates


@dataclass
class Rec:
    key: str
    sync: str | None
    tag: str
    size: int = 100


def test_newer_last_sync_date_wins_else_later_input() -> None:
    records = [
        Rec("A", "2026-01-02T00:00:00Z", "a-new"),
        Rec("A", "2026-01-01T00:00:00Z", "a-old"),  # older: loses although later
        Rec("B", "2026-01-01T00:00:00Z", "b-first"),
        Rec("B", "2026-01-01T00:00:00Z", "b-second"),  # equal: the later input wins
        Rec("C", None, "c-first"),
        Rec("C", "2026-01-01T00:00:00Z", "c-second"),  # one missing: the later input wins
        Rec("D", None, "d"),
    ]
    resolved = resolve_duplicates(records, key=lambda r: r.key, version=lambda r: r.sync)
    assert [r.tag for r in resolved.winners] == ["a-new", "b-second", "c-second", "d"]
    assert sorted(r.tag for r in resolved.losers) == ["a-old", "b-first", "c-first"]


def test_resolution_is_deterministic_for_any_input_order_of_distinct_versions() -> None:
    records = [Rec("A", f"2026-01-0{i}T00:00:00Z", str(i)) for i in (3, 1, 5, 2, 4)]
    winner = resolve_duplicates(records, key=lambda r: r.key, version=lambda r: r.sync).winners
    assert [r.tag for r in winner] == ["5"]


@given(st.lists(st.tuples(st.sampled_from("ABCDEFGHIJ"), st.integers(1, 400_000)), max_size=200))
def test_batches_respect_count_bytes_and_unique_keys(spec: list[tuple[str, int]]) -> None:
    requests = [Rec(key, None, str(i), size) for i, (key, size) in enumerate(spec)]
    batches = plan_batches(requests, key=lambda r: r.key, size=lambda r: r.size)
    assert [r for batch in batches for r in batch] == requests  # order kept, nothing lost
    for batch in batches:
        assert 1 <= len(batch) <= 25
        assert len({r.key for r in batch}) == len(batch)
        assert sum(r.size for r in batch) <= MAX_REQUEST_BYTES


def test_large_items_split_by_bytes() -> None:
    requests = [Rec(str(i), None, str(i), 5 * 1024 * 1024) for i in range(7)]
    batches = plan_batches(requests, key=lambda r: r.key, size=lambda r: r.size)
    assert [len(b) for b in batches] == [3, 3, 1]
