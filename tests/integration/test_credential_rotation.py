"""Secrets in a long-lived (warm) Lambda container: the handlers with their real wiring, Secrets Manager on the moto
server over HTTP, the upstream APIs on the simulator. A rotated key is picked up, and no key reaches the logs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pollen.adapters import credentials
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.handlers import sync_assets, sync_earnings
from pollen.local.simulator import Simulator
from pollen.tables import ASSETS, CONTROL, EARNINGS_CALENDAR
from tests.unit.test_handlers import Context, scheduled_event

pytestmark = pytest.mark.integration

OLD = {
    "ALPACA_API_KEY_ID": "akid-old-1f2e",
    "ALPACA_API_SECRET_KEY": "asec-old-3d4c",
    "ALPHAVANTAGE_API_KEY": "av-old-5b6a",
}
NEW = {
    "ALPACA_API_KEY_ID": "akid-new-7988",
    "ALPACA_API_SECRET_KEY": "asec-new-a7b6",
    "ALPHAVANTAGE_API_KEY": "av-new-c5d4",
}


def accept(sim: Simulator, keys: dict[str, str]) -> None:
    sim.configure(
        alpaca_key_id=keys["ALPACA_API_KEY_ID"],
        alpaca_secret_key=keys["ALPACA_API_SECRET_KEY"],
        alphavantage_api_key=keys["ALPHAVANTAGE_API_KEY"],
    )


@pytest.fixture
def deployment(
    endpoint: str, dynamodb: Any, table_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    ensure_tables(dynamodb, table_prefix, (ASSETS, EARNINGS_CALENDAR, CONTROL))
    secrets = make_client("secretsmanager", endpoint_url=endpoint)
    secret_id = f"{table_prefix}api-keys-{uuid.uuid4().hex[:6]}"
    secrets.create_secret(Name=secret_id, SecretString=json.dumps(OLD))
    queue_url = make_client("sqs", endpoint_url=endpoint).create_queue(QueueName=f"{table_prefix}dlq")["QueueUrl"]
    with Simulator(asset_count=300) as sim:
        accept(sim, OLD)
        env = sim.environment()
        for name in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPHAVANTAGE_BASE_URL"):
            monkeypatch.setenv(name, env[name])
        for name in ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "ALPHAVANTAGE_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("POLLEN_SECRET_ID", secret_id)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
        monkeypatch.setenv("POLLEN_DEAD_LETTER_QUEUE_URL", queue_url)
        monkeypatch.setenv("POLLEN_TABLE_PREFIX", table_prefix)
        monkeypatch.setenv("POLLEN_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("POLLEN_LOG_LEVEL", "DEBUG")
        for module in (sync_assets, sync_earnings):
            module.STATE.reset()
        yield {"sim": sim, "secrets": secrets, "secret_id": secret_id}
        for module in (sync_assets, sync_earnings):
            module.STATE.reset()


def rotate(deployment: dict[str, Any]) -> None:
    deployment["secrets"].put_secret_value(SecretId=deployment["secret_id"], SecretString=json.dumps(NEW))
    accept(deployment["sim"], NEW)  # the old keys are refused from now on


@pytest.mark.parametrize(
    ("handler", "refusals"),
    [(sync_earnings, "av_bad_key"), (sync_assets, "alpaca_unauthorized")],
    ids=["alphavantage-invalid-key", "alpaca-401"],
)
def test_a_key_refused_upstream_is_read_again_and_the_call_retried_once(
    deployment: dict[str, Any], capsys: pytest.CaptureFixture[str], handler: ModuleType, refusals: str
) -> None:
    sim = deployment["sim"]
    assert handler.handler(scheduled_event(), Context())["ok"]
    assert handler.handler(scheduled_event(), Context())["ok"]  # warm
    rotate(deployment)  # within the cache age: only the refusal tells the container
    report = handler.handler(scheduled_event(), Context())  # warm: the adapters built with the old keys
    assert report["ok"], report
    assert sim.stats()[refusals] == 1  # one refusal, then the new keys
    assert handler.handler(scheduled_event(), Context())["ok"]
    assert sim.stats()[refusals] == 1
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert '"CredentialsRotated"' in output
    assert logging.getLogger("pollen").getEffectiveLevel() == logging.DEBUG
    for value in [*OLD.values(), *NEW.values()]:
        assert value not in output


def test_after_the_cache_age_the_new_key_is_used_without_a_refusal(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(credentials, "SECRET_MAX_AGE_S", 0)  # every call finds the cached secret too old
    assert sync_earnings.handler(scheduled_event(), Context())["ok"]
    rotate(deployment)
    assert sync_earnings.handler(scheduled_event(), Context())["ok"]
    assert deployment["sim"].stats().get("av_bad_key", 0) == 0
    captured = capsys.readouterr()
    for value in [*OLD.values(), *NEW.values()]:
        assert value not in captured.out + captured.err


def test_a_key_that_stays_refused_fails_after_one_fresh_read(deployment: dict[str, Any]) -> None:
    from pollen.errors import AuthError

    assert sync_earnings.handler(scheduled_event(), Context())["ok"]
    accept(deployment["sim"], NEW)  # upstream changed, the secret did not
    with pytest.raises(AuthError):
        sync_earnings.handler(scheduled_event(), Context())
    assert deployment["sim"].stats()["av_bad_key"] == 1  # no retry with the same key
