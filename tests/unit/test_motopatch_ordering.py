"""motopatch's ``ordering`` part under concurrent requests: the segments of a parallel Scan ask for the table's order
at the same moment, on the server's threads, and the table is sorted once for all of them."""

from __future__ import annotations

import threading
import time
from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.table import Table

from pollen.local import motopatch
from pollen.local.motopatch import ordering

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

SEGMENTS = 4


def _table(size: int) -> Table:
    table = Table(
        "assets",
        account_id="123456789012",
        region="us-east-1",
        schema=[{"AttributeName": "symbol", "KeyType": "HASH"}, {"AttributeName": "d", "KeyType": "RANGE"}],
        attr=[{"AttributeName": "symbol", "AttributeType": "S"}, {"AttributeName": "d", "AttributeType": "S"}],
    )
    for n in range(size):
        table.put_item({"symbol": {"S": f"S{(n * 7919) % size:05d}"}, "d": {"S": f"2026-01-{n % 28 + 1:02d}"}})
    return table


def test_concurrent_segments_sort_the_table_once(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(300)
    sorts: list[int] = []
    real_order = ordering.native_order

    def counted_order(items: Any, key_values: Any) -> Any:
        sorts.append(len(items))
        time.sleep(0.05)  # a large table's sort: long enough for every segment to ask meanwhile
        return real_order(items, key_values)

    monkeypatch.setattr(ordering, "native_order", counted_order)
    start = threading.Barrier(SEGMENTS)
    orders: list[list[Any]] = []

    def segment() -> None:
        start.wait()
        orders.append(ordering.all_items(table))

    threads = [threading.Thread(target=segment) for _ in range(SEGMENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorts == [300]
    expected = ordering._original_all_items(table)
    assert len(orders) == SEGMENTS
    assert all(order == expected for order in orders)  # each got moto's order, in a list of its own
    assert len({id(order) for order in orders}) == SEGMENTS


def test_a_write_between_scans_sorts_again() -> None:
    table = _table(50)
    first = ordering.all_items(table)
    table.put_item({"symbol": {"S": "A0000"}, "d": {"S": "2026-02-01"}})
    second = ordering.all_items(table)
    assert len(second) == len(first) + 1
    assert second == ordering._original_all_items(table)


def _number_table(hash_keys: list[str]) -> Table:
    table = Table(
        "numbers",
        account_id="123456789012",
        region="us-east-1",
        schema=[{"AttributeName": "n", "KeyType": "HASH"}],
        attr=[{"AttributeName": "n", "AttributeType": "N"}],
    )
    for key in hash_keys:
        table.put_item({"n": {"N": key}, "v": {"S": key}})
    return table


def _walk(table: Table, segments: Any, limit: int, *, patched: bool, delete_page_ends: bool) -> list[Any]:
    """Every page of a Scan as (keys, scanned count, last key), each page starting from the one before's last key
    as a request sends it; ``delete_page_ends`` deletes each page's last item before the next page is read."""
    pages: list[Any] = []
    start: dict[str, Any] | None = None
    saved = Table.all_items
    Table.all_items = ordering.all_items if patched else ordering._original_all_items  # type: ignore[method-assign]
    try:
        while True:
            read = ordering.scan if patched else ordering._original_scan
            results, scanned, last = read(table, {}, limit, start, segments=segments)
            pages.append(
                ([i.hash_key.value for i in results], scanned, last and {k: v.to_json() for k, v in last.items()})
            )
            if not last:
                return pages
            start = {k: v.to_json() for k, v in last.items()}
            if delete_page_ends:
                table.delete_item(
                    last[table.hash_key_attr], last.get(table.range_key_attr) if table.range_key_attr else None
                )
    finally:
        Table.all_items = saved  # type: ignore[method-assign]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 60),
    total=st.integers(1, 4),
    limit=st.integers(1, 9),
    delete_page_ends=st.booleans(),
    data=st.data(),
)
def test_scan_pages_from_the_kept_segment_order_match_moto(
    size: int, total: int, limit: int, delete_page_ends: bool, data: st.DataObject
) -> None:
    """Each page of a segmented (or whole) Scan walks only its segment, from just after the start key: the same
    items, counts and last keys as moto's walk of the whole table, also when the start key's item was deleted in
    between (then moto's walk finds the place) and for number keys spelled alike."""
    segment = data.draw(st.none() | st.integers(0, total - 1))
    segments: Any = (None, None) if segment is None else (segment, total)
    if data.draw(st.booleans()):
        keys = data.draw(st.lists(st.from_regex(r"-?[1-9][0-9]{0,2}(\.[0-9]{1,2})?", fullmatch=True), max_size=size))
        stock, patched = _number_table(keys), _number_table(keys)
    else:
        stock, patched = _table(size), _table(size)
    expected = _walk(stock, segments, limit, patched=False, delete_page_ends=delete_page_ends)
    assert _walk(patched, segments, limit, patched=True, delete_page_ends=delete_page_ends) == expected


def test_a_later_page_walks_only_what_follows_its_start_key(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(200)
    walked: list[int] = []
    real_scan = ordering._original_scan

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        walked.append(len(self.all_items()))
        return real_scan(self, *args, **kwargs)

    monkeypatch.setattr(ordering, "_original_scan", counted)
    monkeypatch.setattr(Table, "all_items", ordering.all_items)
    first, _, last = ordering.scan(table, {}, 10, None, segments=(1, 4))
    start = {k: v.to_json() for k, v in last.items()}
    second, _, _ = ordering.scan(table, {}, 10, start, segments=(1, 4))
    members = [i for i in ordering._original_all_items(table) if i.is_within_segment((1, 4))]
    assert walked == [len(members), len(members) - 10]
    assert [*first, *second] == members[:20]
