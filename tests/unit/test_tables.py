from __future__ import annotations

from pollen.tables import ALL_TABLES, CONTRACT_TABLES, TABLES


def test_contract_has_seven_tables_with_the_contract_keys() -> None:
    keys = {t.name: t.key_names for t in CONTRACT_TABLES}
    assert keys == {
        "assets": ("symbol", "lastPollenationDate"),
        "earningsCalendar": ("asset_symbol", "earnings_date"),
        "companyOverview": ("symbol",),
        "earnings": ("symbol", "fiscalPeriod"),
        "cashFlow": ("symbol", "fiscalPeriod"),
        "balanceSheet": ("symbol", "fiscalPeriod"),
        "incomeStatement": ("symbol", "fiscalPeriod"),
    }
    assert {t.name for t in CONTRACT_TABLES if t.stream} == {"assets", "earningsCalendar", "companyOverview"}
    assert all(t.contract for t in CONTRACT_TABLES)
    assert [t.name for t in ALL_TABLES if not t.contract] == ["pollenControl"]


def test_create_request_declares_gsis_streams_and_on_demand_billing() -> None:
    request = TABLES["assets"].create_table_request("dev-assets")
    assert request["TableName"] == "dev-assets"
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    (gsi,) = request["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "status-index"
    assert gsi["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "volume", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in request["AttributeDefinitions"]}
    assert types == {"symbol": "S", "lastPollenationDate": "S", "status": "S", "volume": "N"}


def test_tables_without_stream_or_index_declare_neither() -> None:
    request = TABLES["cashFlow"].create_table_request("cashFlow")
    assert "StreamSpecification" not in request
    assert "GlobalSecondaryIndexes" not in request
