"""Later pages of a Query or Scan pass over the earlier ones cheaply; a segment's items are hashed once per key.

What moto does: a Query or Scan with ``ExclusiveStartKey`` walks its sorted items from the first and skips each one
that ``Table._item_comes_before_dct`` places at or before the start key. For every skipped item that method
recomputes the attributes to sort by and builds ``DynamoType(start_key[attr])`` anew (twice when the values
differ), then compares through ``cast_value`` (a new ``Decimal`` per number, per side, per comparison): page k of a
read pays k pages of that. A segmented Scan tests every item of the table, on every page of every segment, with
``Item.is_within_segment``: an MD5 of the item's hash key.

What the patch does:

- ``_item_comes_before_dct``: the attributes to sort by and the start key's ``DynamoType`` values are computed once
  per start-key dict during one Query or Scan (on this thread) and reused for every item; a string (``S`` holding a
  ``str``) or number (``N``) compared with a value of the same tag is compared on its native value (the ``str``, or
  one ``Decimal``). Anything else compares through the ``DynamoType`` operators, as moto does. A start key without
  one of the attributes (or a value ``DynamoType`` cannot take) makes moto's own method run, to raise what it
  raises.
- ``Item.is_within_segment``: the first byte of the hash key's MD5 is remembered per hash-key string.

Why it is equivalent: ``DynamoType`` construction is deterministic and its comparisons read both sides without
changing them, so one converted start value compares as the fresh ones do; the start key is the request's own dict,
not changed while the read runs, and it is held (not only its identity) for that read. ``__ne__`` is "tags differ or
``cast_value`` differs" and ``__lt__`` compares ``cast_value``: with equal tags ``S`` (a ``str``) or ``N``, the
``cast_value`` is the string or ``Decimal(value)``, which is what the native path compares. The MD5 of a string is
a function of the string.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.utilities.utils import md5_hash

_original_comes_before: Callable[..., bool] = Table._item_comes_before_dct
_original_is_within_segment: Callable[..., bool] = Item.is_within_segment
_original_query: Callable[..., Any] = Table.query
_original_scan: Callable[..., Any] = Table.scan

#: The start key converted for the read running on this thread: (start-key dict, hash attrs, range attrs, converted).
_start_keys = threading.local()
_MISSING = object()

#: The first MD5 byte of hash-key strings seen in segmented Scans (bounded: cleared when it grows past the limit).
_segment_bytes: dict[str, int] = {}
SEGMENT_MEMO_LIMIT = 1_000_000


class _StartValue:
    """One attribute of the start key: its ``DynamoType`` and, for a string or number, the native value."""

    __slots__ = ("native", "tag", "value")

    def __init__(self, value: DynamoType) -> None:
        self.value = value
        self.tag: str | None = None
        self.native: Any = None
        if value.type == "S" and type(value.value) is str:
            self.tag, self.native = "S", value.value
        elif value.type == "N" and type(value.value) is str:
            try:
                self.native = Decimal(value.value)
            except ArithmeticError:
                return
            self.tag = "N"


def _converted_start(
    table: Any, dct: dict[str, Any], hash_key_attrs: list[str], range_key_attrs: list[str | None]
) -> list[tuple[str, Any]]:
    """The attributes to sort by, each with its converted start value (or _MISSING), remembered for this read."""
    memo = getattr(_start_keys, "value", None)
    hash_attrs, range_attrs = tuple(hash_key_attrs), tuple(range_key_attrs)
    if memo is not None and memo[0] is dct and memo[1] == hash_attrs and memo[2] == range_attrs:
        converted: list[tuple[str, Any]] = memo[3]
        return converted
    converted = []
    for attr in table._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs):
        start: Any = _MISSING
        if attr in dct:
            try:
                start = _StartValue(DynamoType(dct[attr]))
            except Exception:  # moto's own method raises it again
                start = _MISSING
        converted.append((attr, start))
    if getattr(_start_keys, "active", False):
        _start_keys.value = (dct, hash_attrs, range_attrs, converted)
    return converted


def item_comes_before_dct(
    self: Any,
    item: Any,
    dct: dict[str, Any],
    hash_key_attrs: list[str],
    range_key_attrs: list[str | None],
    scan_index_forward: bool,
) -> bool:
    """moto's ``Table._item_comes_before_dct`` with the start key converted once."""
    attrs = item.attrs
    for attr, start in _converted_start(self, dct, hash_key_attrs, range_key_attrs):
        if attr not in attrs:
            continue
        if start is _MISSING:
            return _original_comes_before(self, item, dct, hash_key_attrs, range_key_attrs, scan_index_forward)
        value = attrs[attr]
        tag = start.tag
        if tag is not None and value.type == tag and type(value.value) is str:
            native = value.value if tag == "S" else Decimal(value.value)
            if native != start.native:
                return bool((native < start.native) == scan_index_forward)
            continue
        if value != start.value:
            return (value < start.value) == scan_index_forward  # type: ignore[no-any-return]
    return True


def is_within_segment(self: Any, segments: Any) -> Any:
    """moto's ``Item.is_within_segment`` with the hash key's first MD5 byte remembered."""
    if segments == (None, None):
        return True
    key = self.hash_key.value
    if type(key) is not str:
        return _original_is_within_segment(self, segments)
    item_hash = _segment_bytes.get(key)
    if item_hash is None:
        if len(_segment_bytes) >= SEGMENT_MEMO_LIMIT:
            _segment_bytes.clear()
        item_hash = _segment_bytes[key] = md5_hash(key.encode("utf8")).digest()[0]
    segment, total_segments = segments
    return segment == item_hash % total_segments


def _start_key_remembered(read: Callable[..., Any]) -> Callable[..., Any]:
    def paged_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = (getattr(_start_keys, "active", False), getattr(_start_keys, "value", None))
        _start_keys.active, _start_keys.value = True, None
        try:
            return read(self, *args, **kwargs)
        finally:
            _start_keys.active, _start_keys.value = outer

    return paged_read


def apply() -> None:
    Table._item_comes_before_dct = item_comes_before_dct  # type: ignore[method-assign]
    Item.is_within_segment = is_within_segment  # type: ignore[method-assign]
    Table.query = _start_key_remembered(Table.query)  # type: ignore[method-assign]
    Table.scan = _start_key_remembered(Table.scan)  # type: ignore[method-assign]
