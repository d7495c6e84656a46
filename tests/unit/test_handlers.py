"""Lambda handlers invoked with Lambda-shaped events and a context object; fakes injected through each module's
``build_dependencies`` seam."""

from __future__ import annotations

import json
import logging
import resource
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pollen.backoff import Backoff
from pollen.errors import AuthError, ConfigError
from pollen.handlers import pollenate, schedule_pollenation, sync_assets, sync_earnings
from pollen.handlers.common import Dependencies
from pollen.jobs import pollenate as pollenate_job
from pollen.observability import register_secrets
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals, InMemoryStore, transient

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MODULES = (sync_assets, sync_earnings, pollenate, schedule_pollenation)


class Context:
    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
        self.function_name = "pollen-test"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pollen-test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> list[str]:
        self.messages += messages
        return []


class World:
    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.assets = FakeAssetSource(
            [payloads.alpaca_asset(s) for s in ("IBM", "MSFT", "AAPL")], {"IBM": 3, "MSFT": 2, "AAPL": 1}
        )
        self.fundamentals = FakeFundamentals(
            [payloads.calendar_row("IBM", "2026-12-01", "2026-09-30"), payloads.calendar_row("AAPL", "2027-01-10")]
        )
        for symbol in ("IBM", "MSFT", "AAPL"):
            self.fundamentals.add_company(
                symbol,
                overview=payloads.overview(symbol),
                earnings=payloads.earnings(symbol),
                statements=payloads.statement(symbol),
            )
        self.queue = FakeQueue()

    def dependencies(self, settings: Any, metrics: Any) -> Dependencies:
        return Dependencies(store=self.store, assets=self.assets, fundamentals=self.fundamentals, queue=self.queue)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    monkeypatch.setenv("POLLEN_HOME", str(tmp_path))
    monkeypatch.setenv("POLLEN_POLLENATE_QUEUE_URL", "http://127.0.0.1:1/123456789012/pollenate")
    world = World()
    for module in MODULES:
        module.STATE.reset()
        monkeypatch.setattr(module, "build_dependencies", world.dependencies)
        monkeypatch.setattr(module, "clock", lambda: NOW)
    yield world
    for module in MODULES:
        module.STATE.reset()


def scheduled_event(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-20T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/pollen-sync"],
        "detail": detail or {},
    }


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763640000000"},
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:pollenate",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def emf_metrics(captured: str) -> set[str]:
    names: set[str] = set()
    for line in captured.splitlines():
        if line.startswith("{") and "_aws" in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names |= {m["Name"] for m in directive["Metrics"]}
    return names


def call(module: ModuleType, event: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event, context or Context())
    json.dumps(response)  # a Lambda result must be JSON
    return response


