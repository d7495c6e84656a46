"""An item's size is summed once while it is built, not again for every attribute added.

What moto does: ``Item.__init__`` adds the attributes one by one to a ``LimitedSizeDict``, whose ``__setitem__``
re-sums the size of every attribute already present to enforce DynamoDB's 400 KB item limit: quadratic in the number
of attributes, on every put and on every item an update creates.

What the patch does: ``Item.__init__`` keeps a running total of the same sizes and raises the same
``ItemSizeTooLarge`` at the same attribute, storing each attribute with ``dict.__setitem__``.

Why it is equivalent: while ``__init__`` runs nothing else touches the new dict, so the running total after k
attributes equals the sum ``LimitedSizeDict`` recomputes (``bytesize(name) + value.size()`` per attribute), and the
check compares the same numbers against the same limit. Later changes still go through ``LimitedSizeDict``. Any
attribute name that is not a ``str`` (which moto would size as ``str(name)`` in one place and as itself in the other)
makes moto's own ``__init__`` build the item.

Each attribute given as a one-entry dict of a tag other than ``L`` and ``M`` is made into its ``DynamoType`` by
setting ``type`` and ``value`` directly: for such a dict ``DynamoType.__init__`` takes the one key as the type and
its value as the value and converts nothing further (only lists and maps get their elements wrapped).

``DynamoType.size`` of a string (``S`` holding a ``str``), a number (``N``), a boolean (``BOOL`` or ``NULL`` holding
a ``bool``) or a list (``L`` holding a list of ``DynamoType``) is computed directly: moto's method tests number, set,
list, map and ``bool`` in turn and then returns ``len(str(value))`` for a number, the sum of the elements'
``size()`` for a list, 1 for a ``bool`` and ``bytesize(value)`` (the UTF-8 length of a ``str``) for a string; the
direct branch returns the same (a list's elements sized by this same function, which is their ``size()``). Every
other value goes to moto's method. ``Item.size`` (moto: ``sum(bytesize(name) + value.size() ...)``) sums the same
terms in one loop, with the same direct branches (an ASCII ``str`` is as many UTF-8 bytes as characters; an ASCII name's
size, its length, is remembered, bounded).

``Table.scan`` and ``Table.query`` size every item they read twice (the 1 MB page limit, then the page's running
size): while one runs (on this thread), ``Item.size`` is remembered per item object for the rest of that call. The
read itself changes no stored item, so the second size equals the first (a write racing the read on another thread
races in stock moto as well); the memo keeps each item it sized alive, so an identity cannot be reused within the
call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize

#: The limit ``LimitedSizeDict.__setitem__`` enforces (moto 5.2.5).
ITEM_SIZE_LIMIT = 405000

_original_init: Callable[..., None] = Item.__init__
_original_size: Callable[..., int] = DynamoType.size
_original_item_size: Callable[..., int] = Item.size
_read_sizes = threading.local()


def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's ``Item.__init__`` with a running size."""
    if any(type(name) is not str for name in attrs):
        _original_init(self, hash_key, range_key, attrs)
        return
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    size = 0
    for name, value in attrs.items():
        attribute = _dynamo_type(value)
        attribute_size = _attribute_bytes(name, attribute)
        if size + attribute_size > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self.attrs, name, attribute)
        size += attribute_size


def _dynamo_type(value: Any) -> Any:
    """``DynamoType(value)``; a one-entry dict of a scalar tag is set directly (what ``__init__`` does for it)."""
    if type(value) is dict and len(value) == 1:
        tag, raw = next(iter(value.items()))
        if tag != "L" and tag != "M":
            attribute = DynamoType.__new__(DynamoType)
            attribute.type = tag
            attribute.value = raw
            return attribute
    return DynamoType(value)


def _attribute_bytes(name: Any, value: Any) -> int:
    """``bytesize(name) + value.size()``, directly for a ``str`` name."""
    size = bytesize(name) if type(name) is not str else len(name) if name.isascii() else len(name.encode("utf-8"))
    return size + value_bytes(value)


def value_bytes(value: Any) -> int:
    """moto's ``DynamoType.size``, directly for strings, numbers, booleans and lists of attribute values."""
    tag, raw = value.type, value.value
    if tag == "S":
        if type(raw) is str:
            return len(raw) if raw.isascii() else len(raw.encode("utf-8"))
    elif tag == "N":
        return len(str(raw))
    elif tag == "BOOL" or tag == "NULL":
        if type(raw) is bool:
            return 1
    elif tag == "L" and type(raw) is list and all(type(element) is DynamoType for element in raw):
        return sum(value_bytes(element) for element in raw)
    return int(_original_size(value))


def summed_size(self: Any) -> int:
    """moto's ``Item.size``: the names' and values' sizes summed in one pass (an ASCII name's size remembered)."""
    total = 0
    names = _name_bytes
    for name, value in self.attrs.items():
        size = names.get(name) if type(name) is str else None
        if size is None:
            size = _attribute_bytes(name, value)
            if type(name) is str and name.isascii() and len(names) < NAME_MEMO_LIMIT:
                names[name] = len(name)
            total += size
            continue
        tag, raw = value.type, value.value
        if tag == "S" and type(raw) is str:
            total += size + (len(raw) if raw.isascii() else len(raw.encode("utf-8")))
        elif tag == "N":
            total += size + len(str(raw))
        else:
            total += size + value_bytes(value)
    return total


#: The sizes of ASCII attribute names (their lengths) seen by ``summed_size``; a bounded number of them.
_name_bytes: dict[str, int] = {}
NAME_MEMO_LIMIT = 10_000


def attribute_size(self: Any) -> int:
    """moto's ``DynamoType.size`` (``value_bytes``)."""
    return value_bytes(self)


def item_size(self: Any) -> int:
    """moto's ``Item.size``, remembered per item during one Scan or Query."""
    memo: dict[int, tuple[Any, int]] | None = getattr(_read_sizes, "memo", None)
    if memo is None:
        return summed_size(self)
    known = memo.get(id(self))
    if known is None:
        known = memo[id(self)] = (self, summed_size(self))
    return known[1]


def remembered_size(item: Any) -> int | None:
    """The size ``Item.size`` gave for this item object earlier in the Scan or Query running on this thread, if
    it sized it."""
    memo: dict[int, tuple[Any, int]] | None = getattr(_read_sizes, "memo", None)
    known = None if memo is None else memo.get(id(item))
    return None if known is None or known[0] is not item else known[1]


def _sizes_remembered(read: Callable[..., Any]) -> Callable[..., Any]:
    def sized_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_read_sizes, "memo", None)
        _read_sizes.memo = {} if outer is None else outer
        try:
            return read(self, *args, **kwargs)
        finally:
            _read_sizes.memo = outer

    return sized_read


def apply() -> None:
    Item.__init__ = item_init  # type: ignore[method-assign]
    DynamoType.size = attribute_size  # type: ignore[method-assign]
    Item.size = item_size  # type: ignore[method-assign]
    Table.scan = _sizes_remembered(Table.scan)  # type: ignore[method-assign]
    Table.query = _sizes_remembered(Table.query)  # type: ignore[method-assign]
