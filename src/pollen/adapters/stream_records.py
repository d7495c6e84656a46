"""GetRecords through pollen's lean JSON client, for the local poller against the embedded stack.

Draining a backlog from moto's server, botocore's parsing of GetRecords responses (its model walked in Python for
every attribute value of every image) cost about as much as the server's own answer. Streams speak the same JSON
protocol as DynamoDB under the same signing name, so :class:`~pollen.adapters.dynamodb.wire.WireClient` sends
GetRecords with the Streams target and ``json.loads`` reads the answer. The only shape that differs from boto3's is
binary: JSON carries it base64-encoded, boto3 gives bytes; it is decoded here, so records look as boto3 gives them.
(``ApproximateCreationDateTime`` stays epoch seconds, which the record decoder reads as Lambda's events give it.)
Every other call (ListStreams, DescribeStream, GetShardIterator) stays with boto3's client.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pollen.adapters.dynamodb.wire import WireClient
from pollen.aws import is_loopback

STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."
_IMAGES = ("Keys", "NewImage", "OldImage")


def _b64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return value  # left as given: the record decoder dead-letters it as undecodable


def binary_as_bytes(value: Any) -> Any:
    """One DynamoDB-JSON attribute value with its binary (at any depth) as bytes, as boto3 parses it."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": _b64(inner)}
    if kind == "BS" and isinstance(inner, list):
        return {"BS": [_b64(member) for member in inner]}
    if kind == "M" and isinstance(inner, dict):
        return {"M": {name: binary_as_bytes(member) for name, member in inner.items()}}
    if kind == "L" and isinstance(inner, list):
        return {"L": [binary_as_bytes(member) for member in inner]}
    return value


class WireRecordsClient:
    """A boto3 DynamoDB Streams client whose ``get_records`` goes through a :class:`WireClient`."""

    def __init__(self, client: Any, wire: WireClient) -> None:
        self.client = client
        self.wire = wire

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_records(self, **params: Any) -> dict[str, Any]:
        response = self.wire.call("GetRecords", params)
        for record in response.get("Records", []):
            body = record.get("dynamodb") if isinstance(record, dict) else None
            if not isinstance(body, dict):
                continue
            for image in _IMAGES:
                if isinstance(body.get(image), dict):
                    body[image] = {name: binary_as_bytes(value) for name, value in body[image].items()}
        return response


def records_client(client: Any, *, endpoint_url: str | None, region: str) -> Any:
    """``client`` with GetRecords through the lean JSON client when the endpoint is on this machine (the embedded
    stack); otherwise ``client`` itself (AWS: botocore's endpoint resolution, proxies and TLS settings apply)."""
    if not endpoint_url or not is_loopback(endpoint_url):
        return client
    wire = WireClient(region=region, endpoint_url=endpoint_url, target_prefix=STREAMS_TARGET_PREFIX)
    return WireRecordsClient(client, wire)