def test_sync_assets_handler_on_a_scheduled_event(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    report = call(sync_assets, scheduled_event())
    assert report["ok"] is True and report["written"] == 3 and report["job"] == "sync-assets"
    assert len(world.store.items("assets")) == 3
    out = capsys.readouterr().out
    assert {"AssetsWritten", "AssetsFetched", "MemoryUsedPercent"} <= emf_metrics(out)
    memory = [json.loads(line) for line in out.splitlines() if '"MemoryUsedPercent"' in line]
    # The test process's peak (it has run other tests before) as a share of the context's 512 MB.
    peak_percent = 100.0 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 / 512
    assert memory and all(0 < doc["MemoryUsedPercent"][0] <= peak_percent + 0.1 for doc in memory)
    again = call(sync_assets, scheduled_event())  # warm container
    assert again["written"] == 0 and again["unchanged"] == 3


def test_sync_earnings_handler_takes_the_horizon_from_the_event(world: World) -> None:
    report = call(sync_earnings, scheduled_event({"horizon": "12month"}))
    assert report["ok"] and report["written"] == 2
    assert world.fundamentals.horizons == ["12month"]
    with pytest.raises(ConfigError):
        call(sync_earnings, {"horizon": "1week"})


def test_pollenate_direct_invocation(world: World) -> None:
    call(sync_assets, scheduled_event())
    report = call(pollenate, {"symbol": "IBM"})
    assert report["ok"] and report["pollenated"] == 1
    assert report["assets"][0]["tables"]["incomeStatement"]["outcome"] == "written"
    assert world.store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == "2026-11-20T12:00:00Z"
    bad = call(pollenate, {"symbol": "IB M"})
    assert bad["ok"] is False and bad["invalid"] == 1


def test_pollenate_sqs_batch_reports_partial_failures(world: World) -> None:
    call(sync_assets, scheduled_event())
    world.fundamentals.errors[("CASH_FLOW", "MSFT")] = transient("503")
    response = call(
        pollenate,
        sqs_event(
            json.dumps({"symbol": "IBM", "enqueuedAt": "2026-11-20T11:00:00Z"}), "MSFT", "{not json", "NOPE", "AAPL"
        ),
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert world.store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == "2026-11-20T12:00:00Z"
    assert world.store.by("assets", symbol="MSFT")[0]["lastPollenationDate"] == "1970-01-01T00:00:00Z"
    assert world.store.by("assets", symbol="AAPL")[0]["lastPollenationDate"] == "2026-11-20T12:00:00Z"


def test_a_message_whose_move_waits_out_its_time_for_a_running_sync_goes_back_to_the_queue(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    call(sync_assets, scheduled_event())
    waits: list[float] = []
    monkeypatch.setattr(pollenate_job, "SYNC_WAIT", Backoff(1.0, 10.0, 3, sleeper=waits.append))
    with world.store.lease("sync-assets", 60):  # SyncAssets is running
        response = call(pollenate, sqs_event("IBM"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert len(waits) == 2  # waited, then gave up: no real sleeping here
    assert world.store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == "1970-01-01T00:00:00Z"
    assert world.store.by("companyOverview", symbol="IBM")  # the tables stay written
    assert call(pollenate, sqs_event("IBM")) == {"batchItemFailures": []}  # delivered again after the sync
    assert world.store.by("assets", symbol="IBM")[0]["lastPollenationDate"] == "2026-11-20T12:00:00Z"


def test_quota_exhaustion_returns_the_rest_of_the_batch_without_calling_the_api(world: World) -> None:
    call(sync_assets, scheduled_event())
    world.fundamentals.quota = 6
    response = call(pollenate, sqs_event("IBM", "MSFT", "AAPL"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert world.fundamentals.calls_for("AAPL") == []


def test_no_time_left_returns_every_message(world: World) -> None:
    call(sync_assets, scheduled_event())
    response = call(pollenate, sqs_event("IBM", "MSFT"), Context(remaining_ms=5_000))
    assert len(response["batchItemFailures"]) == 2
    assert world.fundamentals.calls == []


def test_schedule_enqueues_the_most_due_and_the_pollenate_handler_consumes_them(world: World) -> None:
    call(sync_assets, scheduled_event())
    report = call(schedule_pollenation, {"count": 2})
    assert report["ok"] and report["enqueued"] == 2
    assert [m["symbol"] for m in world.queue.messages] == ["IBM", "MSFT"]  # never pollenated, by volume
    assert all(m["enqueuedAt"] == "2026-11-20T12:00:00Z" for m in world.queue.messages)
    response = call(pollenate, sqs_event(*(json.dumps(m) for m in world.queue.messages)))
    assert response == {"batchItemFailures": []}
    # Queued again by a later schedule before being consumed: left alone, no API call.
    calls = len(world.fundamentals.calls)
    assert call(pollenate, sqs_event(json.dumps(world.queue.messages[0])))["batchItemFailures"] == []
    assert len(world.fundamentals.calls) == calls
    with pytest.raises(ConfigError):
        call(schedule_pollenation, {"count": 0})


def test_schedule_enqueues_the_template_batch_on_a_scheduled_event(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template's PollenateBatchPerRun reaches the scheduler as POLLEN_POLLENATE_BATCH; the event has no count."""
    call(sync_assets, scheduled_event())
    monkeypatch.setenv("POLLEN_POLLENATE_BATCH", "2")
    report = call(schedule_pollenation, scheduled_event())
    assert report["enqueued"] == 2
    assert [m["symbol"] for m in world.queue.messages] == ["IBM", "MSFT"]


def test_auth_errors_are_counted_and_raised(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.assets.volume_error = AuthError("Alpaca refused the credentials")
    with pytest.raises(AuthError):
        call(sync_assets, scheduled_event())
    assert "AuthFailed" in emf_metrics(capsys.readouterr().out)


def test_handlers_give_the_same_result_as_the_jobs_run_directly(world: World) -> None:
    from pollen.jobs.sync_assets import SyncAssets
    from pollen.observability import MetricsRecorder

    by_handler = call(sync_assets, scheduled_event())
    other = InMemoryStore()
    direct = SyncAssets(other, world.assets, metrics=MetricsRecorder(), clock=lambda: NOW).run().to_json_dict()
    for key in ("ok", "written", "unchanged", "failed", "invalid", "new", "fetched"):
        assert by_handler[key] == direct[key]
    assert world.store.items("assets") == other.items("assets")


def test_auth_failure_in_a_batch_returns_every_message_and_is_counted(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    call(sync_assets, scheduled_event())
    capsys.readouterr()
    world.fundamentals.errors[("OVERVIEW", "IBM")] = AuthError("the API key was refused")
    response = call(pollenate, sqs_event("IBM", "MSFT"))
    assert len(response["batchItemFailures"]) == 2
    assert world.fundamentals.calls_for("MSFT") == []
    assert "AuthFailed" in emf_metrics(capsys.readouterr().out)


def test_secrets_fetched_when_the_adapters_were_built_stay_redacted_in_warm_invocations(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sekrit-av-key-warm-7d1f"
    monkeypatch.setenv("POLLEN_LOG_LEVEL", "DEBUG")

    def build(settings: Any, metrics: Any) -> Dependencies:
        register_secrets([key])  # what build_sources does with the values read from Secrets Manager
        return world.dependencies(settings, metrics)

    calendar = world.fundamentals.earnings_calendar

    def echoing_calendar(horizon: Any) -> Any:
        # a library logging its request URL at DEBUG, key included
        logging.getLogger("pollen.adapters.echo").debug("GET /query?function=EARNINGS_CALENDAR&apikey=%s", key)
        return calendar(horizon)

    monkeypatch.setattr(sync_earnings, "build_dependencies", build)
    monkeypatch.setattr(world.fundamentals, "earnings_calendar", echoing_calendar)
    for _ in range(2):  # cold, then warm: logging is configured again, the adapters are not rebuilt
        call(sync_earnings, scheduled_event())
    captured = capsys.readouterr()
    assert captured.err.count("apikey=***") == 2
    assert key not in captured.out + captured.err
