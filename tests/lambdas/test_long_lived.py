"""What only a long-lived Lambda container meets: secrets redacted on every warm invocation at DEBUG, a secret
rotated between invocations while the old key is refused upstream, and dead letters that must reach the stack's
SQS queue (or fail the invocation)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pollen.local.simulator.server import SimulatorProcess
from tests.lambdas import harness
from tests.lambdas.harness import LambdaContainer, StackResources
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = [pytest.mark.aws_lambda, pytest.mark.timeout(1200)]

Start = Callable[..., LambdaContainer]


def known_symbols(container: Start, aws: StackResources) -> list[str]:
    """The assets' symbols, synced by SyncAssets first when this module's stack has none yet."""
    if not aws.scan("AssetsTable"):
        assert container("SyncAssetsFunction").result(harness.scheduled_event("sync-assets-daily"))["ok"]
    return sorted(item["symbol"]["S"] for item in aws.scan("AssetsTable"))


def with_overview(simulator: SimulatorProcess, aws: StackResources, symbols: list[str], count: int) -> list[str]:
    """Symbols for which the simulator has an OVERVIEW and the table none yet: pollenating one writes an item."""
    import httpx

    env = simulator.environment()
    found: list[str] = []
    stored = overview_symbols(aws)
    for symbol in (s for s in symbols if s not in stored):
        params = {"function": "OVERVIEW", "symbol": symbol, "apikey": env["ALPHAVANTAGE_API_KEY"]}
        if httpx.get(f"{env['ALPHAVANTAGE_BASE_URL']}/query", params=params).json().get("Symbol"):
            found.append(symbol)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} symbols with an overview")


def overview_symbols(aws: StackResources) -> set[str]:
    return {item["symbol"]["S"] for item in aws.scan("CompanyOverviewTable")}


def pollenation_date(aws: StackResources, symbol: str) -> str:
    (item,) = (item for item in aws.scan("AssetsTable") if item["symbol"]["S"] == symbol)
    return str(item["lastPollenationDate"]["S"])


def log_lines(box: LambdaContainer) -> list[dict[str, Any]]:
    lines = []
    for line in box.output().splitlines():
        if line.startswith("{") and '"level"' in line:
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def restore_keys(aws: StackResources, simulator: SimulatorProcess, secret_value: dict[str, str]) -> Iterator[None]:
    """Puts the module's keys back in the secret and the simulator after a rotation."""
    yield
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["ApiKeysSecret"], SecretString=json.dumps(secret_value)
    )
    simulator.configure(alphavantage_api_key=secret_value["ALPHAVANTAGE_API_KEY"])


def test_secrets_are_redacted_on_every_warm_invocation_and_a_rotated_key_is_picked_up(
    container: Start,
    aws: StackResources,
    simulator: SimulatorProcess,
    secret_value: dict[str, str],
    restore_keys: None,
) -> None:
    symbols = with_overview(simulator, aws, known_symbols(container, aws), 3)
    pollenate = container("PollenateFunction")  # POLLEN_LOG_LEVEL=DEBUG (the harness's container fixture)
    av_key = secret_value["ALPHAVANTAGE_API_KEY"]

    # Two warm invocations; at DEBUG the Alpha Vantage request URLs are logged, the key in them masked each time.
    for symbol in symbols[:2]:
        assert pollenate.result({"symbol": symbol})["ok"]
    requests = [line for line in log_lines(pollenate) if "HTTP Request" in line["message"]]
    assert len({line["correlation_id"] for line in requests}) == 2, "no request log line in each invocation"
    assert all("apikey=***" in line["message"] for line in requests), requests[0]
    assert av_key not in pollenate.output()
    assert symbols[:2] == sorted(overview_symbols(aws) & set(symbols[:2]))

    # Rotation: the secret gets a new key and the old one is refused upstream from now on. The warm container
    # still holds the old key (cached); the refusal makes it read the secret again and retry once.
    rotated = f"rotated-{av_key}"
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["ApiKeysSecret"], SecretString=json.dumps({**secret_value, "ALPHAVANTAGE_API_KEY": rotated})
    )
    simulator.configure(alphavantage_api_key=rotated)
    refused_before = simulator.stats().get("av_bad_key", 0)
    report = pollenate.result({"symbol": symbols[2]})
    assert report["ok"], report
    assert simulator.stats().get("av_bad_key", 0) == refused_before + 1  # the cached key once, then the new one
    assert symbols[2] in overview_symbols(aws)
    output = pollenate.output()
    assert av_key not in output and rotated not in output
    after = [line for line in log_lines(pollenate) if "HTTP Request" in line["message"]][len(requests) :]
    assert after and all("apikey=***" in line["message"] for line in after)


