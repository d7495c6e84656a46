"""pollen's moto speed-ups change nothing a client can see: the same random operations sent to a stock moto server
and to a patched one get byte-equal responses.

Each seed drives a generator of DynamoDB calls on two tables (hash + range with two GSIs, one INCLUDE and one
KEYS_ONLY, and hash-only), with streams: puts, batch writes, updates, deletes, transactions (some cancelled, some
invalid), GetItem, BatchGetItem, paginated Queries on the base table and the indexes (Limit, ExclusiveStartKey,
ScanIndexForward, key conditions, filters, projections), segmented Scans, and the stream read from the start. Every
request goes to both servers as the same bytes; each response's status, content type, error type and body must match.

Normalised before comparing, because they differ between two processes by design: stream event ids (random),
timestamps (every ``...DateTime`` member, the stream label and its copy inside stream ARNs), shard
iterators (they embed the label), a stream record's ``SizeBytes`` (moto measures the record with its timestamp in
it, so the number of digits the clock gives shows), and the response headers that carry request ids, dates and the body's CRC.

Both servers run with ``PYTHONHASHSEED=0``: moto keeps some sets in Python sets, whose order follows the hash seed.

``POLLEN_MOTOPATCH_OPERATIONS`` sets the operations per seed (default 200).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
from collections.abc import Iterator
from typing import Any

import httpx
import moto
import pytest

from pollen.local import motopatch
from pollen.local.stack import MotoServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
    ),
]

OPERATIONS_PER_SEED = int(os.environ.get("POLLEN_MOTOPATCH_OPERATIONS", "200"))
SEEDS = (1, 2, 3)

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=0"
)
_VOLATILE_VALUES = re.compile(
    rb'"(eventID|SizeBytes|\w*DateTime|LatestStreamLabel|StreamLabel|ShardIterator|NextShardIterator)": ("[^"]*"|[0-9.eE+-]+)'
)
_TIMESTAMPS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")


def _volatile(match: re.Match[bytes]) -> bytes:
    """A volatile value keeps its JSON type: text or a number. (Whether epoch seconds carry milliseconds follows the
    clock, so it may differ between the servers; tests/unit/test_motopatch_streamrecords.py checks it on fixed
    values.)"""
    form = b'"<volatile>"' if match.group(2).startswith(b'"') else b"<number>"
    return b'"' + match.group(1) + b'": ' + form


def normalised(body: bytes) -> bytes:
    return _TIMESTAMPS.sub(b"<time>", _VOLATILE_VALUES.sub(_volatile, body))


class Endpoint:
    """One server, reached with raw JSON requests; remembers its own stream ARN and shard iterators."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)

    def call(self, target: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        service = "DynamoDBStreams_20120810" if target in STREAM_OPERATIONS else "DynamoDB_20120810"
        response = self.client.post(
            "/",
            content=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"{service}.{target}",
                "Authorization": AUTHORIZATION,
            },
        )
        headers = {name: response.headers.get(name, "") for name in ("content-type", "x-amzn-errortype")}
        return response.status_code, headers, response.content


STREAM_OPERATIONS = frozenset({"DescribeStream", "GetShardIterator", "GetRecords"})


class SeededMotoServer(MotoServer):
    """moto keeps some sets in Python sets, whose order follows the process's hash seed: fix it on both sides."""

    def child_environment(self) -> dict[str, str]:
        return {**super().child_environment(), "PYTHONHASHSEED": "0"}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Endpoint, Endpoint]]:
    with SeededMotoServer(stock=True) as stock, SeededMotoServer() as patched:
        yield Endpoint(stock.endpoint), Endpoint(patched.endpoint)


