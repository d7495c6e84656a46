"""Errors from AWS calls name the service actually called (an unreachable SQS endpoint is not "DynamoDB")."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.sqs import SqsQueue
from pollen.errors import PollenError, ServiceUnavailable
from pollen.streams.poller import StreamPoller, StreamSource
from pollen.tables import STREAMED_TABLES


@pytest.fixture
def closed_endpoint() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_queue_is_reported_as_sqs(closed_endpoint: str) -> None:
    client = make_client("sqs", endpoint_url=closed_endpoint, connect_timeout_s=1.0)
    queue = SqsQueue(f"{closed_endpoint}/123456789012/pollenate", client=client)
    with pytest.raises(ServiceUnavailable) as caught:  # nothing can be enqueued: the run fails (exit 2)
        queue.send([{"symbol": "IBM"}])
    message = str(caught.value)
    assert message.startswith("SendMessageBatch: cannot reach SQS at")
    assert "connection refused" in message
    assert "DynamoDB" not in message


def test_an_unreachable_stream_endpoint_is_reported_as_dynamodb_streams(closed_endpoint: str) -> None:
    client = make_client("dynamodbstreams", endpoint_url=closed_endpoint, connect_timeout_s=1.0)
    sync: Any = None  # never reached: the first call fails
    poller = StreamPoller(client, sync, checkpoints=None, sources=[])  # type: ignore[arg-type]
    with pytest.raises(PollenError) as caught:
        poller.stream_arn(StreamSource(STREAMED_TABLES[0], "assets"))
    assert isinstance(caught.value, ServiceUnavailable)
    assert "cannot reach DynamoDB Streams at" in str(caught.value)


def test_an_unreachable_table_is_still_reported_as_dynamodb(closed_endpoint: str) -> None:
    from botocore.exceptions import EndpointConnectionError

    from pollen.adapters.dynamodb.errors import translate

    client = make_client("dynamodb", endpoint_url=closed_endpoint, connect_timeout_s=1.0)
    with pytest.raises(EndpointConnectionError) as caught:
        client.describe_table(TableName="assets")
    error = translate(caught.value, action="DescribeTable")
    assert str(error).startswith("DescribeTable: cannot reach DynamoDB at")
