"""Dead letters to SQS (moto's server over HTTP): bodies are `pollen load` lines, messages within SQS's size limit,
refused sends retried, and with no fallback (Lambda) a send that still fails raises instead of losing them."""

from __future__ import annotations

import base64
import gzip
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import (
    GZIP_BASE64,
    SQS_MESSAGE_LIMIT,
    JsonlDeadLetters,
    SqsDeadLetters,
    read_dead_letter_file,
)
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.codec import loads_plain
from pollen.backoff import Backoff
from pollen.errors import ConfigError, DeadLettersLost
from pollen.observability import MetricsRecorder
from pollen.settings import load_settings
from pollen.tables import EARNINGS
from pollen.wiring import build_store
from tests.standins.sqs import FlakySqs

pytestmark = pytest.mark.integration


def upper_bound(_low: float, high: float) -> float:
    """The jitter's upper bound: the waits are the backoff's ceilings."""
    return high


def _receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
        if not got:
            return messages
        messages += got
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )


def test_items_arrive_exactly_with_table_and_reason(endpoint: str, table_prefix: str, tmp_path: Path) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    sink = SqsDeadLetters(url, client=sqs, fallback=JsonlDeadLetters(tmp_path))
    items = [
        {"symbol": f"S{i}", "fiscalPeriod": "ANNUAL#2024-12-31", "totalRevenue": Decimal("12345678901234567890.12")}
        for i in range(23)
    ]
    sink.put_many("cashFlow", [(item, "ValidationException: bad") for item in items])
    sink.put("cashFlow", {"symbol": "ONE", "fiscalPeriod": "QUARTERLY#2024-09-30"}, "deadline reached")
    received = _receive_all(sqs, url)
    assert sink.sent == 24 and len(received) == 24
    bodies = sorted((loads_plain(m["Body"]) for m in received), key=lambda i: i["symbol"])
    assert {b["symbol"] for b in bodies} == {*(f"S{i}" for i in range(23)), "ONE"}
    assert all(b["totalRevenue"] == Decimal("12345678901234567890.12") for b in bodies if b["symbol"] != "ONE")
    assert {m["MessageAttributes"]["table"]["StringValue"] for m in received} == {"cashFlow"}
    assert "deadline reached" in {m["MessageAttributes"]["reason"]["StringValue"] for m in received}
    assert not list(tmp_path.rglob("*.jsonl"))  # nothing needed the fallback


