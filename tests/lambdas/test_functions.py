"""Every function of template.yaml, built by ``sam build`` and run the way Lambda runs it, with its triggers' events:
the daily cycle (sync assets, sync earnings, schedule, pollenate) and the stream sync of what it wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from pollen.streams.records import deserialize_image, to_document
from tests.lambdas import harness
from tests.lambdas.harness import LambdaContainer, StackResources
from tests.standins.opensearch import OpenSearchStandIn

pytestmark = [pytest.mark.aws_lambda, pytest.mark.timeout(1800)]

Start = Callable[..., LambdaContainer]


def assert_no_secret(box: LambdaContainer, secret_value: dict[str, str]) -> None:
    output = box.output()
    assert '"level":"INFO"' in output, f"{box.logical}: no log lines: the check below would prove little"
    leaked = [name for name, value in secret_value.items() if value in output]
    assert not leaked, f"{box.logical} printed {leaked}"


def assert_index_mirrors_table(opensearch: OpenSearchStandIn, aws: StackResources, logical: str) -> None:
    """The stand-in's index of a table holds exactly the table's items, as documents."""

    def canonical(document: Any) -> str:
        return json.dumps(document, sort_keys=True)

    expected = sorted(canonical(to_document(deserialize_image(item))) for item in aws.scan(logical))
    documents = opensearch.documents(aws.refs[logical].lower()).values()
    indexed = sorted(canonical(d["doc"]) for d in documents if not d["pollen"]["deleted"])
    assert indexed == expected, f"{logical}: {len(indexed)} documents for {len(expected)} items"


def test_without_an_opensearch_endpoint_stream_sync_is_not_part_of_the_stack() -> None:
    template = harness.load_template()
    without = StackResources(template, "", {})
    with_endpoint = StackResources(template, "", {}, {"OpenSearchEndpoint": "https://search.example"})
    conditioned = {logical for logical, r in template["Resources"].items() if r.get("Condition") == "HasOpenSearch"}
    assert {"StreamSyncFunction", "StreamSyncRole"} <= conditioned
    assert not conditioned & set(without.resources())
    assert conditioned <= set(with_endpoint.resources())


def test_the_daily_cycle_and_the_stream_sync_in_lambda_containers(
    container: Start, aws: StackResources, secret_value: dict[str, str], opensearch: OpenSearchStandIn
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

    # StreamSync: the three tables' stream records (GetRecords), in batches of the mapping's BatchSize, signed with
    # the container's credentials and accepted by the signature-checking OpenSearch stand-in.
    stream_sync = container("StreamSyncFunction")
    streams = aws.client("dynamodbstreams")
    for logical, event in stream_sync.config["Events"].items():
        if event["Type"] != "DynamoDB":
            continue
        stream_logical = event["Properties"]["Stream"]["Fn::GetAtt"][0]
        records = harness.stream_records(streams, aws.attributes[(stream_logical, "StreamArn")])
        size = int(event["Properties"]["BatchSize"])
        assert records, logical
        for start in range(0, len(records), size):
            response = stream_sync.result({"Records": records[start : start + size]})
            assert response == {"batchItemFailures": []}, response
        assert_index_mirrors_table(opensearch, aws, stream_logical)
    assert opensearch.refused == 0
    assert all(request.signed for request in opensearch.domain.requests)
    assert_no_secret(stream_sync, secret_value)

    # The purge schedule: EventBridge sends the rule's constant Input as the event. A tombstone older than the
    # retention goes, a recent one and the live documents stay.
    purge_event = json.loads(stream_sync.config["Events"]["PurgeTombstones"]["Properties"]["Input"])
    index = aws.refs["AssetsTable"].lower()
    live = opensearch.documents(index)
    now_ms = int(time.time() * 1000)
    for doc_id, age_h in (("OLD-TOMBSTONE", 72), ("NEW-TOMBSTONE", 1)):
        tombstone = {"doc": None, "pollen": {"deleted": True, "updated_at": now_ms - age_h * 3_600_000}}
        opensearch.put_document(index, doc_id, tombstone)
    assert stream_sync.result(purge_event) == {"purged": 1}
    assert set(opensearch.documents(index)) == set(live) | {"NEW-TOMBSTONE"}
    assert stream_sync.result(purge_event) == {"purged": 0}

    for box in (sync_assets, sync_earnings, schedule, pollenate, stream_sync):
        assert box.import_s is not None
