"""A projection converts only the projected attributes; a projected Query or Scan does not deep-copy what it projects.

What moto does: ``Item.project`` converts the whole item to plain Python (``Item.to_regular_json``: a deep copy of
every attribute value, then boto3's ``TypeDeserializer``) once per projected path, picks the path from it
(``find_nested_key``), merges the picks (``merge_dicts``) and serializes the result back (boto3's
``TypeSerializer``). A Scan with ``ProjectionExpression`` first deep-copies every item of the page
(``Table.scan``: ``copy.deepcopy(item)``; ``Table.query``: ``copy.deepcopy(results)``), then projects the copies. For
a 17-attribute item projected onto 4 names that is one deep copy and four whole-item conversions to keep four values.

What the patch does:

- ``Item.project``: when every projected path is one top-level name (no nested path, no list index, no name twice),
  converts only those attributes, each exactly as ``to_regular_json`` converts it, in the order of the paths, and
  builds the result the same way (``TypeSerializer`` then ``Item``). Any other projection runs moto's own code.
  A string, number or boolean attribute is converted by the two steps that apply to it (a string and a boolean are
  their own plain and serialized forms; a number goes through ``TypeDeserializer._deserialize_n`` and
  ``TypeSerializer._serialize_n``), without the type dispatch; other attributes take the whole conversion.
  Which projections qualify is worked out once per projection list (the same list object with the same paths as the
  last one seen on this thread reuses the answer).
- Inside a Scan or Query, whose page limit has sized the stored item already (``itemsize``: remembered per item for
  the read), the projected item is built without ``Item.__init__`` sizing it again, as long as the stored item's size
  plus what number normalisation added (``"1e3"`` becomes ``"1E+3"``) stays within the 405,000-byte item limit;
  beyond that ``Item()`` builds it and raises what moto raises. A projected value the conversion leaves as it is (a
  string, a boolean, a number already in its normal form) is the stored ``DynamoType`` itself; a number's normal
  form is remembered per string (bounded).
- ``Table.scan`` and ``Table.query`` called with a projection: while they run (on this thread), the deep copies they
  make of the items they return are the items themselves (a list of items is copied shallowly).

Why it is equivalent: for a top-level name, ``find_nested_key`` returns ``{name: regular[name]}`` when the item has
the attribute and ``{}`` otherwise, and ``to_regular_json`` converts each attribute on its own
(``deserialize(attribute.to_regular_json())``), so merging the picks in path order gives the same dict, key order
included; the same serializer then builds the same item. The copies are skipped only when a projection follows:
until then the items are only read (the index projection returns the item or a new projected one, a filter
expression evaluates without changing it, the last evaluated key is read from it), and the projection returns new
items built from converted copies of the values, so nothing a response carries is shared with the table. The
projected items' ``hash_key``/``range_key`` are the stored items' key objects rather than copies; moto only reads them.
The same holds for the unchanged values a projected item shares with the stored one: the response only reads their
``type`` and ``value``, and the projected item is dropped once the response is written. ``Item.__init__`` raises
only when a running total exceeds the limit; every running total is at most the projected item's size, which is at
most the stored item's size (the projected attributes are some of its attributes, each no larger than before except
by the growth counted) plus the growth counted: within the limit, no total can exceed it.
"""

from __future__ import annotations

import copy
import inspect
import re
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict, deserializer, serializer
from moto.dynamodb.models.table import Table

from pollen.local.motopatch.itemsize import ITEM_SIZE_LIMIT, remembered_size, value_bytes

_original_project: Callable[..., Any] = Item.project
_original_scan: Callable[..., Any] = Table.scan
_original_query: Callable[..., Any] = Table.query
_scan_signature = inspect.signature(_original_scan)
_query_signature = inspect.signature(_original_query)

#: ``find_nested_key``'s test for a list-index path element (``name[3]``).
_LIST_INDEX = re.compile(r"(.+)\[(\d+)\]$")

_projected_read = threading.local()


def top_level_names(projection_expressions: list[list[str]]) -> list[str] | None:
    """The projected names when every path is one distinct top-level name without an index, else None."""
    names: list[str] = []
    for path in projection_expressions:
        if len(path) != 1 or type(path[0]) is not str or _LIST_INDEX.match(path[0]) or path[0] in names:
            return None
        names.append(path[0])
    return names


def _projected_names(projection_expressions: list[list[str]]) -> list[str] | None:
    """``top_level_names``, remembered (per thread) for the last projection seen: a Scan or Query projects every
    item of a page with the same list. The list is held and compared by value as well, so a list changed since, or
    a new one at a reused address, is examined again."""
    memo = getattr(_projected_read, "names", None)
    if memo is not None and memo[0] is projection_expressions and memo[1] == projection_expressions:
        names: list[str] | None = memo[2]
        return names
    names = top_level_names(projection_expressions)
    _projected_read.names = (projection_expressions, [list(path) for path in projection_expressions], names)
    return names


