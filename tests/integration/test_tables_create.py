from __future__ import annotations

import json
from typing import Any

import pytest

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.tables import CONTRACT_TABLES, CONTROL
from tests.conftest import run_pollen

pytestmark = pytest.mark.integration

# CONTRACT.md, "Tables", written out independently of pollen.tables so a drift in either is caught.
EXPECTED = {
    "assets": (
        [("symbol", "HASH", "S"), ("lastPollenationDate", "RANGE", "S")],
        {"status-index": [("status", "HASH", "S"), ("volume", "RANGE", "N")]},
        True,
    ),
    "earningsCalendar": (
        [("asset_symbol", "HASH", "S"), ("earnings_date", "RANGE", "S")],
        {"upcoming-earnings-index": [("earnings_month", "HASH", "S"), ("earnings_date", "RANGE", "S")]},
        True,
    ),
    "companyOverview": ([("symbol", "HASH", "S")], {}, True),
    "earnings": ([("symbol", "HASH", "S"), ("fiscalPeriod", "RANGE", "S")], {}, False),
    "cashFlow": ([("symbol", "HASH", "S"), ("fiscalPeriod", "RANGE", "S")], {}, False),
    "balanceSheet": ([("symbol", "HASH", "S"), ("fiscalPeriod", "RANGE", "S")], {}, False),
    "incomeStatement": ([("symbol", "HASH", "S"), ("fiscalPeriod", "RANGE", "S")], {}, False),
}


def _shape(described: dict[str, Any]) -> tuple[Any, Any, bool]:
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    keys = [(k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in described["KeySchema"]]
    indexes = {
        gsi["IndexName"]: [(k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in gsi["KeySchema"]]
        for gsi in described.get("GlobalSecondaryIndexes", [])
    }
    for gsi in described.get("GlobalSecondaryIndexes", []):
        assert gsi["Projection"]["ProjectionType"] == "ALL"
    spec = described.get("StreamSpecification") or {}
    streamed = bool(spec.get("StreamEnabled"))
    if streamed:
        assert spec["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    return keys, indexes, streamed


def _our_tables(dynamodb: Any, prefix: str) -> list[str]:
    names: list[str] = []
    for page in dynamodb.get_paginator("list_tables").paginate():
        names += [n for n in page["TableNames"] if n.startswith(prefix)]
    return sorted(names)


def test_cli_creates_exactly_the_contract_tables_then_changes_nothing(
    pollen_env: dict[str, str], dynamodb: Any, table_prefix: str
) -> None:
    first = run_pollen("tables", "create", "--json", env=pollen_env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] is True
    assert sorted(report["created"]) == sorted(f"{table_prefix}{t}" for t in [*EXPECTED, "pollenControl"])

    contract_names = {f"{table_prefix}{name}" for name in EXPECTED}
    present = set(_our_tables(dynamodb, table_prefix))
    assert present - {f"{table_prefix}pollenControl"} == contract_names
    for name, expected in EXPECTED.items():
        described = dynamodb.describe_table(TableName=f"{table_prefix}{name}")["Table"]
        assert _shape(described) == expected, name
        assert described["TableStatus"] == "ACTIVE"
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    second = run_pollen("tables", "create", "--json", env=pollen_env)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["created"] == [] and again["written"] == 0
    assert again["unchanged"] == len(EXPECTED) + 1

    human = run_pollen("tables", "create", env=pollen_env)
    assert human.returncode == 0
    assert "nothing to do" in human.stderr


def test_a_table_that_differs_from_its_definition_is_reported(dynamodb: Any, table_prefix: str) -> None:
    dynamodb.create_table(
        TableName=f"{table_prefix}companyOverview",
        KeySchema=[{"AttributeName": "ticker", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "ticker", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    report = ensure_tables(dynamodb, table_prefix, CONTRACT_TABLES)
    assert report.ok is False
    assert report.mismatched == [f"{table_prefix}companyOverview"]
    assert "key schema" in report.errors[0]


def test_control_table_ttl_is_enabled_on_an_existing_table_and_repeating_is_harmless(
    dynamodb: Any, table_prefix: str
) -> None:
    # A control table created before run records (no TTL): `tables create` turns expiry on, once.
    name = f"{table_prefix}pollenControl"
    dynamodb.create_table(**CONTROL.create_table_request(name))
    assert dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"

    for _ in range(2):
        report = ensure_tables(dynamodb, table_prefix)
        assert report.ok, report.errors
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
