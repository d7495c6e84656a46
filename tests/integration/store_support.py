"""Shared helpers for the store tests: tables, a fault proxy in front of the test server, a store through it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import JsonlDeadLetters
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.backoff import Backoff
from pollen.observability import MetricsRecorder
from pollen.tables import ASSETS, CONTROL, EARNINGS, EARNINGS_CALENDAR
from tests.support.faultproxy import FaultProxy

#: Fast retries for tests: the scenarios still need many rounds, the waits need not be long.
FAST_RETRY = Backoff(base_s=0.01, cap_s=0.2, max_attempts=13)

#: The two DynamoDB transports; the store tests (tests/integration/test_store*.py) run once with each (see
#: tests/integration/conftest.py), so both are held to the same behaviour.
TRANSPORTS = ("wire", "boto3")
#: The transport :func:`make_store` uses: set per test by the ``store_transport`` fixture.
current_transport = "wire"


def client_factory(endpoint: str, transport: str | None = None) -> Any:
    """Per-worker clients of one transport: the lean wire client or boto3's."""
    if (transport or current_transport) == "boto3":
        return lambda: make_client("dynamodb", region="us-east-1", endpoint_url=endpoint, max_pool_connections=16)
    return wire_client_factory(region="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def tables(dynamodb: Any, table_prefix: str) -> str:
    ensure_tables(dynamodb, table_prefix, (ASSETS, EARNINGS_CALENDAR, EARNINGS, CONTROL))
    return table_prefix


@pytest.fixture
def proxy(endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint) as running:
        yield running


def make_store(
    endpoint: str, prefix: str, home: Path, *, metrics: MetricsRecorder | None = None, **options: Any
) -> DynamoStore:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("concurrency", 4)
    transport = options.pop("transport", None)
    return DynamoStore(
        client_factory=client_factory(endpoint, transport),
        table_prefix=prefix,
        metrics=metrics or MetricsRecorder(),
        dead_letters=JsonlDeadLetters(home / "dead-letters", run_id="run"),
        **options,
    )


@pytest.fixture
def store(proxy: FaultProxy, tables: str, tmp_path: Path, store_transport: str) -> Iterator[DynamoStore]:
    with make_store(proxy.endpoint, tables, tmp_path, transport=store_transport) as built:
        yield built


def statement(i: int, *, value: Any = None, sync: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    """An `earnings` item with exact decimals and a nested map."""
    return {
        "symbol": f"S{i:05d}",
        "fiscalPeriod": "ANNUAL#2025-12-31",
        "period": "annual",
        "reportedEPS": Decimal(i) / Decimal(7) if value is None else value,
        "detail": {"currency": "USD", "list": [Decimal("1.10"), "x", None, True]},
        "lastSyncDate": sync,
    }


def key_of(item: dict[str, Any]) -> tuple[str, str]:
    return (item["symbol"], item["fiscalPeriod"])
