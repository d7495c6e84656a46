"""Every function of template.yaml, built by ``sam build`` and run the way Lambda runs it, with its triggers' events:
the daily cycle (sync assets, sync earnings, schedule, pollenate) and the stream sync of what it wrote."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable

import pytest

from pollen.adapters.search.embedded import INDEX_FILE
from tests.lambdas import harness
from tests.lambdas.harness import LambdaContainer, StackResources

pytestmark = [pytest.mark.aws_lambda, pytest.mark.timeout(1800)]

Start = Callable[[str], LambdaContainer]


def assert_no_secret(box: LambdaContainer, secret_value: dict[str, str]) -> None:
    output = box.output()
    assert '"level":"INFO"' in output, f"{box.logical}: no log lines: the check below would prove little"
    leaked = [name for name, value in secret_value.items() if value in output]
    assert not leaked, f"{box.logical} printed {leaked}"


def test_the_daily_cycle_and_the_stream_sync_in_lambda_containers(
    container: Start, aws: StackResources, secret_value: dict[str, str]
) -> None:
    # SyncAssets: the daily EventBridge schedule, twice in one warm container (the second run writes nothing).
    sync_assets = container("SyncAssetsFunction")
    first = sync_assets.result(harness.scheduled_event("sync-assets-daily"))
    assert first["ok"] and first["written"] > 100, first
    again = sync_assets.result(harness.scheduled_event("sync-assets-daily"))
    assert again["ok"] and again["written"] == 0 and again["unchanged"] == first["written"], again
    assert len(aws.scan("AssetsTable")) == first["written"]
    assert_no_secret(sync_assets, secret_value)

    # SyncEarningsCalendar: its schedule passes no horizon (the default applies), twice.
    sync_earnings = container("SyncEarningsFunction")
    calendar = sync_earnings.result(harness.scheduled_event("sync-earnings-daily"))
    assert calendar["ok"] and calendar["written"] > 0, calendar
    assert sync_earnings.result(harness.scheduled_event("sync-earnings-daily"))["written"] == 0
    assert len(aws.scan("EarningsCalendarTable")) == calendar["written"]
    assert_no_secret(sync_earnings, secret_value)

    # The scheduler enqueues PollenateBatchPerRun symbols per run (the template's parameter, through its variable).
    batch = int(aws.parameters["PollenateBatchPerRun"])
    schedule = container("SchedulePollenationFunction")
    assert schedule.result(harness.scheduled_event("schedule-pollenation"))["enqueued"] == batch
    assert schedule.result(harness.scheduled_event("schedule-pollenation"))["enqueued"] == batch
    messages = aws.receive_all("PollenateQueue")
    assert len(messages) == 2 * batch
    symbols = {json.loads(m["Body"])["symbol"] for m in messages}

    # PollenateAsset: SQS batches of one (the mapping's BatchSize) from the queue the scheduler filled, then a
    # direct invocation; messages it processed are deleted, as the event source mapping does.
    def pollenation_dates() -> dict[str, str]:
        return {item["symbol"]["S"]: item["lastPollenationDate"]["S"] for item in aws.scan("AssetsTable")}

    before = pollenation_dates()
    pollenate = container("PollenateFunction")
    queue_arn = aws.attributes[("PollenateQueue", "Arn")]
    sqs = aws.client("sqs")
    for message in messages[:3]:
        response = pollenate.result(harness.sqs_event([message], queue_arn))
        assert response == {"batchItemFailures": []}, response
        sqs.delete_message(QueueUrl=aws.refs["PollenateQueue"], ReceiptHandle=message["ReceiptHandle"])
    direct_symbol = sorted(symbols - {json.loads(m["Body"])["symbol"] for m in messages[:3]})[0]
    direct = pollenate.result({"symbol": direct_symbol})
    assert direct["ok"], direct
    overviews = {item["symbol"]["S"] for item in aws.scan("CompanyOverviewTable")}
    pollenated = {json.loads(m["Body"])["symbol"] for m in messages[:3]} | {direct_symbol}
    after = pollenation_dates()
    assert {symbol for symbol in pollenated if after[symbol] != before[symbol]} == pollenated  # sort key moved
    assert overviews and overviews <= pollenated  # the simulator has no overview for some symbols
    assert_no_secret(pollenate, secret_value)

    # StreamSync: the three tables' stream records (GetRecords), in batches of the mapping's BatchSize.
    stream_sync = container("StreamSyncFunction")
    streams = aws.client("dynamodbstreams")
    expected: dict[str, int] = {}
    for logical, event in stream_sync.config["Events"].items():
        stream_logical = event["Properties"]["Stream"]["Fn::GetAtt"][0]
        records = harness.stream_records(streams, aws.attributes[(stream_logical, "StreamArn")])
        size = int(event["Properties"]["BatchSize"])
        assert records, logical
        for start in range(0, len(records), size):
            response = stream_sync.result({"Records": records[start : start + size]})
            assert response == {"batchItemFailures": []}, response
        expected[aws.refs[stream_logical]] = len(aws.scan(stream_logical))
    assert_no_secret(stream_sync, secret_value)
    # Documents in the index the function wrote under its /tmp (the seam: an OpenSearch stand-in's own count).
    with contextlib.closing(sqlite3.connect(stream_sync.tmp / "pollen" / INDEX_FILE)) as db:
        counts = dict(db.execute("SELECT tbl, COUNT(*) FROM documents WHERE deleted = 0 GROUP BY tbl").fetchall())
    assert {table: counts.get(table, 0) for table in expected} == expected

    for box in (sync_assets, sync_earnings, schedule, pollenate, stream_sync):
        assert box.import_s is not None