def test_items_that_cannot_be_written_end_on_the_dead_letter_queue_and_fail_the_invocation_when_sqs_refuses(
    container: Start, aws: StackResources, simulator: SimulatorProcess
) -> None:
    symbols = with_overview(simulator, aws, known_symbols(container, aws), 2)
    # DynamoDB refuses every item holding "Sector" (only companyOverview items do) with a ValidationException: a
    # permanent, item-specific error.
    with FaultProxy(aws.endpoint, Faults(poison_attribute="Sector")) as proxy:
        pollenate = container("PollenateFunction", env={"AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint})
        pollenate.result({"symbol": symbols[0]})
        letters = aws.receive_all("WriteDeadLetterQueue")
        assert letters, pollenate.output()[-3000:]
        bodies = [json.loads(m["Body"]) for m in letters]
        assert [b["symbol"] for b in bodies] == [symbols[0]]
        attributes = letters[0]["MessageAttributes"]
        assert attributes["table"]["StringValue"] == aws.refs["CompanyOverviewTable"]
        assert symbols[0] in attributes["reason"]["StringValue"], attributes["reason"]
        assert bodies[0]["Sector"]  # the whole item, as `pollen load` replays it

        # SQS refuses (the queue is gone): the dead letters have no durable place, so the pollenation fails and its
        # trigger's message is reported back (a batch item failure: SQS delivers it again, in the end to the
        # pollenate queue's own dead-letter queue); the asset stays due.
        due_since = pollenation_date(aws, symbols[1])
        sqs = aws.client("sqs")
        sqs.send_message(QueueUrl=aws.refs["PollenateQueue"], MessageBody=json.dumps({"symbol": symbols[1]}))
        (message,) = aws.receive_all("PollenateQueue")
        queue_name = aws.attributes[("WriteDeadLetterQueue", "QueueName")]
        sqs.delete_queue(QueueUrl=aws.refs["WriteDeadLetterQueue"])
        try:
            response = pollenate.result(harness.sqs_event([message], aws.attributes[("PollenateQueue", "Arn")]))
            direct = pollenate.invoke({"symbol": symbols[1]})
        finally:
            sqs.create_queue(QueueName=queue_name)
        assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}, response
        # A direct invocation fails outright: whoever invoked it learns that nothing was kept.
        assert direct.get("error") == "DeadLettersLost", direct
        assert pollenation_date(aws, symbols[1]) == due_since


def test_a_scheduled_sync_whose_dead_letters_sqs_refuses_fails_so_that_eventbridge_retries_it(
    container: Start, aws: StackResources
) -> None:
    # DynamoDB refuses every earnings-calendar item ("earnings_month" is theirs only); the first run's dead letters reach
    # the queue, the second's (queue gone) cannot be kept anywhere: the invocation fails.
    with FaultProxy(aws.endpoint, Faults(poison_attribute="earnings_month")) as proxy:
        sync_earnings = container("SyncEarningsFunction", env={"AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint})
        first = sync_earnings.result(harness.scheduled_event("sync-earnings-daily"))
        letters = aws.receive_all("WriteDeadLetterQueue")
        assert not first["ok"] and first["failed"] > 0 and len(letters) == first["failed"], first
        assert {m["MessageAttributes"]["table"]["StringValue"] for m in letters} == {aws.refs["EarningsCalendarTable"]}

        sqs = aws.client("sqs")
        queue_name = aws.attributes[("WriteDeadLetterQueue", "QueueName")]
        sqs.delete_queue(QueueUrl=aws.refs["WriteDeadLetterQueue"])
        try:
            failed = sync_earnings.invoke(harness.scheduled_event("sync-earnings-daily"))
        finally:
            sqs.create_queue(QueueName=queue_name)
    assert failed.get("error") == "DeadLettersLost", failed
    assert not aws.scan("EarningsCalendarTable")