class Generator:
    """Random DynamoDB requests over a small key space, so that writes collide and pages have neighbours."""

    def __init__(self, seed: int, prefix: str) -> None:
        self.random = random.Random(seed)
        self.ranged = f"{prefix}ranged"
        self.hashed = f"{prefix}hashed"
        self.partitions = [f"P{n}" for n in range(6)] + ["a|b%c", "BRK.B"]
        self.statuses = ["active", "inactive", "new"]

    # values -------------------------------------------------------------------------------------------------
    def number(self) -> str:
        r = self.random
        return r.choice([str(r.randint(-50, 50)), f"{r.uniform(-1000, 1000):.3f}", "0", "1.50", "1e3", "-0.001"])

    def value(self, depth: int = 0) -> dict[str, Any]:
        r = self.random
        kind = r.choice(["S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL"] + (["M", "L"] if depth < 2 else []))
        if kind == "S":
            return {"S": r.choice(["", "x", "héllo", "a" * r.randint(1, 40), "line\nbreak", '"quoted"'])}
        if kind == "N":
            return {"N": self.number()}
        if kind == "B":
            return {"B": base64.b64encode(r.randbytes(r.randint(0, 12))).decode()}
        if kind == "SS":
            return {"SS": sorted({r.choice(["a", "b", "c", "dé", "e"]) for _ in range(r.randint(1, 3))})}
        if kind == "NS":
            return {"NS": sorted({str(r.randint(0, 9)) for _ in range(r.randint(1, 3))})}
        if kind == "BS":
            return {"BS": sorted({base64.b64encode(bytes([r.randint(0, 255)])).decode() for _ in range(2)})}
        if kind == "BOOL":
            return {"BOOL": r.random() < 0.5}
        if kind == "NULL":
            return {"NULL": True}
        if kind == "M":
            return {"M": {f"k{n}": self.value(depth + 1) for n in range(r.randint(0, 3))}}
        return {"L": [self.value(depth + 1) for _ in range(r.randint(0, 3))]}

    def ranged_key(self) -> dict[str, Any]:
        sk = self.random.randint(0, 24)
        # "3" and "3.0" name the same item: moto must treat them alike in both builds.
        text = f"{sk}.0" if self.random.random() < 0.05 else str(sk)
        return {"pk": {"S": self.random.choice(self.partitions)}, "sk": {"N": text}}

    def hashed_key(self) -> dict[str, Any]:
        return {"id": {"S": f"id{self.random.randint(0, 30)}"}}

    def ranged_item(self) -> dict[str, Any]:
        r = self.random
        item = self.ranged_key()
        if r.random() < 0.8:
            item["status"] = {"S": r.choice(self.statuses)}
        if r.random() < 0.8:
            item["due"] = {"N": str(r.randint(0, 40))}
        if r.random() < 0.6:
            item["kind"] = {"S": r.choice(["stock", "etf"])}
        for n in range(r.randint(0, 5)):
            item[f"a{n}"] = self.value()
        if r.random() < 0.3:
            item["blob"] = {"B": base64.b64encode(r.randbytes(20)).decode()}
        return item

    def hashed_item(self) -> dict[str, Any]:
        item = self.hashed_key()
        for n in range(self.random.randint(0, 4)):
            item[f"a{n}"] = self.value()
        return item

    def table_and_key(self) -> tuple[str, dict[str, Any]]:
        if self.random.random() < 0.75:
            return self.ranged, self.ranged_key()
        return self.hashed, self.hashed_key()

    def item_for(self, table: str) -> dict[str, Any]:
        return self.ranged_item() if table == self.ranged else self.hashed_item()

    # requests -----------------------------------------------------------------------------------------------
    def setup(self) -> list[tuple[str, dict[str, Any]]]:
        stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        return [
            (
                "CreateTable",
                {
                    "TableName": self.ranged,
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "AttributeDefinitions": [
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "N"},
                        {"AttributeName": "status", "AttributeType": "S"},
                        {"AttributeName": "due", "AttributeType": "N"},
                        {"AttributeName": "kind", "AttributeType": "S"},
                    ],
                    "GlobalSecondaryIndexes": [
                        {
                            "IndexName": "byStatus",
                            "KeySchema": [
                                {"AttributeName": "status", "KeyType": "HASH"},
                                {"AttributeName": "due", "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a0", "blob"]},
                        },
                        {
                            "IndexName": "byKind",
                            "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "KEYS_ONLY"},
                        },
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                    "StreamSpecification": stream,
                },
            ),
            (
                "CreateTable",
                {
                    "TableName": self.hashed,
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                    "StreamSpecification": stream,
                },
            ),
        ]

    def condition(self) -> dict[str, Any]:
        r = self.random
        choice = r.randint(0, 3)
        if choice == 0:
            return {}
        if choice == 1:
            return {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": "a0"}}
        if choice == 2:
            return {"ConditionExpression": "attribute_exists(a1)"}
        return {
            "ConditionExpression": "attribute_not_exists(a2) OR a2 <> :v",
            "ExpressionAttributeValues": {":v": self.value()},
        }

    def update(self, table: str, key: dict[str, Any]) -> dict[str, Any]:
        r = self.random
        expression = r.choice(
            [
                ("SET a0 = :v, #n = if_not_exists(#n, :one)", {":v": self.value(), ":one": {"N": "1"}}),
                ("SET a1 = :v REMOVE a2", {":v": self.value()}),
                ("ADD counter :one", {":one": {"N": self.number()}}),
                ("SET #n = :one, due = :due", {":one": {"N": "7"}, ":due": {"N": str(r.randint(0, 40))}}),
                ("SET #s = :s", {":s": {"S": r.choice(self.statuses)}}),
                ("REMOVE a0, a3", {}),
            ]
        )
        request: dict[str, Any] = {"TableName": table, "Key": key, "UpdateExpression": expression[0]}
        names = {name: value for name, value in (("#n", "n"), ("#s", "status")) if name in expression[0]}
        if names:
            request["ExpressionAttributeNames"] = names
        if expression[1]:
            request["ExpressionAttributeValues"] = expression[1]
        return request

    def transaction(self) -> dict[str, Any]:
        r = self.random
        actions: list[dict[str, Any]] = []
        keys: set[str] = set()
        for _ in range(r.randint(1, 4)):
            table, key = self.table_and_key()
            if json.dumps([table, key]) in keys and r.random() < 0.9:
                continue  # a repeated key makes moto refuse the whole call: rare on purpose
            keys.add(json.dumps([table, key]))
            kind = r.choice(["Put", "Update", "Delete", "ConditionCheck"])
            if kind == "Put":
                item = self.item_for(table)
                item.update(key)
                action = {"TableName": table, "Item": item, **self.condition()}
            elif kind == "Update":
                action = self.update(table, key)
                if r.random() < 0.3:
                    action["ConditionExpression"] = "attribute_exists(a0)"
            elif kind == "Delete":
                action = {"TableName": table, "Key": key, **self.condition()}
            else:
                action = {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(a0)"}
            if "ConditionExpression" in action and r.random() < 0.5:
                action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            actions.append({kind: action})
        return {"TransactItems": actions}

    def projection(self, table: str | None = None) -> dict[str, Any]:
        """A ProjectionExpression (or none): top-level names, which the patch projects itself, missing names among
        them, and nested paths and list indexes, which moto projects."""
        r = self.random
        if r.random() < 0.45:
            return {}
        if table == self.hashed:
            return {"ProjectionExpression": r.choice(["id, a0, a2", "a1, a3", "a0"])}
        return r.choice(
            [
                {"ProjectionExpression": "#p, sk, a0, a1.k0", "ExpressionAttributeNames": {"#p": "pk"}},
                {"ProjectionExpression": "a0, #s, due, a3", "ExpressionAttributeNames": {"#s": "status"}},
                {"ProjectionExpression": "a2, pk, blob, kind, a4, #c", "ExpressionAttributeNames": {"#c": "counter"}},
                {"ProjectionExpression": "a1[0], a0"},
                {"ProjectionExpression": "sk, a0, a1, a2, a3, a4, #n", "ExpressionAttributeNames": {"#n": "n"}},
            ]
        )

    def with_projection(self, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` with a projection added (its attribute names merged with the request's own)."""
        extra = self.projection(request.get("TableName"))
        if extra:
            request["ProjectionExpression"] = extra["ProjectionExpression"]
            names = {**request.get("ExpressionAttributeNames", {}), **extra.get("ExpressionAttributeNames", {})}
            if names:
                request["ExpressionAttributeNames"] = names
        return request

    def query(self) -> dict[str, Any]:
        r = self.random
        request: dict[str, Any] = {"TableName": self.ranged, "ScanIndexForward": r.random() < 0.6}
        index = r.choice([None, None, "byStatus", "byKind"])
        if index is None:
            request["KeyConditionExpression"] = "pk = :h"
            values = {":h": {"S": r.choice(self.partitions)}}
            bound = r.choice(["", " AND sk > :lo", " AND sk BETWEEN :lo AND :hi", " AND sk <= :hi"])
            request["KeyConditionExpression"] += bound
            if ":lo" in bound:
                values[":lo"] = {"N": str(r.randint(0, 12))}
            if ":hi" in bound:
                values[":hi"] = {"N": str(r.randint(12, 24))}
        elif index == "byStatus":
            request["IndexName"] = index
            request["KeyConditionExpression"] = "#s = :h" + r.choice(["", " AND due >= :lo"])
            request["ExpressionAttributeNames"] = {"#s": "status"}
            values = {":h": {"S": r.choice(self.statuses)}}
            if ":lo" in request["KeyConditionExpression"]:
                values[":lo"] = {"N": str(r.randint(0, 30))}
        else:
            request["IndexName"] = index
            request["KeyConditionExpression"] = "kind = :h"
            values = {":h": {"S": r.choice(["stock", "etf"])}}
        if r.random() < 0.3:
            request["FilterExpression"] = "attribute_exists(a0)"
        request["ExpressionAttributeValues"] = values
        self.with_projection(request)
        if r.random() < 0.7:
            request["Limit"] = r.choice([1, 4, 20])
        if r.random() < 0.2:
            request["Select"] = "COUNT"
            request.pop("ProjectionExpression", None)
            used = request["KeyConditionExpression"] + request.get("FilterExpression", "")
            names = {k: v for k, v in request.pop("ExpressionAttributeNames", {}).items() if k in used}
            if names:
                request["ExpressionAttributeNames"] = names
        return request

    def scan(self) -> dict[str, Any]:
        r = self.random
        request: dict[str, Any] = {"TableName": r.choice([self.ranged, self.ranged, self.hashed])}
        if request["TableName"] == self.ranged and r.random() < 0.3:
            request["IndexName"] = r.choice(["byStatus", "byKind"])
        if r.random() < 0.4:
            total = r.choice([2, 3, 4])
            request.update(Segment=r.randrange(total), TotalSegments=total)
        if r.random() < 0.6:
            request["Limit"] = r.choice([2, 9, 40])
        if r.random() < 0.3:
            request["FilterExpression"] = "attribute_type(a0, :t)"
            request["ExpressionAttributeValues"] = {":t": {"S": r.choice(["S", "N", "M", "B"])}}
        if r.random() < 0.3 and "IndexName" not in request:
            request["ProjectionExpression"] = "a0, a1, a4"
        elif r.random() < 0.4:
            self.with_projection(request)
        return request

    def next_request(self) -> tuple[str, dict[str, Any]]:
        r = self.random
        roll = r.random()
        if roll < 0.2:
            table = r.choice([self.ranged, self.ranged, self.hashed])
            request = {"TableName": table, "Item": self.item_for(table), **self.condition()}
            if r.random() < 0.3:
                request["ReturnValues"] = "ALL_OLD"
            return "PutItem", request
        if roll < 0.3:
            writes: dict[str, list[dict[str, Any]]] = {}
            seen: set[str] = set()
            for _ in range(r.randint(1, 25)):
                table, key = self.table_and_key()
                if json.dumps([table, key]) in seen:
                    continue
                seen.add(json.dumps([table, key]))
                if r.random() < 0.75:
                    item = self.item_for(table)
                    item.update(key)
                    writes.setdefault(table, []).append({"PutRequest": {"Item": item}})
                else:
                    writes.setdefault(table, []).append({"DeleteRequest": {"Key": key}})
            return "BatchWriteItem", {"RequestItems": writes}
        if roll < 0.4:
            table, key = self.table_and_key()
            request = self.update(table, key)
            request["ReturnValues"] = r.choice(["NONE", "ALL_NEW", "UPDATED_OLD", "ALL_OLD"])
            if r.random() < 0.2:
                request["ConditionExpression"] = "attribute_exists(a0)"
            return "UpdateItem", request
        if roll < 0.45:
            table, key = self.table_and_key()
            return "DeleteItem", {"TableName": table, "Key": key, "ReturnValues": "ALL_OLD", **self.condition()}
        if roll < 0.55:
            return "TransactWriteItems", self.transaction()
        if roll < 0.62:
            table, key = self.table_and_key()
            request = {"TableName": table, "Key": key, "ConsistentRead": r.random() < 0.5}
            return "GetItem", self.with_projection(request)
        if roll < 0.68:
            items: dict[str, dict[str, Any]] = {}
            seen = set()
            for _ in range(r.randint(1, 30)):
                table, key = self.table_and_key()
                if json.dumps([table, key]) not in seen:
                    seen.add(json.dumps([table, key]))
                    items.setdefault(table, {"Keys": []})["Keys"].append(key)
            for table, request in items.items():
                projection = self.projection(table)
                request.update(projection)
            return "BatchGetItem", {"RequestItems": items}
        if roll < 0.86:
            return "Query", self.query()
        return "Scan", self.scan()


#: Pages followed per Query or Scan: enough to cross partitions and index keys, few enough for CI.
MAX_PAGES = 12


def _pages(target: str, request: dict[str, Any], endpoint: Endpoint) -> list[tuple[int, dict[str, str], bytes]]:
    """A Query or Scan followed page by page (each server follows its own LastEvaluatedKey, the same if equal)."""
    responses = []
    page = dict(request)
    for _ in range(MAX_PAGES):
        status, headers, body = endpoint.call(target, page)
        responses.append((status, headers, body))
        last_key = json.loads(body).get("LastEvaluatedKey") if status == 200 else None
        if not last_key:
            break
        page = {**request, "ExclusiveStartKey": last_key}
    return responses


def _stream_records(endpoint: Endpoint, table: str, limit: int = 37) -> list[tuple[int, dict[str, str], bytes]]:
    """Every stream record of ``table`` from the start, in pages of ``limit``, through this server's own
    iterators."""
    description = endpoint.call("DescribeTable", {"TableName": table})
    stream_arn = json.loads(description[2])["Table"]["LatestStreamArn"]
    stream = endpoint.call("DescribeStream", {"StreamArn": stream_arn})
    shard_id = json.loads(stream[2])["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = endpoint.call(
        "GetShardIterator", {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
    )
    responses = [description, stream, iterator]
    shard_iterator = json.loads(iterator[2])["ShardIterator"]
    for _ in range(1000):
        page = endpoint.call("GetRecords", {"ShardIterator": shard_iterator, "Limit": limit})
        responses.append(page)
        decoded = json.loads(page[2])
        if not decoded.get("Records"):
            break
        shard_iterator = decoded["NextShardIterator"]
    return responses


def _assert_same(
    label: str,
    stock: list[tuple[int, dict[str, str], bytes]],
    patched: list[tuple[int, dict[str, str], bytes]],
) -> None:
    assert len(stock) == len(patched), f"{label}: {len(stock)} pages on stock moto, {len(patched)} patched"
    for (stock_status, stock_headers, stock_body), (status, headers, body) in zip(stock, patched, strict=True):
        assert (status, headers) == (stock_status, stock_headers), label
        assert normalised(body) == normalised(stock_body), label


@pytest.mark.parametrize("seed", SEEDS)
def test_patched_server_answers_byte_for_byte_like_stock_moto(
    servers: tuple[Endpoint, Endpoint], table_prefix: str, seed: int
) -> None:
    stock, patched = servers
    generator = Generator(seed, table_prefix)
    compared = 0
    for target, request in generator.setup():
        _assert_same(target, [stock.call(target, request)], [patched.call(target, request)])
    for number in range(OPERATIONS_PER_SEED):
        target, request = generator.next_request()
        label = f"seed {seed} operation {number} {target} {json.dumps(request)[:400]}"
        if target in ("Query", "Scan"):
            stock_responses, patched_responses = _pages(target, request, stock), _pages(target, request, patched)
        else:
            stock_responses, patched_responses = [stock.call(target, request)], [patched.call(target, request)]
        _assert_same(label, stock_responses, patched_responses)
        compared += len(stock_responses)
        if number % 100 == 99:
            for table in (generator.ranged, generator.hashed):
                _assert_same(f"{label} stream", _stream_records(stock, table), _stream_records(patched, table))
    for table in (generator.ranged, generator.hashed):
        for limit in (37, 1000):  # 1,000: the page the local poller reads when behind
            stock_records, patched_records = (
                _stream_records(stock, table, limit),
                _stream_records(patched, table, limit),
            )
            _assert_same(f"seed {seed} stream of {table}, pages of {limit}", stock_records, patched_records)
            compared += len(stock_records)
    # The generator reached what it is meant to exercise: many answers, records among them.
    assert compared > OPERATIONS_PER_SEED


def _asset_like(i: int) -> dict[str, Any]:
    """An assets row as pollen stores it (about 430 bytes), some with the value kinds a projection converts."""
    item: dict[str, Any] = {
        "symbol": {"S": f"S{i:05d}"},
        "lastPollenationDate": {"S": "1970-01-01T00:00:00Z" if i % 3 else f"2026-01-{1 + i % 28:02d}T00:00:00Z"},
        "status": {"S": "active" if i % 10 else "inactive"},
        "volume": {"N": str(1_000 + (i * 7919) % 5_000_000)},
        "name": {"S": f"Company number {i} Incorporated Common Stock"},
        "exchange": {"S": ("NASDAQ", "NYSE", "ARCA", "BATS")[i % 4]},
        "class": {"S": "us_equity"},
        "tradable": {"BOOL": True},
        "marginable": {"BOOL": i % 2 == 0},
        "id": {"S": f"{i:08x}-0000-4000-8000-{i:012x}"},
        "contentHash": {"S": f"{(i * 2654435761) % 2**64:016x}{i:016x}"},
        "lastSyncDate": {"S": "2026-01-01T00:00:00Z"},
        "attributes": {"L": [{"S": "has_options"}] if i % 4 == 0 else []},
        "maintenanceMarginRequirement": {"N": "30"},
    }
    odd = i % 97
    if odd == 1:  # numbers a projection rewrites ("1E+3", "1.5"), and a missing required attribute
        item["volume"] = {"N": ("1e3", "1.50", "-0", "0.000", "12345678901234567890123456789012345678")[i % 5]}
        del item["exchange"]
    elif odd == 2:  # value kinds converted whole
        item["meta"] = {"M": {"k": {"N": "2.0"}, "s": {"SS": ["b", "a"]}, "b": {"B": "AAEC"}}}
        item["class"] = {"NULL": True}
        item["tags"] = {"NS": ["3", "1e1"]}
        item["name"] = {"S": "Société Générale — non-ASCII"}
    return item


#: Projections as pollen's readers send them (``#p`` names), with names missing from every item, and the ones
#: moto projects itself (nested paths, list indexes, a name twice).
ASSET_PROJECTIONS: list[dict[str, Any]] = [
    {
        "ProjectionExpression": "#p0, #p1, #p2, #p3, #p4, #p5, #p6, #p7",
        "ExpressionAttributeNames": {
            f"#p{n}": name
            for n, name in enumerate(
                ["symbol", "lastPollenationDate", "id", "class", "exchange", "status", "volume", "lastSyncDate"]
            )
        },
    },
    {"ProjectionExpression": "volume, tags, meta, #c, absent", "ExpressionAttributeNames": {"#c": "class"}},
    {"ProjectionExpression": "symbol, #n, attributes, tradable", "ExpressionAttributeNames": {"#n": "name"}},
    {"ProjectionExpression": "symbol, meta.k, volume"},
    {"ProjectionExpression": "attributes[0], symbol"},
    {"ProjectionExpression": "symbol, volume, symbol"},
]


def _asset_scans(table: str) -> Iterator[dict[str, Any]]:
    """Projected Scans as pollen sends them (1 and 4 segments, consistent or not) and with Limit, a filter and
    Select COUNT."""
    for projection in ASSET_PROJECTIONS:
        for segments in (1, 4):
            for segment in range(segments):
                request = {"TableName": table, "ConsistentRead": segments == 4, **projection}
                if segments > 1:
                    request.update(Segment=segment, TotalSegments=segments)
                yield request
    first = ASSET_PROJECTIONS[0]
    names = first["ExpressionAttributeNames"]
    yield {"TableName": table, "Limit": 7, **first}
    yield {"TableName": table, "Limit": 2500, "Segment": 1, "TotalSegments": 4, **first}
    yield {
        "TableName": table,
        "FilterExpression": "#p5 = :inactive OR attribute_not_exists(#p4)",
        "ExpressionAttributeValues": {":inactive": {"S": "inactive"}},
        "ProjectionExpression": first["ProjectionExpression"],
        "ExpressionAttributeNames": names,
    }
    yield {
        "TableName": table,
        "Limit": 300,
        "FilterExpression": "tradable = :t",
        "ExpressionAttributeValues": {":t": {"BOOL": True}},
        **ASSET_PROJECTIONS[1],
    }
    yield {"TableName": table, "Select": "COUNT", "Segment": 2, "TotalSegments": 4}


def test_projected_scans_of_asset_shaped_items_answer_like_stock_moto(
    servers: tuple[Endpoint, Endpoint], table_prefix: str
) -> None:
    """Enough assets-shaped items for 1 MB pages: the projected item sizes, page boundaries, LastEvaluatedKey,
    Count and ScannedCount must come out as stock moto's."""
    stock, patched = servers
    table = f"{table_prefix}assetlike"
    create = {
        "TableName": table,
        "KeySchema": [{"AttributeName": "symbol", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "symbol", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    _assert_same("CreateTable", [stock.call("CreateTable", create)], [patched.call("CreateTable", create)])
    items = [_asset_like(i) for i in range(4_000)]  # about 1.3 MB
    for start in range(0, len(items), 25):
        batch = {"RequestItems": {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}}
        _assert_same("BatchWriteItem", [stock.call("BatchWriteItem", batch)], [patched.call("BatchWriteItem", batch)])
    pages: dict[str, int] = {}
    for request in _asset_scans(table):
        stock_pages, patched_pages = _pages("Scan", request, stock), _pages("Scan", request, patched)
        _assert_same(f"Scan {json.dumps(request)[:300]}", stock_pages, patched_pages)
        pages.setdefault(json.dumps(request), len(stock_pages))
    # A whole-table Scan of 4,000 items of ~330 bytes is cut at 1 MB: the page boundary is compared.
    assert pages[json.dumps({"TableName": table, "ConsistentRead": False, **ASSET_PROJECTIONS[0]})] == 2


def test_a_projection_that_outgrows_the_item_limit_fails_like_stock_moto(
    servers: tuple[Endpoint, Endpoint], table_prefix: str
) -> None:
    """An item just under the size limit whose numbers a projection rewrites longer ("1e3" becomes "1E+3"): the
    projected item is too large, and the Scan or Query must fail (or not) as on stock moto."""
    stock, patched = servers
    table = f"{table_prefix}nearlimit"
    create = {
        "TableName": table,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    _assert_same("CreateTable", [stock.call("CreateTable", create)], [patched.call("CreateTable", create)])
    numbers = {f"n{k}": {"N": "1e3"} for k in range(200)}
    numbers_size = sum(len(name) + 3 for name in numbers)
    for key, slack in (("over", 50), ("under", 250)):
        # stored: just under the 405,000-byte limit; projected: 200 bytes more.
        filler = 405_000 - slack - numbers_size - len("id") - len(key) - len("big")
        item = {"id": {"S": key}, "big": {"S": "x" * filler}, **numbers}
        _assert_same(
            "PutItem",
            [stock.call("PutItem", {"TableName": table, "Item": item})],
            [patched.call("PutItem", {"TableName": table, "Item": item})],
        )
    projection = "id, big, " + ", ".join(numbers)
    for target, request in (
        ("Scan", {"TableName": table, "ProjectionExpression": projection}),
        ("Scan", {"TableName": table, "ProjectionExpression": "id, n0, n1"}),
        (
            "Query",
            {
                "TableName": table,
                "KeyConditionExpression": "id = :k",
                "ExpressionAttributeValues": {":k": {"S": "under"}},
                "ProjectionExpression": projection,
            },
        ),
        (
            "Query",
            {
                "TableName": table,
                "KeyConditionExpression": "id = :k",
                "ExpressionAttributeValues": {":k": {"S": "over"}},
                "ProjectionExpression": projection,
            },
        ),
    ):
        _assert_same(
            f"{target} {json.dumps(request)[:200]}", [stock.call(target, request)], [patched.call(target, request)]
        )
