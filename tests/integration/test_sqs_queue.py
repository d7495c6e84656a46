"""The pollenation queue adapter against moto's SQS over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.sqs import SqsQueue

pytestmark = pytest.mark.integration


def test_messages_are_sent_in_batches_of_ten_and_arrive_as_json(endpoint: str) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"pollenate-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue = SqsQueue(url, client=sqs)
    messages = [{"symbol": f"S{i:02d}", "enqueuedAt": "2026-11-20T12:00:00Z"} for i in range(23)]
    assert queue.send(messages) == []
    received: list[dict[str, str]] = []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        received += [json.loads(m["Body"]) for m in batch]
    assert sorted(m["symbol"] for m in received) == [m["symbol"] for m in messages]


def test_a_missing_queue_names_every_message(endpoint: str) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    queue = SqsQueue(f"{endpoint}/123456789012/missing-{uuid.uuid4().hex[:6]}", client=sqs)
    errors = queue.send([{"symbol": "IBM"}, {"symbol": "MSFT"}])
    assert len(errors) == 2 and errors[0].startswith("IBM: not enqueued")
