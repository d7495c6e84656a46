"""Dead letters to SQS (moto's server over HTTP): bodies are `pollen load` lines, refusals fall back to a file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.codec import loads_plain
from pollen.adapters.dynamodb.deadletters import JsonlDeadLetters, SqsDeadLetters, read_dead_letter_file
from pollen.errors import ConfigError

pytestmark = pytest.mark.integration


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


def test_a_dead_letter_folder_that_cannot_be_written_is_a_configuration_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where POLLEN_HOME should be a folder")
    sink = JsonlDeadLetters(home / "dead-letters", run_id="r1")
    with pytest.raises(ConfigError, match="POLLEN_HOME") as caught:
        sink.put("assets", {"symbol": "IBM", "lastPollenationDate": "1970-01-01T00:00:00Z"}, "throttled")
    assert caught.value.exit_code == 2 and "1 assets dead letters not kept" in str(caught.value)