def project(self: Any, projection_expressions: list[list[str]]) -> Any:
    """moto's ``Item.project``, converting only the projected attributes when they are top-level names."""
    names = _projected_names(projection_expressions)
    if names is None:
        return _original_project(self, projection_expressions)
    stored_size = remembered_size(self)
    if stored_size is not None:
        projected = _within_limit(self, names, stored_size)
        if projected is not None:
            return projected
    attrs = self.attrs
    converted = {name: _converted(attrs[name]) for name in names if name in attrs}
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=converted)


def _within_limit(item: Any, names: list[str], stored_size: int) -> Any:
    """The projected item built without sizing it again, when its size cannot exceed the item limit (the stored
    item's size plus what conversions added); else None. A value its conversion leaves as it is (a string, a
    boolean, a number already in normal form) is the stored ``DynamoType`` itself."""
    attrs = item.attrs
    projected = LimitedSizeDict.__new__(LimitedSizeDict)
    grown = 0
    for name in names:
        attribute = attrs.get(name)
        if attribute is None:
            continue
        tag, raw = attribute.type, attribute.value
        if (tag == "S" and type(raw) is str) or (tag == "BOOL" and type(raw) is bool):
            dict.__setitem__(projected, name, attribute)
            continue
        value, growth = _converted_value(attribute)
        dict.__setitem__(projected, name, value)
        grown += growth
    if stored_size + grown > ITEM_SIZE_LIMIT:
        return None
    result: Any = Item.__new__(Item)
    result.hash_key, result.range_key, result.attrs = item.hash_key, item.range_key, projected
    return result


def _converted_value(attribute: Any) -> tuple[Any, int]:
    """``DynamoType(_converted(attribute))`` (``attribute`` itself for a number already in normal form), and by how
    many bytes (at least 0) it outsizes ``attribute``."""
    tag, raw = attribute.type, attribute.value
    if tag == "N" and type(raw) is str:
        number = _number(raw)
        if number == raw:
            return attribute, 0
        value = DynamoType.__new__(DynamoType)
        value.type, value.value = tag, number
        return value, max(0, len(number) - len(raw))
    value = DynamoType(_converted(attribute))
    return value, max(0, value_bytes(value) - value_bytes(attribute))


#: ``_serialize_n(_deserialize_n(text))`` per number string seen in projections (cleared past the limit).
_numbers: dict[str, str] = {}
NUMBER_MEMO_LIMIT = 100_000


def _number(text: str) -> str:
    number = _numbers.get(text)
    if number is None:
        if len(_numbers) >= NUMBER_MEMO_LIMIT:
            _numbers.clear()
        number = _numbers[text] = serializer._serialize_n(deserializer._deserialize_n(text))
    return number


def _converted(attribute: Any) -> dict[str, Any]:
    """``serializer.serialize(deserializer.deserialize(attribute.to_regular_json()))`` of one attribute."""
    tag, value = attribute.type, attribute.value
    if tag == "S" and type(value) is str:
        return {"S": value}
    if tag == "N" and type(value) is str:
        return {"N": _number(value)}
    if tag == "BOOL" and type(value) is bool:
        return {"BOOL": value}
    converted: dict[str, Any] = serializer.serialize(deserializer.deserialize(attribute.to_regular_json()))
    return converted


class _CopyModule:
    """Stands in for ``copy`` in moto's table module: during a projected read, returned items are not copied."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if getattr(_projected_read, "active", False):
            if isinstance(value, Item):
                return value
            if type(value) is list and all(isinstance(element, Item) for element in value):
                return list(value)
        return copy.deepcopy(value, memo)


def _projected(read: Callable[..., Any], signature: inspect.Signature, parameter: str) -> Callable[..., Any]:
    def projected_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not signature.bind(self, *args, **kwargs).arguments.get(parameter):
            return read(self, *args, **kwargs)
        _projected_read.active = True
        try:
            return read(self, *args, **kwargs)
        finally:
            _projected_read.active = False

    return projected_read


def apply() -> None:
    Item.project = project  # type: ignore[method-assign]
    table_module.copy = _CopyModule()  # type: ignore[attr-defined,assignment]
    Table.scan = _projected(Table.scan, _scan_signature, "projection_expression")  # type: ignore[method-assign]
    Table.query = _projected(Table.query, _query_signature, "projection_expressions")  # type: ignore[method-assign]
