"""The projected-read parts of pollen.local.motopatch against moto's own functions, in process: a projection built
inside a Scan or Query (the stored item's size known), attribute sizes, and the conversion of projected items for
the response."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

from pollen.local import motopatch
from pollen.local.motopatch import itemsize, projection, serializer
from tests.unit.test_motopatch import attribute_values, items

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

NO_KEY: Any = None
numbers = st.one_of(
    st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9])?", fullmatch=True),
    st.sampled_from(["0", "-0", "0.000", "1.50", "1e3", "10E5", "1" * 38]),
)
#: Numbers DynamoDB refuses (moto's conversions raise on them).
bad_numbers = st.sampled_from(["NaN", "x1", "1" * 39])
texts = st.text(max_size=6)
#: Values moto stores (it refuses unknown tags and non-string numbers on writes).
storable = st.recursive(
    st.one_of(
        st.builds(lambda v: {"S": v}, texts),
        st.builds(lambda v: {"N": v}, numbers),
        st.builds(lambda v: {"B": v}, st.sampled_from(["", "AAEC", "aGk="])),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(lambda v: {"SS": v}, st.lists(texts, min_size=1, max_size=3, unique=True)),
        st.builds(lambda v: {"NS": v}, st.lists(numbers, min_size=1, max_size=3, unique=True)),
    ),
    lambda children: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(children, max_size=3)),
        st.builds(lambda v: {"M": v}, st.dictionaries(texts, children, max_size=3)),
    ),
    max_leaves=8,
)
stored_values = st.one_of(
    storable,
    st.builds(lambda v: {"N": v}, numbers),
    st.builds(lambda v: {"L": v}, st.lists(st.builds(lambda b: {"BOOL": b}, st.booleans()), max_size=3)),
    st.just({"NULL": False}),
    st.just({"BOOL": "yes"}),
)
stored_items = st.dictionaries(st.sampled_from(["a", "b", "c", "dé", "e", "f"]), stored_values, max_size=6)
#: Every form the size and response code must handle, including those moto would refuse to store.
any_values = st.one_of(stored_values, attribute_values, st.builds(lambda v: {"N": v}, bad_numbers))
projected_names = st.lists(st.sampled_from(["a", "b", "c", "dé", "e", "f", "absent"]), min_size=1, max_size=6)


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", call()
    except Exception as exc:  # the patch must raise what moto raises
        return "raises", type(exc)


def _attributes(item: Any) -> list[tuple[str, str, Any]]:
    """An item's attributes as moto's response shows them, in order."""
    return [(name, value.type, repr(value.to_json())) for name, value in item.attrs.items()]


@contextmanager
def _inside_a_read() -> Iterator[None]:
    """What ``Table.scan``/``Table.query`` set up while they run: item sizes remembered per item."""
    itemsize._read_sizes.memo = {}
    try:
        yield
    finally:
        itemsize._read_sizes.memo = None


def _stored(attrs: dict[str, Any]) -> Any:
    built = _outcome(lambda: Item(hash_key=NO_KEY, range_key=None, attrs=attrs))
    if built[0] == "raises":
        return None
    return built[1]


@settings(max_examples=400, deadline=None)
@given(attrs=stored_items, names=projected_names, sized=st.booleans())
def test_a_projection_inside_a_read_matches_moto(attrs: dict[str, Any], names: list[str], sized: bool) -> None:
    item = _stored(attrs)
    if item is None:
        return
    paths = [[name] for name in names]
    expected = _outcome(lambda: _attributes(projection._original_project(item, paths)))
    with _inside_a_read():
        if sized:  # the page limit sized the item first (as Scan and Query do)
            _outcome(lambda: itemsize.item_size(item))
        patched = _outcome(lambda: _attributes(projection.project(item, paths)))
    assert patched == expected


def test_a_projection_that_outgrows_the_item_limit_raises_like_moto() -> None:
    numbers = {f"n{k}": {"N": "1e3"} for k in range(100)}  # each projected as "1E+3": one byte longer
    filler = itemsize.ITEM_SIZE_LIMIT - 50 - sum(len(name) + 3 for name in numbers) - len("big")
    item = Item(hash_key=NO_KEY, range_key=None, attrs={"big": {"S": "x" * filler}, **numbers})
    paths = [["big"], *([name] for name in numbers)]
    with pytest.raises(ItemSizeTooLarge):
        projection._original_project(item, paths)
    with _inside_a_read():
        itemsize.item_size(item)
        with pytest.raises(ItemSizeTooLarge):
            projection.project(item, paths)
        assert _attributes(projection.project(item, paths[:40])) == _attributes(
            projection._original_project(item, paths[:40])
        )


@settings(max_examples=400, deadline=None)
@given(value=any_values)
def test_attribute_size_matches_moto(value: dict[str, Any]) -> None:
    built = _outcome(lambda: DynamoType(value))
    if built[0] == "raises":
        return
    assert _outcome(lambda: itemsize.value_bytes(built[1])) == _outcome(lambda: itemsize._original_size(built[1]))


@settings(max_examples=200, deadline=None)
@given(attrs=st.one_of(items, stored_items))  # moto's response path also sees unstorable forms
def test_an_items_attributes_convert_for_the_response_as_moto_converts_them(attrs: dict[str, Any]) -> None:
    item = _stored(attrs)
    if item is None:
        return
    assert type(item.attrs) is LimitedSizeDict
    result = {"Items": [item.attrs, dict(item.attrs)], "Count": 2}
    assert _outcome(lambda: serializer.dynamo_to_dict(result)) == _outcome(
        lambda: serializer._original_dynamo_to_dict(result)
    )
