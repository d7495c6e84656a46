"""motopatch's ``pages`` part and the one-pass item size against moto's own code, in process, on random inputs: the
start-key comparison of a later page, segment membership, ``DynamoType`` construction and ``Item.size``."""

from __future__ import annotations

from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from pollen.local import motopatch
from pollen.local.motopatch import itemsize, pages
from tests.unit.test_motopatch import attribute_values, items

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

key_values = st.one_of(
    st.builds(lambda v: {"S": v}, st.text(max_size=4)),
    st.builds(lambda v: {"N": v}, st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,2})?(E[0-9])?", fullmatch=True)),
    st.builds(lambda v: {"N": v}, st.sampled_from(["NaN", "x1", "1e400000000"])),
    st.builds(lambda v: {"B": v}, st.text(max_size=3)),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
)
ATTRS = ("h", "r", "g")
#: Items built here need no key objects.
NO_KEY: Any = None


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "value", call()
    except Exception as exc:  # the patch must raise what moto raises
        return "raises", type(exc)


@settings(max_examples=300, deadline=None)
@given(
    item_attrs=st.dictionaries(st.sampled_from(ATTRS), key_values, max_size=3),
    start=st.dictionaries(st.sampled_from(ATTRS), key_values, max_size=3),
    index=st.booleans(),
    forward=st.booleans(),
)
def test_start_key_comparison_matches_moto(
    item_attrs: dict[str, Any], start: dict[str, Any], index: bool, forward: bool
) -> None:
    table = Table.__new__(Table)
    item = Item(hash_key=NO_KEY, range_key=None, attrs=item_attrs)
    hash_attrs: list[str] = ["g", "h"] if index else ["h"]
    range_attrs: list[str | None] = ["r", "r"] if index else ["r"]
    expected = _outcome(lambda: pages._original_comes_before(table, item, start, hash_attrs, range_attrs, forward))
    # Twice: the second call reuses the start key converted by the first, as a later item of the same page does.
    outcomes: list[tuple[str, Any]] = []

    def compare_twice(_self: Any) -> None:
        for _ in range(2):
            outcomes.append(
                _outcome(lambda: pages.item_comes_before_dct(table, item, start, hash_attrs, range_attrs, forward))
            )

    read = pages._start_key_remembered(compare_twice)
    read(table)
    assert outcomes == [expected, expected]


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=8), segment=st.integers(0, 6), total=st.integers(1, 7))
def test_segment_membership_matches_moto(key: str, segment: int, total: int) -> None:
    item = Item(hash_key=DynamoType({"S": key}), range_key=None, attrs={"h": {"S": key}})
    expected = pages._original_is_within_segment(item, (segment, total))
    assert pages.is_within_segment(item, (segment, total)) == expected
    assert pages.is_within_segment(item, (segment, total)) == expected  # remembered
    assert pages.is_within_segment(item, (None, None)) is True


@settings(max_examples=300, deadline=None)
@given(value=attribute_values)
def test_dynamo_type_matches_moto(value: dict[str, Any]) -> None:
    expected = _outcome(lambda: DynamoType(value))
    built = _outcome(lambda: itemsize._dynamo_type(value))
    assert built[0] == expected[0]
    if expected[0] == "value":
        assert (built[1].type, built[1].value) == (expected[1].type, expected[1].value)
        assert type(built[1]) is DynamoType


@settings(max_examples=300, deadline=None)
@given(attrs=items)
def test_item_size_matches_moto(attrs: dict[str, Any]) -> None:
    built = _outcome(lambda: Item(hash_key=NO_KEY, range_key=None, attrs=attrs))
    if built[0] == "raises":
        return
    item = built[1]
    assert _outcome(lambda: itemsize.summed_size(item)) == _outcome(lambda: itemsize._original_item_size(item))


def test_a_projection_list_changed_in_place_is_examined_again() -> None:
    from pollen.local.motopatch import projection

    item = Item(
        hash_key=NO_KEY, range_key=None, attrs={"a": {"S": "x"}, "b": {"N": "1.50"}, "m": {"M": {"c": {"S": "y"}}}}
    )
    paths = [["a"], ["b"]]
    assert projection.project(item, paths).to_json() == projection._original_project(item, paths).to_json()
    paths[1] = ["m", "c"]  # a nested path: moto's own projection must run now
    assert projection.project(item, paths).to_json() == projection._original_project(item, paths).to_json()
    assert projection.project(item, paths).to_json()["Attributes"] == {"a": {"S": "x"}, "m": {"M": {"c": {"S": "y"}}}}


def test_the_collector_part_raises_the_thresholds() -> None:
    import gc

    from pollen.local.motopatch import collector

    before = gc.get_threshold()
    try:
        collector.apply()
        assert gc.get_threshold() == collector.THRESHOLDS
    finally:
        gc.set_threshold(*before)
