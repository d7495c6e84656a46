"""The Lambda handlers, invoked with Lambda-shaped events and a context object, give the same results as the CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.handlers import pollenate, sync_assets, sync_earnings
from pollen.local.simulator.server import SimulatorProcess
from tests.conftest import run_pollen
from tests.e2e.conftest import World, make_world

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


class Context:
    aws_request_id = "e2e00000-0000-4000-8000-000000000000"
    function_name = "pollen-e2e"
    memory_limit_in_mb = 512

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2025-01-06T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/pollen-daily"],
        "detail": {},
    }


@pytest.fixture
def worlds(endpoint: str, simulator: SimulatorProcess, tmp_path: Path) -> Iterator[tuple[World, World]]:
    simulator.configure(day=0, error_rate=0.0, latency_ms=0.0)
    yield make_world(endpoint, simulator, tmp_path / "lambda"), make_world(endpoint, simulator, tmp_path / "cli")


@pytest.fixture
def lambda_env(worlds: tuple[World, World], endpoint: str, monkeypatch: pytest.MonkeyPatch) -> World:
    world = worlds[0]
    for key, value in world.environment.items():
        monkeypatch.setenv(key, value)
    # In Lambda the dead letters must have a durable place: the stack's queue, never /tmp.
    queue = make_client("sqs", endpoint_url=endpoint).create_queue(QueueName=f"{world.settings.table_prefix}dlq")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
    monkeypatch.setenv("POLLEN_DEAD_LETTER_QUEUE_URL", queue["QueueUrl"])
    for module in (sync_assets, sync_earnings, pollenate):
        module.STATE.reset()
        monkeypatch.setattr(module, "clock", world.clock)
    return world


def _contents(world: World, table: str) -> list[dict[str, Any]]:
    ignore = {"lastSyncDate", "lastPollenationDate", "pollenatedAt"}
    return sorted(
        ({k: v for k, v in i.items() if k not in ignore} for i in world.scan(table)),
        key=lambda i: json.dumps(i, default=str, sort_keys=True),
    )


CONTRACT_KEYS = {"ok", "written", "unchanged", "failed", "invalid", "duration_s", "errors"}


def test_sync_handlers_and_cli_give_the_same_results(worlds: tuple[World, World], lambda_env: World) -> None:
    lambda_world, cli_world = worlds
    cli_env = {**cli_world.environment, "PATH": __import__("os").environ["PATH"]}

    from_lambda = sync_assets.handler(scheduled_event(), Context())
    from_cli = run_pollen("sync", "assets", "--json", env=cli_env, timeout=300)
    assert from_cli.returncode == 0, from_cli.stderr[-2000:]
    cli_report = json.loads(from_cli.stdout)
    assert set(from_lambda) >= CONTRACT_KEYS and set(cli_report) >= CONTRACT_KEYS
    for key in ("ok", "written", "unchanged", "failed", "invalid", "fetched", "new", "deactivated"):
        assert from_lambda[key] == cli_report[key], key
    assert _contents(lambda_world, "assets") == _contents(cli_world, "assets")

    event = {**scheduled_event(), "detail": {"horizon": "3month"}}
    earnings_lambda = sync_earnings.handler(event, Context())
    earnings_cli = json.loads(run_pollen("sync", "earnings", "--json", env=cli_env, timeout=300).stdout)
    for key in ("ok", "written", "unchanged", "invalid", "rows", "duplicates"):
        assert earnings_lambda[key] == earnings_cli[key], key
    assert _contents(lambda_world, "earningsCalendar") == _contents(cli_world, "earningsCalendar")


def test_pollenate_handler_and_cli_give_the_same_results(worlds: tuple[World, World], lambda_env: World) -> None:
    lambda_world, cli_world = worlds
    cli_env = {**cli_world.environment, "PATH": __import__("os").environ["PATH"]}
    sync_assets.handler(scheduled_event(), Context())
    assert run_pollen("sync", "assets", "--json", env=cli_env, timeout=300).returncode == 0
    symbol = "IBM" if list(lambda_world.store.query("assets", partition=("symbol", "IBM"))) else None
    symbol = symbol or sorted(i["symbol"] for i in lambda_world.scan("assets") if "/" not in i["symbol"])[0]

    from_lambda = pollenate.handler({"symbol": symbol}, Context())
    from_cli = run_pollen("pollenate", symbol, "--json", env=cli_env, timeout=300)
    assert from_cli.returncode == 0, from_cli.stderr[-2000:]
    cli_report = json.loads(from_cli.stdout)
    for key in ("ok", "written", "unchanged", "failed", "invalid", "pollenated"):
        assert from_lambda[key] == cli_report[key], key
    for table in ("companyOverview", "earnings", "cashFlow", "balanceSheet", "incomeStatement"):
        assert _contents(lambda_world, table) == _contents(cli_world, table), table
