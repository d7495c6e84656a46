"""Codec: exact numbers, DynamoDB's types and limits, item sizes by DynamoDB's documented rules, plain JSON."""

from __future__ import annotations

import json
import math
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.codec import CodecError
from tests.conftest import examples


def _numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-(10**37), max_value=10**37),
        st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(_storable),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or 1e-120 < abs(f) < 1e120),
    )


def _storable(d: Decimal) -> bool:
    try:
        codec.encode_value(d)
    except CodecError:
        return False
    return True


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(max_size=20), _numbers()),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def _expected(value: Any) -> Any:
    """What a value reads back as: numbers become exact Decimals of the same value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return {k: _expected(v) for k, v in value.items()}


@given(json_values)
@settings(max_examples=examples(100, nightly=3_000), deadline=None)
def test_round_trip_of_arbitrary_json_values(value: Any) -> None:
    decoded = codec.decode_value(codec.encode_value(value))
    assert decoded == _expected(value)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=8))
@settings(max_examples=examples(100, nightly=2_000), deadline=None)
def test_round_trip_of_arbitrary_items(item: dict[str, Any]) -> None:
    assert codec.decode_item(codec.encode_item(item)) == _expected(item)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=6))
@settings(max_examples=examples(100, nightly=2_000), deadline=None)
def test_plain_json_round_trip_keeps_numbers_exact(item: dict[str, Any]) -> None:
    text = codec.dumps_plain(item)
    assert codec.loads_plain(text) == _expected(item)


@given(st.binary(max_size=50), st.frozensets(st.text(max_size=5), min_size=1, max_size=4))
def test_binary_and_sets_round_trip_through_boto_and_wire_forms(blob: bytes, strings: frozenset[str]) -> None:
    encoded = codec.encode_item({"b": blob, "ss": set(strings)})
    assert codec.decode_item(encoded) == {"b": blob, "ss": set(strings)}
    wire = {"b": {"B": __import__("base64").b64encode(blob).decode()}, "ss": encoded["ss"]}
    assert codec.decode_item(wire)["b"] == blob


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=8))
@settings(max_examples=examples(100, nightly=2_000), deadline=None)
def test_one_pass_encoding_matches_encode_then_size(item: dict[str, Any]) -> None:
    wire, size = codec.encode_item_sized(item)
    assert wire == codec.encode_item(item)
    assert size == codec.item_size(wire)


def test_integers_and_decimals_of_one_value_encode_alike() -> None:
    for value in (100, 10**37, -(10**37), 10**50, 0, -7):
        assert codec.encode_value(value) == codec.encode_value(Decimal(value))


def test_floats_become_their_shortest_exact_decimal() -> None:
    assert codec.encode_value(0.1) == {"N": "0.1"}
    assert codec.encode_value(1e-7) == {"N": "0.0000001"}
    assert codec.number_text(Decimal("1.50")) == "1.5"
    assert codec.number_text(Decimal("-0")) == "0"
    assert codec.number_text(Decimal("1E+100")) == "1E+100"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("Infinity")])
def test_nan_and_infinity_are_rejected(bad: Any) -> None:
    with pytest.raises(CodecError):
        codec.encode_item({"x": bad})


def test_digits_and_range_limits() -> None:
    codec.encode_value(Decimal("1." + "2" * 37))  # 38 significant digits: fine
    with pytest.raises(CodecError, match="39 significant digits"):
        codec.encode_value(Decimal("1." + "2" * 38))
    codec.encode_value(Decimal("1E-130"))
    codec.encode_value(Decimal("9.9999999999999999999999999999999999999E+125"))
    with pytest.raises(CodecError, match="range"):
        codec.encode_value(Decimal("1E-131"))
    with pytest.raises(CodecError, match="range"):
        codec.encode_value(Decimal("1E+126"))


def test_empty_sets_are_dropped_and_bad_values_rejected() -> None:
    assert codec.encode_item({"a": set(), "m": {"e": frozenset()}}) == {"m": {"M": {}}}
    with pytest.raises(CodecError, match="empty set inside a list"):
        codec.encode_item({"l": [set()]})
    with pytest.raises(CodecError, match="only strings"):
        codec.encode_item({"s": {"a", 1}})
    with pytest.raises(CodecError, match="object"):
        codec.encode_item({"o": object()})
    with pytest.raises(CodecError, match="map key"):
        codec.encode_item({"m": {1: "x"}})


# Worked examples from DynamoDB's documented rules ("Item sizes and formats").
@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"id": "abc"}, 2 + 3),  # string: name + UTF-8 bytes
        ({"name": "é"}, 4 + 2),  # UTF-8, not characters
        ({"n": 123}, 1 + 2 + 1),  # 3 significant digits: 2 bytes + 1
        ({"n": Decimal("1.50")}, 1 + 1 + 1),  # trailing zero trimmed: "15"
        ({"n": Decimal("0.001")}, 1 + 1 + 1),  # leading zeros trimmed: "1"
        ({"n": 1234}, 1 + 2 + 1),
        ({"b": b"\x00\x01\x02"}, 1 + 3),  # raw bytes, not base64
        ({"t": True, "z": None}, (1 + 1) + (1 + 1)),
        ({"l": []}, 1 + 3),  # empty list: 3 bytes
        ({"l": ["a", "bc"]}, 1 + 3 + (1 + 1) + (2 + 1)),  # +1 byte per element
        ({"m": {"x": "y"}}, 1 + 3 + (1 + 1 + 1)),  # element = its name + value + 1
        ({"ss": {"ab", "c"}}, 2 + 3),  # sets: sum of the elements
        ({"ns": {1, 22}}, 2 + (1 + 1) + (1 + 1)),
    ],
)
def test_item_size_follows_dynamodb_rules(item: dict[str, Any], size: int) -> None:
    assert codec.item_size(codec.encode_item(item)) == size


def test_write_units_round_up_per_kilobyte() -> None:
    assert codec.write_units(1) == 1
    assert codec.write_units(1024) == 1
    assert codec.write_units(1025) == 2


def test_key_checks() -> None:
    schema = (("symbol", "S"), ("fiscalPeriod", "S"))
    codec.check_key(codec.encode_item({"symbol": "A", "fiscalPeriod": "ANNUAL#2020"}), schema)
    with pytest.raises(CodecError, match="missing"):
        codec.check_key(codec.encode_item({"symbol": "A"}), schema)
    with pytest.raises(CodecError, match="type S"):
        codec.check_key(codec.encode_item({"symbol": 1, "fiscalPeriod": "x"}), schema)
    with pytest.raises(CodecError, match="empty"):
        codec.check_key(codec.encode_item({"symbol": "", "fiscalPeriod": "x"}), schema)
    with pytest.raises(CodecError, match="2049 bytes"):
        codec.check_key(codec.encode_item({"symbol": "x" * 2049, "fiscalPeriod": "x"}), schema)
    with pytest.raises(CodecError, match="1025 bytes"):
        codec.check_key(codec.encode_item({"symbol": "x", "fiscalPeriod": "x" * 1025}), schema)


def test_content_hash_ignores_bookkeeping_and_number_spelling() -> None:
    a = codec.encode_item({"k": "1", "v": Decimal("1.50"), "lastSyncDate": "2026-01-01T00:00:00Z"})
    b = codec.encode_item({"k": "1", "v": 1.5, "lastSyncDate": "2026-02-01T00:00:00Z"})
    c = codec.encode_item({"k": "1", "v": 1.6, "lastSyncDate": "2026-01-01T00:00:00Z"})
    ignore = {"lastSyncDate"}
    assert codec.content_hash(a, ignore) == codec.content_hash(b, ignore)
    assert codec.content_hash(a, ignore) != codec.content_hash(c, ignore)
    assert codec.content_hash(a) != codec.content_hash(b)


def test_loads_plain_rejects_nan_and_reads_decimals() -> None:
    assert codec.loads_plain('{"x": 0.1}') == {"x": Decimal("0.1")}
    with pytest.raises(CodecError):
        codec.loads_plain('{"x": NaN}')


# --- the fast paths give exactly what the general code gives -------------------------------------------------------


def _number_outcome(value: Any) -> Any:
    try:
        return codec._number_general(value)
    except CodecError as exc:
        return ("error", exc.message)


def _fast_outcome(value: Any) -> Any:
    try:
        return codec._number(value)
    except CodecError as exc:
        return ("error", exc.message)


@given(
    st.one_of(
        st.decimals(places=None),  # any decimal, NaN and Infinity included, over DynamoDB's limits too
        st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12),
        st.builds(lambda d, e: d.scaleb(e), st.decimals(allow_nan=False, allow_infinity=False), st.integers(-60, 60)),
        st.floats(),
        st.integers(min_value=-(10**45), max_value=10**45),
    )
)
@settings(max_examples=examples(500, nightly=20_000), deadline=None)
def test_fast_number_path_matches_the_general_one(value: Any) -> None:
    assert _fast_outcome(value) == _number_outcome(value)


@pytest.mark.parametrize(
    "text",
    ["1.50", "-0.0012", "100", "100.000", "0.000001", "0.0000001", "1E+3", "-0", "0.00", "1." + "2" * 37,
     "1." + "2" * 38, "12345678901234567890123456789012345678", "123456789012345678901234567890123456789",
     "0." + "0" * 30 + "1", "9" * 39 + ".5", "1.0" + "0" * 50],
)  # fmt: skip
def test_fast_number_path_on_edge_cases(text: str) -> None:
    assert _fast_outcome(Decimal(text)) == _number_outcome(Decimal(text))


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.integers(min_value=0, max_value=45),
    st.booleans(),
)
@settings(max_examples=examples(300, nightly=10_000), deadline=None)
def test_remembered_numbers_give_each_spelling_of_a_value_its_own_general_outcome(
    value: Decimal, extra_zeros: int, negate_zero: bool
) -> None:
    """Numbers are remembered by value: every spelling of one value (30, 30.0, 3E+1, -0 and 0), asked in any order,
    gets what the general path gives that spelling, refusals included."""
    sign, digits, exponent = value.as_tuple()
    respelled = Decimal((sign, (*digits, *(0,) * extra_zeros), int(exponent) - extra_zeros))
    if negate_zero and not value:
        respelled = -respelled
    for spelling in (value, respelled, value.normalize(Context(prec=200)), respelled):
        assert spelling == value
        assert _fast_outcome(spelling) == _number_outcome(spelling)


@pytest.mark.parametrize("text", ["sNaN", "-sNaN", "NaN", "Infinity", "-Infinity"])
def test_numbers_that_cannot_be_remembered_are_refused_as_numbers(text: str) -> None:
    assert _fast_outcome(Decimal(text))[0] == "error"
    with pytest.raises(CodecError):
        codec.number_text(Decimal(text))


_key_strings = st.one_of(st.text(max_size=12), st.text(max_size=3).map(lambda s: s * 700), st.just("é" * 513))


@given(
    st.dictionaries(
        st.sampled_from(["pk", "sk", "other"]),
        st.one_of(_key_strings, st.integers(-5, 5), st.none(), st.binary(max_size=3), st.just(math.nan)),
    )
)
@settings(max_examples=examples(500, nightly=5_000), deadline=None)
def test_encode_key_matches_encode_check_and_signature(item: dict[str, Any]) -> None:
    for schema in ((("pk", "S"), ("sk", "S")), (("pk", "S"),), (("pk", "N"), ("sk", "S")), (("pk", "B"),)):
        names = [name for name, _ in schema]
        try:
            wire = codec.encode_item({name: item[name] for name in names if name in item})
            codec.check_key(wire, schema)
            expected: Any = (wire, codec.key_signature(wire, names))
        except CodecError as exc:
            expected = ("error", exc.message)
        try:
            actual: Any = codec.encode_key(item, schema)
        except CodecError as exc:
            actual = ("error", exc.message)
        assert actual == expected


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=8), st.binary(max_size=8))
@settings(max_examples=examples(100, nightly=2_000), deadline=None)
def test_add_content_hash_gives_the_content_hash_and_the_items_wire_json(item: dict[str, Any], blob: bytes) -> None:
    item = {**item, "blob": blob, "lastSyncDate": "2026-01-01T00:00:00Z"}
    wire = codec.encode_item(item)
    ignore = frozenset({"lastSyncDate", "contentHash"})
    expected = codec.content_hash(wire, ignore)
    digest, text = codec.add_content_hash(wire, ignore, "contentHash")
    assert digest == expected and wire["contentHash"] == {"S": digest}
    as_wire = {**wire, "blob": {"B": __import__("base64").b64encode(blob).decode()}}
    assert json.loads(text) == as_wire


_stored_values = st.one_of(
    json_values,
    st.binary(max_size=6),
    st.frozensets(st.text(max_size=4), max_size=3),
    st.sets(_numbers(), max_size=3),
    st.lists(st.text(max_size=6), max_size=4),
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), _stored_values, max_size=8))
@settings(max_examples=examples(300, nightly=5_000), deadline=None)
def test_the_plain_content_hash_is_the_hash_the_full_encoding_stores(item: dict[str, Any]) -> None:
    item = {**item, "lastSyncDate": "2026-01-01T00:00:00Z"}
    ignore = frozenset({"lastSyncDate", "contentHash"})
    try:
        wire = codec.encode_item(item)
    except CodecError:
        return  # a set the codec refuses; the upsert's full encoding reports it
    digest, _ = codec.add_content_hash(wire, ignore, "contentHash")
    assert codec.plain_content_hash(item, ignore) == digest


def test_the_plain_content_hash_leaves_names_the_codec_refuses_to_the_full_encoding() -> None:
    ignore = frozenset({"contentHash"})
    assert codec.plain_content_hash({"": "x", "a": 1}, ignore) is None
    assert codec.plain_content_hash({1: "x"}, ignore) is None
    assert codec.plain_content_hash({"a": float("nan")}, ignore) is None
    assert codec.plain_content_hash({"a": object()}, ignore) is None


def test_content_hash_definition_is_stable() -> None:
    """Hashes are stored in tables: a change of definition would make every stored item look changed."""
    item = codec.encode_item(
        {
            "symbol": "AAPL",
            "fiscalPeriod": "ANNUAL#2025-12-31",
            "eps": Decimal("1.50"),
            "n": 7,
            "name": "Société Générale",
            "tags": {"b", "a"},
            "blob": b"\x00\x01",
            "detail": {"list": [Decimal("0.1"), None, True, "x"]},
            "lastSyncDate": "2026-01-01T00:00:00Z",
        }
    )
    assert codec.content_hash(item, {"lastSyncDate", "contentHash"}) == "94f871fcdaa11c921c8b66cf0eaf6a66"


def test_nesting_is_limited_to_dynamodbs_32_levels() -> None:
    def nested(levels: int) -> Any:
        value: Any = "leaf"
        for level in range(levels):
            value = [value] if level % 2 else {"m": value}
        return value

    assert codec.encode_item({"pk": "a", "deep": nested(32)})["deep"]
    with pytest.raises(codec.CodecError, match="32 levels"):
        codec.encode_item({"pk": "a", "deep": nested(33)})
    with pytest.raises(codec.CodecError, match="32 levels"):
        codec.encode_item_sized({"pk": "a", "deep": nested(5_000)})  # refused long before the stack runs out