def test_a_refused_send_falls_back_to_the_local_file(endpoint: str, table_prefix: str, tmp_path: Path) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    missing = f"{endpoint}/123456789012/{table_prefix}no-such-queue"
    fallback = JsonlDeadLetters(tmp_path, run_id="r1")
    sink = SqsDeadLetters(missing, client=sqs, fallback=fallback)
    sink.put("assets", {"symbol": "IBM", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "throttled")
    header, dead = read_dead_letter_file(fallback.path_for("assets"))
    assert header == ("put", "assets") and [item["symbol"] for item in dead] == ["IBM"]
    assert sink.sent == 0


def _message_size(message: dict[str, Any]) -> int:
    attrs = message.get("MessageAttributes", {})
    return len(message["Body"].encode()) + sum(
        len(k.encode()) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in attrs.items()
    )


def test_messages_and_batches_stay_within_the_sqs_limit(endpoint: str, table_prefix: str) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    spy = FlakySqs(sqs, fail_calls=0)
    sink = SqsDeadLetters(url, client=spy, sleep=lambda _: None)
    rng = random.Random(7)
    # 60 KB items: four fit in one call; a 390 KB item (DynamoDB's limit is 400 KB) only compressed
    medium = [{"symbol": f"M{i}", "blob": "".join(rng.choices("ABCDEFGHIJ", k=60_000))} for i in range(9)]
    huge = {"symbol": "HUGE", "fiscalPeriod": "ANNUAL#2024", "notes": "revenue up; " * 32_500}
    sink.put_many("earnings", [(item, "x" * 5000) for item in [*medium, huge]])
    received = _receive_all(sqs, url)
    assert sink.sent == 10 and len(received) == 10
    for call in spy.calls:
        sizes = [len(e["MessageBody"].encode()) + 2000 for e in call]
        assert len(call) <= 10 and sum(sizes) <= SQS_MESSAGE_LIMIT + 2000 * len(call)
    assert all(_message_size(m) <= SQS_MESSAGE_LIMIT for m in received)
    assert len(spy.calls) >= 3  # the nine medium items could not go in one call
    (big,) = [m for m in received if m["MessageAttributes"].get("encoding")]
    assert big["MessageAttributes"]["encoding"]["StringValue"] == GZIP_BASE64
    assert loads_plain(gzip.decompress(base64.b64decode(big["Body"])).decode()) == huge
    assert all(len(m["MessageAttributes"]["reason"]["StringValue"]) == 1000 for m in received)


def test_partial_batch_failures_are_sent_again_with_backoff(endpoint: str, table_prefix: str) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    flaky = FlakySqs(sqs, fail_calls=2, fail_ids={"1", "4"})
    delays: list[float] = []
    sink = SqsDeadLetters(url, client=flaky, sleep=delays.append, backoff=Backoff(base_s=0.1, uniform=upper_bound))
    items = [{"symbol": f"S{i}", "fiscalPeriod": "ANNUAL#2024-12-31"} for i in range(6)]
    sink.put_many("cashFlow", [(item, "throttled") for item in items])
    assert sorted(loads_plain(m["Body"])["symbol"] for m in _receive_all(sqs, url)) == [f"S{i}" for i in range(6)]
    assert delays == [0.1, 0.2] and sink.sent == 6 and sink.retries == 3  # 2 refused, then 1 of those again


def test_a_throttled_call_is_retried(endpoint: str, table_prefix: str) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    sink = SqsDeadLetters(url, client=FlakySqs(sqs, fail_calls=1, error="ThrottlingException"), sleep=lambda _: None)
    sink.put("assets", {"symbol": "IBM", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "x")
    assert [loads_plain(m["Body"])["symbol"] for m in _receive_all(sqs, url)] == ["IBM"]


def test_without_a_fallback_a_send_that_keeps_failing_raises(endpoint: str, table_prefix: str, tmp_path: Path) -> None:
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    flaky = FlakySqs(sqs, fail_calls=99)
    sink = SqsDeadLetters(url, client=flaky, sleep=lambda _: None, backoff=Backoff(max_attempts=3))
    with pytest.raises(DeadLettersLost, match="2 dead letters could not be sent") as lost:
        sink.put_many("assets", [({"symbol": "A"}, "x"), ({"symbol": "B"}, "y")])
    assert lost.value.transient and len(flaky.calls) == 3
    missing = SqsDeadLetters(f"{endpoint}/123456789012/{table_prefix}no-such-queue", client=sqs)
    with pytest.raises(DeadLettersLost, match="NonExistentQueue"):
        missing.put("assets", {"symbol": "IBM"}, "x")
    assert not list(tmp_path.rglob("*"))  # nothing went to a local file


def test_the_lambda_store_has_no_local_fallback(
    endpoint: str, dynamodb: Any, table_prefix: str, tmp_path: Path
) -> None:
    ensure_tables(dynamodb, table_prefix, (EARNINGS,))
    common = {
        "dynamodb_endpoint": endpoint,
        "table_prefix": table_prefix,
        "home": str(tmp_path / "tmp-pollen"),
    }
    with pytest.raises(ConfigError, match="POLLEN_DEAD_LETTER_QUEUE_URL"):
        build_store(load_settings(**common), MetricsRecorder(), durable_dead_letters=True)
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    bad = [{"symbol": "S2", "period": "annual"}, {"symbol": "S3", "fiscalPeriod": "Q", "blob": "x" * 410_000}]
    settings = load_settings(**common, dead_letter_queue_url=url)
    with build_store(settings, MetricsRecorder(), durable_dead_letters=True) as store:
        sink = store.dead_letters
        assert isinstance(sink, SqsDeadLetters) and sink.fallback is None
        sink.client = make_client("sqs", endpoint_url=endpoint)  # the process has no AWS_ENDPOINT_URL_SQS here
        assert store.upsert("earnings", bad).invalid == 2
        assert sorted(loads_plain(_body(m))["symbol"] for m in _receive_all(sqs, url)) == ["S2", "S3"]
        sink.client = FlakySqs(sink.client, fail_calls=99)
        sink.backoff = sink.backoff.waiting_with(lambda _: None)
        with pytest.raises(DeadLettersLost):  # the invocation fails: its event source retries it
            store.upsert("earnings", bad)
    assert not (tmp_path / "tmp-pollen").exists()  # nothing under "/tmp"


def _body(message: dict[str, Any]) -> str:
    if message.get("MessageAttributes", {}).get("encoding", {}).get("StringValue") == GZIP_BASE64:
        return gzip.decompress(base64.b64decode(message["Body"])).decode()
    return str(message["Body"])


def test_a_dead_letter_folder_that_cannot_be_written_is_a_configuration_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where POLLEN_HOME should be a folder")
    sink = JsonlDeadLetters(home / "dead-letters", run_id="r1")
    with pytest.raises(ConfigError, match="POLLEN_HOME") as caught:
        sink.put("assets", {"symbol": "IBM", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "throttled")
    assert caught.value.exit_code == 2 and "1 assets dead letters not kept" in str(caught.value)
