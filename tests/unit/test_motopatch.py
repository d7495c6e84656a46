"""The parts of pollen.local.motopatch against moto's own code, in process (no server): the serializer's output and
the native sort order on random inputs, and the version gate."""

from __future__ import annotations

import json
import logging
from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core import serialize as moto_serialize
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.models.dynamo_type import DynamoType

from pollen.local import motopatch
from pollen.local.motopatch.ordering import native_order
from pollen.local.motopatch.serializer import DynamoDBJSONSerializer

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

texts = st.text(max_size=6)
scalars = st.one_of(
    st.builds(lambda v: {"S": v}, texts),
    st.builds(lambda v: {"N": v}, st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True)),
    st.builds(lambda v: {"B": v}, st.binary(max_size=8)),
    st.builds(lambda v: {"B": v}, texts),  # moto keeps some binaries as their base64 text
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda v: {"SS": v}, st.lists(texts, max_size=3)),
    st.builds(lambda v: {"BS": v}, st.lists(st.binary(max_size=4), max_size=3)),
    # Forms the direct path must hand back to moto's walk.
    st.builds(lambda v: {"N": v}, st.integers()),
    st.just({"S": None}),
    st.just({"X": "unknown tag"}),
)
attribute_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(children, max_size=3)),
        st.builds(lambda v: {"M": v}, st.dictionaries(texts, children, max_size=3)),
    ),
    max_leaves=8,
)
items = st.dictionaries(st.text(min_size=1, max_size=5), attribute_values, max_size=5)


def _serialized(serializer_class: type[Any], operation: str, result: dict[str, Any]) -> tuple[int, Any]:
    operation_model = get_service_model("dynamodb").operation_model(operation)
    serializer = serializer_class(operation_model=operation_model, value_picker=XFormedAttributePicker())
    response = serializer.serialize(result)
    return response["status_code"], json.loads(response["body"])


@settings(max_examples=120, deadline=None)
@given(page=st.lists(items, max_size=4), last_key=st.none() | items)
def test_serializer_matches_moto_on_query_pages(page: list[dict[str, Any]], last_key: dict[str, Any] | None) -> None:
    result: dict[str, Any] = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
    if last_key is not None:
        result["LastEvaluatedKey"] = last_key
    assert _serialized(DynamoDBJSONSerializer, "Query", result) == _serialized(JSONSerializer, "Query", result)


@settings(max_examples=60, deadline=None)
@given(item=items)
def test_serializer_matches_moto_on_get_item(item: dict[str, Any]) -> None:
    result = {"Item": item}
    assert _serialized(DynamoDBJSONSerializer, "GetItem", result) == _serialized(JSONSerializer, "GetItem", result)


key_values = st.one_of(
    st.builds(lambda v: DynamoType({"S": v}), st.sampled_from(["", "a", "b", "ab", "1", "1.0"])),
    st.builds(lambda v: DynamoType({"N": v}), st.sampled_from(["1", "1.0", "-2", "10", "0.5"])),
    st.builds(lambda v: DynamoType({"B": v}), st.sampled_from(["YQ==", "Yg==", "a", "1"])),
)


class _Keyed:
    def __init__(self, number: int, key: tuple[DynamoType, ...]) -> None:
        self.number = number
        self.key = key


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(key_values, min_size=1, max_size=2).map(tuple), max_size=12))
def test_native_order_is_moto_order_or_declines(keys: list[tuple[DynamoType, ...]]) -> None:
    rows = [_Keyed(number, key) for number, key in enumerate(keys)]
    try:
        expected: list[int] | None = [row.number for row in sorted(rows, key=lambda row: row.key)]
    except TypeError:
        expected = None  # moto's own sort fails: the patch must decline and let it fail the same way
    ordered = native_order(rows, lambda row: row.key)
    if ordered is not None:
        assert [row.number for row in ordered] == expected
    else:
        # Declining is only allowed where a tag differs at some position or the key lengths differ.
        assert len({tuple(value.type for value in key) for key in keys}) > 1


def test_other_moto_versions_run_stock(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    monkeypatch.setattr(motopatch, "_applied", False)
    with caplog.at_level(logging.WARNING, logger="pollen.local.motopatch"):
        assert motopatch.apply() is False
    assert "running stock moto" in caplog.text
    assert "dynamodb" not in moto_serialize.SERVICE_SPECIFIC_SERIALIZERS
