from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer

from pollen.errors import InvalidRecord
from pollen.streams.records import (
    Change,
    Skipped,
    backfill_change,
    decode_record,
    document_id,
    table_from_arn,
    to_document,
    version_key,
)
from pollen.tables import ASSETS, COMPANY_OVERVIEW, EARNINGS_CALENDAR

_ser = TypeSerializer()


def image(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in item.items()}


def record(event: str, seq: str, keys: dict[str, Any], new: Any = None, old: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"SequenceNumber": seq, "Keys": image(keys), "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        body["NewImage"] = image(new)
    if old is not None:
        body["OldImage"] = image(old)
    return {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": body}


def test_numbers_are_exact_strings_without_e_notation() -> None:
    doc = to_document(
        {
            "a": Decimal("1E+3"),
            "b": Decimal("1.5E-7"),
            "c": Decimal("123456789012345678901234567890123456.75"),
            "d": Decimal("-0"),
        }
    )
    assert doc == {"a": "1000", "b": "0.00000015", "c": "123456789012345678901234567890123456.75", "d": "-0"}
    assert all("E" not in v and "e" not in v for v in doc.values())


def test_sets_sorted_and_binary_base64() -> None:
    doc = to_document(
        {
            "ss": {"b", "a", "c"},
            "ns": {Decimal(10), Decimal("9.5"), Decimal("1E+2")},
            "bs": {Binary(b"\x02"), Binary(b"\x01")},
            "bin": Binary(b"\x00\xff"),
            "nested": {"m": [Decimal("2"), {"x": {"z", "y"}}], "flag": True, "none": None},
        }
    )
    assert doc["ss"] == ["a", "b", "c"]
    assert doc["ns"] == ["9.5", "10", "100"]  # numeric order, then exact strings
    assert doc["bs"] == ["AQ==", "Ag=="]
    assert doc["bin"] == "AP8="
    assert doc["nested"] == {"m": ["2", {"x": ["y", "z"]}], "flag": True, "none": None}


def test_version_key_orders_as_integers_across_lengths() -> None:
    numbers = ["9" * 21, "1" + "0" * 21, "1" * 40, "100000000000000000000000000000000000000", "2" * 25]
    keys = [version_key(n) for n in numbers]
    assert sorted(keys) == [version_key(n) for n in sorted(numbers, key=int)]
    # a backfill at a position beats the record at that position and loses to the next one
    assert version_key("500" * 7) < version_key("500" * 7, backfill=True) < version_key(str(int("500" * 7) + 1))
    with pytest.raises(InvalidRecord):
        version_key("12a")


def test_document_id_escapes_the_full_key() -> None:
    assert document_id(ASSETS, {"symbol": "BRK.B", "lastPollenationDate": "1970-01-01T00:00:00Z"}) == (
        "BRK.B|1970-01-01T00:00:00Z"
    )
    a = document_id(EARNINGS_CALENDAR, {"asset_symbol": "A|B", "earnings_date": "C"})
    b = document_id(EARNINGS_CALENDAR, {"asset_symbol": "A", "earnings_date": "B|C"})
    assert a != b
    assert a == "A%7CB|C"
    assert document_id(COMPANY_OVERVIEW, {"symbol": "100%"}) == "100%25"


def test_insert_modify_remove() -> None:
    keys = {"symbol": "AAPL"}
    insert = decode_record(
        record("INSERT", "1" * 21, keys, new={**keys, "Name": "Apple", "PE": Decimal("1E+1")}), COMPANY_OVERVIEW
    )
    assert isinstance(insert, Change)
    assert (insert.operation, insert.doc_id, insert.document) == (
        "upsert",
        "AAPL",
        {"symbol": "AAPL", "Name": "Apple", "PE": "10"},
    )
    remove = decode_record(record("REMOVE", "2" * 21, keys, old={**keys}), COMPANY_OVERVIEW)
    assert isinstance(remove, Change)
    assert remove.operation == "delete" and remove.document is None
    assert remove.version > insert.version


def test_bookkeeping_only_modify_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    keys = {"symbol": "AAPL"}
    old = {**keys, "Name": "Apple", "lastSyncDate": "2024-01-01T00:00:00Z"}
    new = {**keys, "Name": "Apple", "lastSyncDate": "2024-01-02T00:00:00Z"}
    with caplog.at_level(logging.INFO, logger="pollen.streams.records"):
        skipped = decode_record(record("MODIFY", "3" * 21, keys, new=new, old=old), COMPANY_OVERVIEW)
        changed = decode_record(
            record("MODIFY", "4" * 21, keys, new={**new, "Name": "Apple Inc"}, old=old), COMPANY_OVERVIEW
        )
    assert skipped == Skipped("bookkeeping", "3" * 21, "companyOverview")
    assert isinstance(changed, Change)
    logged = {r.getMessage(): getattr(r, "changed", None) for r in caplog.records}
    assert logged["skipped bookkeeping-only change"] == ["lastSyncDate"]
    assert logged["document changed"] == ["Name", "lastSyncDate"]
    # the bookkeeping set is a parameter
    custom = decode_record(
        record("MODIFY", "5" * 21, keys, new={**new, "Name": "X"}, old=old),
        COMPANY_OVERVIEW,
        bookkeeping=frozenset({"lastSyncDate", "Name"}),
    )
    assert isinstance(custom, Skipped)


def test_other_tables_and_events_are_filtered() -> None:
    keys = {"symbol": "AAPL"}
    assert decode_record(record("INSERT", "1" * 21, keys, new=keys), None) == Skipped("table", "1" * 21)
    other = decode_record(record("TTL", "1" * 21, keys, new=keys), COMPANY_OVERVIEW)
    assert isinstance(other, Skipped) and other.reason == "event"
    with pytest.raises(InvalidRecord):
        decode_record({"eventName": "INSERT"}, COMPANY_OVERVIEW)
    with pytest.raises(InvalidRecord):
        decode_record(record("INSERT", "1" * 21, keys), COMPANY_OVERVIEW)  # no NewImage


def test_table_from_arn_and_backfill_change() -> None:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/dev-assets/stream/2024-01-01T00:00:00.000"
    assert table_from_arn(arn, "dev-") == "assets"
    assert table_from_arn(arn, "prod-") is None
    change = backfill_change(COMPANY_OVERVIEW, {"symbol": "X", "v": Decimal("2.50")}, "7" * 22)
    assert change.version == version_key("7" * 22, backfill=True)
    assert change.document == {"symbol": "X", "v": "2.50"}
