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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize

#: The limit ``LimitedSizeDict.__setitem__`` enforces (moto 5.2.5).
ITEM_SIZE_LIMIT = 405000

_original_init: Callable[..., None] = Item.__init__


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
        attribute = DynamoType(value)
        attribute_size = bytesize(name) + attribute.size()
        if size + attribute_size > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self.attrs, name, attribute)
        size += attribute_size


def apply() -> None:
    Item.__init__ = item_init  # type: ignore[method-assign]
