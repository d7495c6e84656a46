"""`pollen dead-letters replay` drains the SQS dead-letter queue (moto's server over HTTP) into the tables and the
search index, as a user replays what the Lambda functions could not write."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import SqsDeadLetters
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.ports import STREAM_RECORD
from pollen.tables import COMPANY_OVERVIEW, CONTROL, EARNINGS
from tests.conftest import run_pollen
from tests.unit.test_stream_handler import SEQ, lambda_record, overview

pytestmark = pytest.mark.integration


def earnings_item(symbol: str, eps: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "fiscalPeriod": "ANNUAL#2024-12-31",
        "reportedEPS": Decimal(eps),
        "lastSyncDate": "2026-01-01T00:00:00Z",
        **extra,
    }


def test_replay_puts_items_deletes_keys_and_indexes_records(
    endpoint: str, dynamodb: Any, table_prefix: str, pollen_env: dict[str, str]
) -> None:
    ensure_tables(dynamodb, table_prefix, (EARNINGS, COMPANY_OVERVIEW, CONTROL))
    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{table_prefix}write-dlq")["QueueUrl"]
    doomed = {"symbol": {"S": "GONE"}, "fiscalPeriod": {"S": "ANNUAL#2024-12-31"}}
    dynamodb.put_item(TableName=f"{table_prefix}earnings", Item=doomed)
    items = [earnings_item(f"S{i}", f"1.{i}") for i in range(12)]
    items.append(earnings_item("BIG", "12345678901234567890.123", notes="guidance raised; " * 20_000))
    writer = SqsDeadLetters(url, client=sqs)
    writer.put_many("earnings", [(item, "ProvisionedThroughputExceeded") for item in items])
    writer.put("earnings.deletes", {"symbol": "GONE", "fiscalPeriod": "ANNUAL#2024-12-31"}, "deadline reached")
    records = SqsDeadLetters(url, client=sqs, kind=STREAM_RECORD)
    record = lambda_record(
        "INSERT", SEQ + 1, f"{table_prefix}companyOverview", {"symbol": "IBM"}, new=overview("IBM", "IBM")
    )
    records.put("companyOverview", record, "503 from the index")

    env = {**pollen_env, "AWS_ENDPOINT_URL_SQS": endpoint}
    done = run_pollen("dead-letters", "replay", "--queue-url", url, "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["received"] == 15 and report["left_on_queue"] == 0
    assert (report["items_replayed"], report["keys_deleted"], report["records_replayed"]) == (13, 1, 1)

    table = make_client("dynamodb", endpoint_url=endpoint)
    scanned = table.scan(TableName=f"{table_prefix}earnings")["Items"]
    assert sorted(i["symbol"]["S"] for i in scanned) == sorted(i["symbol"] for i in items)
    big = next(i for i in scanned if i["symbol"]["S"] == "BIG")
    assert big["reportedEPS"]["N"] == "12345678901234567890.123"
    index = EmbeddedSearchIndex.in_home(Path(pollen_env["POLLEN_HOME"]))
    assert (index.get("companyOverview", "IBM") or {}).get("Name") == "IBM"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_replay_without_a_queue_is_a_usage_error(pollen_env: dict[str, str]) -> None:
    done = run_pollen("dead-letters", "replay", env=pollen_env)
    assert done.returncode == 2 and "POLLEN_DEAD_LETTER_QUEUE_URL" in done.stderr
