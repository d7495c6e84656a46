"""`pollen stream sync --once`, `pollen search` and `pollen backfill` as a user runs them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.search.embedded import EmbeddedSearchIndex
from tests.conftest import run_pollen
from tests.integration.stream_support import serialize

pytestmark = pytest.mark.integration


def put(dynamodb: Any, table: str, item: dict[str, Any]) -> None:
    dynamodb.put_item(TableName=table, Item=serialize(item))


@pytest.fixture
def tables(pollen_env: dict[str, str]) -> dict[str, str]:
    created = run_pollen("tables", "create", "--json", env=pollen_env)
    assert created.returncode == 0, created.stderr
    return pollen_env


def test_stream_sync_once_then_search(tables: dict[str, str], dynamodb: Any, table_prefix: str) -> None:
    env = tables
    put(
        dynamodb,
        f"{table_prefix}companyOverview",
        {
            "symbol": "AAPL",
            "Name": "Apple Inc",
            "Sector": "TECHNOLOGY",
            "MarketCapitalization": Decimal("3.5E+12"),
            "lastSyncDate": "2024-05-01T00:00:00Z",
        },
    )
    put(
        dynamodb,
        f"{table_prefix}companyOverview",
        {"symbol": "PINE", "Name": "Pineapple Farms", "lastSyncDate": "2024-05-01T00:00:00Z"},
    )
    put(
        dynamodb,
        f"{table_prefix}assets",
        {
            "symbol": "AAPL",
            "lastPollenationDate": "1970-01-01T00:00:00Z",
            "name": "Apple Inc. Common Stock",
            "status": "active",
            "volume": Decimal(1000),
            "lastSyncDate": "2024-05-01T00:00:00Z",
        },
    )
    put(dynamodb, f"{table_prefix}earnings", {"symbol": "AAPL", "fiscalPeriod": "ANNUAL#2023-09-30"})  # not streamed
    dynamodb.delete_item(TableName=f"{table_prefix}companyOverview", Key=serialize({"symbol": "PINE"}))

    first = run_pollen("stream", "sync", "--once", "--json", env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] is True
    assert (report["indexed"], report["deleted"], report["failed"]) == (3, 1, 0)
    assert {"written", "unchanged", "failed", "invalid", "duration_s", "errors"} <= set(report)

    again = json.loads(run_pollen("stream", "sync", "--once", "--json", env=env, timeout=60).stdout)
    assert (again["records"], again["written"]) == (0, 0)  # resumed from the checkpoint: nothing repeated

    found = run_pollen("search", "apple", "--json", env=env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert {(h["table"], h["id"]) for h in hits} == {
        ("companyOverview", "AAPL"),
        ("assets", "AAPL|1970-01-01T00:00:00Z"),
    }
    overview = next(h for h in hits if h["table"] == "companyOverview")
    assert overview["document"]["MarketCapitalization"] == "3500000000000"
    assert hits[0]["score"] >= hits[-1]["score"]

    table = run_pollen("search", "pineapple", env=env)
    assert table.returncode == 0 and "0 results" in table.stdout  # deleted: gone from search
    shown = run_pollen("search", "apple", "--table", "assets", env=env)
    assert "AAPL|1970-01-01T00:00:00Z" in shown.stdout and "Apple Inc. Common Stock" in shown.stdout
    bad = run_pollen("search", "apple", "--table", "earnings", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_stream_sync_without_tables_fails_cleanly(pollen_env: dict[str, str]) -> None:
    result = run_pollen("stream", "sync", "--once", "--json", env=pollen_env, timeout=60)
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr, result.stderr


def test_backfill_command(tables: dict[str, str], dynamodb: Any, table_prefix: str) -> None:
    for i in range(30):
        put(
            dynamodb,
            f"{table_prefix}companyOverview",
            {"symbol": f"S{i}", "Name": f"Company {i}", "lastSyncDate": "2024-05-01T00:00:00Z"},
        )
    result = run_pollen("backfill", "--json", env=tables, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["indexed"] == 30
    index = EmbeddedSearchIndex.in_home(Path(tables["POLLEN_HOME"]))
    assert len(dict(index.documents("companyOverview"))) == 30
