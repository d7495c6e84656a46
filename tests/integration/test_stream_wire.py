"""GetRecords through pollen's JSON client gives the records boto3 gives (moto server over HTTP)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pollen.adapters.stream_records import WireRecordsClient, records_client
from pollen.tables import COMPANY_OVERVIEW
from tests.integration.stream_support import serialize


def _records(client: Any, arn: str, shard_id: str) -> list[dict[str, Any]]:
    iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    page = client.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)
    return list(page["Records"])


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    body = dict(record["dynamodb"])
    created = body.pop("ApproximateCreationDateTime", None)
    if created is not None and hasattr(created, "timestamp"):  # boto3: a datetime; JSON: epoch seconds
        created = created.timestamp()
    return {**record, "dynamodb": body, "created": None if created is None else round(float(created))}


def test_wire_records_equal_boto3_records(dynamodb: Any, streams: Any) -> None:
    table = f"w{uuid.uuid4().hex[:8]}-companyOverview"
    dynamodb.create_table(**COMPANY_OVERVIEW.create_table_request(table))
    item = {
        "symbol": "BIN",
        "Name": "Binary Corp",
        "logo": b"\x00\xffpng\x80",
        "thumbs": {b"a", b"\x01\x02"},
        "nested": {"blob": b"\xfe", "list": [b"x", Decimal("1E+3"), {"deep": b"\x00"}], "tags": {"a", "b"}},
        "MarketCapitalization": Decimal("123456789012345678901234567890"),
    }
    dynamodb.put_item(TableName=table, Item=serialize(item))
    dynamodb.put_item(TableName=table, Item=serialize({**item, "logo": b"\x01", "Name": "Renamed"}))
    dynamodb.delete_item(TableName=table, Key=serialize({"symbol": "BIN"}))
    arn = streams.list_streams(TableName=table)["Streams"][0]["StreamArn"]
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    wire = records_client(streams, endpoint_url=streams.meta.endpoint_url, region=streams.meta.region_name)
    assert isinstance(wire, WireRecordsClient)
    expected = _records(streams, arn, shard_id)
    got = _records(wire, arn, shard_id)
    assert [r["eventName"] for r in got] == ["INSERT", "MODIFY", "REMOVE"]
    assert [_comparable(r) for r in got] == [_comparable(r) for r in expected]
    assert got[0]["dynamodb"]["NewImage"]["logo"] == {"B": b"\x00\xffpng\x80"}


def test_records_client_keeps_boto3_off_loopback(streams: Any) -> None:
    assert records_client(streams, endpoint_url=None, region="us-east-1") is streams
    assert (
        records_client(streams, endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com", region="x") is streams
    )
