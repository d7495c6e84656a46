"""The ``streamrecords`` part of pollen.local.motopatch against moto's own walk, in process: GetRecords answers of
random records, byte for byte (so an integer timestamp and a fractional one are told apart)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

from pollen.local import motopatch
from pollen.local.motopatch.streamrecords import StreamsJSONSerializer, structure_plans

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

texts = st.text(max_size=5)
attribute_values = st.recursive(
    st.one_of(
        st.builds(lambda v: {"S": v}, texts),
        st.builds(lambda v: {"N": v}, st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True)),
        st.builds(lambda v: {"B": v}, st.binary(max_size=6)),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(lambda v: {"N": v}, st.integers()),  # a form the direct encoders hand back to moto's walk
    ),
    lambda children: st.builds(lambda v: {"M": v}, st.dictionaries(texts, children, max_size=2)),
    max_leaves=4,
)
images = st.dictionaries(st.text(min_size=1, max_size=4), attribute_values, max_size=4)
timestamps = st.one_of(
    st.datetimes(),  # naive, as moto's utcnow() gives them, microseconds or none
    st.datetimes().map(lambda value: value.replace(microsecond=0)),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda value: value.replace(tzinfo=UTC)
    ),
    st.integers(min_value=0, max_value=2**33),
)
stream_bodies = st.fixed_dictionaries(
    {
        "StreamViewType": st.sampled_from(["NEW_AND_OLD_IMAGES", "KEYS_ONLY"]),
        "ApproximateCreationDateTime": timestamps,
        "SequenceNumber": st.integers(min_value=0, max_value=10**22).map(str),
        "SizeBytes": st.integers(min_value=1, max_value=10**6) | st.just(True),
        "Keys": images,
    },
    optional={
        "NewImage": images,
        "OldImage": images | st.none(),
        "stream_view_type": st.just("KEYS_ONLY"),  # another key: moto's walk alone
    },
)
records = st.fixed_dictionaries(
    {
        "eventID": st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
        "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]) | st.none() | st.integers(),
        "eventSource": st.just("aws:dynamodb"),
        "eventVersion": st.just("1.0"),
        "awsRegion": st.just("us-east-1"),
        "dynamodb": stream_bodies,
    },
    optional={
        "userIdentity": st.just({"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}),
        "StreamRecord": st.just({}),  # the alias moto's picker tries first for `dynamodb`
    },
)


def _body(serializer_class: type[Any], result: dict[str, Any]) -> str | bytes:
    operation_model = get_service_model("dynamodbstreams").operation_model("GetRecords")
    serializer = serializer_class(operation_model=operation_model, value_picker=XFormedAttributePicker())
    body: str | bytes = serializer.serialize(result)["body"]
    return body


def _moto_record(sequence: int, microsecond: int) -> dict[str, Any]:
    """A record as moto's ``StreamRecord.to_json`` builds it (same keys, same order, same types)."""
    return {
        "eventID": "0" * 32,
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.0",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": datetime(2026, 12, 3, 10, 0, 0, microsecond),
            "SequenceNumber": str(1100000000017454423009 + sequence),
            "SizeBytes": 321,
            "Keys": {"symbol": {"S": f"SYM{sequence}"}},
            "NewImage": {"symbol": {"S": f"SYM{sequence}"}, "n": {"N": "1.50"}, "b": {"B": b"\x00\x01"}},
        },
    }


@settings(max_examples=150, deadline=None)
@given(page=st.lists(records, max_size=4), next_iterator=st.none() | texts)
def test_get_records_answer_is_moto_s_byte_for_byte(page: list[dict[str, Any]], next_iterator: str | None) -> None:
    result: dict[str, Any] = {"Records": page}
    if next_iterator is not None:
        result["NextShardIterator"] = next_iterator
    assert _body(StreamsJSONSerializer, result) == _body(JSONSerializer, result)


@pytest.mark.parametrize("microsecond", [0, 999, 1000, 123456])
def test_moto_s_own_records_take_the_direct_path_and_match(microsecond: int) -> None:
    record = _moto_record(7, microsecond)
    plan = structure_plans()["Record"]
    assert isinstance(plan.encode(record), dict)  # encoded directly, not handed back to moto's walk
    result = {"Records": [record, _moto_record(8, microsecond)], "NextShardIterator": "next"}
    assert _body(StreamsJSONSerializer, result) == _body(JSONSerializer, result)


def test_both_stream_record_structures_have_a_plan() -> None:
    assert set(structure_plans()) == {"Record", "StreamRecord"}
