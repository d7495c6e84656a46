"""motopatch's ``ordering`` part under concurrent requests: the segments of a parallel Scan ask for the table's order
at the same moment, on the server's threads, and the table is sorted once for all of them."""

from __future__ import annotations

import threading
import time
from typing import Any

import moto
import pytest
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
