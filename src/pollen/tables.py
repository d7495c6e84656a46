"""The one definition of every table (CONTRACT.md), used by `pollen tables create`, the store layer and the
deployment template's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AttrType = Literal["S", "N", "B"]

NEVER_POLLENATED = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class KeyAttr:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class IndexDef:
    name: str
    partition: KeyAttr
    sort: KeyAttr | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.partition, self.sort)


@dataclass(frozen=True)
class TableDef:
    """A table by its logical name (before the prefix)."""

    name: str
    partition: KeyAttr
    sort: KeyAttr | None = None
    indexes: tuple[IndexDef, ...] = ()
    stream: bool = False
    contract: bool = True
    ttl_attribute: str | None = None
    description: str = field(default="", compare=False)

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.partition.name,) if self.sort is None else (self.partition.name, self.sort.name)

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.partition, self.sort)

    def attribute_definitions(self) -> list[dict[str, str]]:
        attrs: dict[str, str] = {}
        for key in (self.partition, self.sort, *(k for i in self.indexes for k in (i.partition, i.sort))):
            if key is not None:
                attrs[key.name] = key.type
        return [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]

    def create_table_request(self, physical_name: str) -> dict[str, Any]:
        """Arguments for DynamoDB CreateTable: on-demand billing, GSIs projecting ALL, streams as defined."""
        request: dict[str, Any] = {
            "TableName": physical_name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index.name,
                    "KeySchema": index.key_schema(),
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in self.indexes
            ]
        if self.stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        return request


def _key_schema(partition: KeyAttr, sort: KeyAttr | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


def _statement_table(name: str, description: str) -> TableDef:
    return TableDef(name, KeyAttr("symbol"), KeyAttr("fiscalPeriod"), description=description)


ASSETS = TableDef(
    "assets",
    KeyAttr("symbol"),
    KeyAttr("lastPollenationDate"),
    indexes=(IndexDef("status-index", KeyAttr("status"), KeyAttr("volume", "N")),),
    stream=True,
    description="One item per Alpaca asset; the sort key is the time of the last pollenation.",
)
EARNINGS_CALENDAR = TableDef(
    "earningsCalendar",
    KeyAttr("asset_symbol"),
    KeyAttr("earnings_date"),
    indexes=(IndexDef("upcoming-earnings-index", KeyAttr("earnings_month"), KeyAttr("earnings_date")),),
    stream=True,
    description="Report dates from Alpha Vantage's EARNINGS_CALENDAR.",
)
COMPANY_OVERVIEW = TableDef(
    "companyOverview", KeyAttr("symbol"), stream=True, description="Alpha Vantage OVERVIEW per symbol."
)
EARNINGS = _statement_table("earnings", "Annual and quarterly earnings (EPS) reports.")
CASH_FLOW = _statement_table("cashFlow", "Annual and quarterly cash flow statements.")
BALANCE_SHEET = _statement_table("balanceSheet", "Annual and quarterly balance sheets.")
INCOME_STATEMENT = _statement_table("incomeStatement", "Annual and quarterly income statements.")

#: pollen's own bookkeeping (job leases, checkpoints); not part of the contract.
CONTROL = TableDef(
    "pollenControl",
    KeyAttr("pk"),
    KeyAttr("sk"),
    contract=False,
    ttl_attribute="expiresAt",
    description="Job leases and checkpoints (pollen's own; not part of the contract).",
)

CONTRACT_TABLES: tuple[TableDef, ...] = (
    ASSETS,
    EARNINGS_CALENDAR,
    COMPANY_OVERVIEW,
    EARNINGS,
    CASH_FLOW,
    BALANCE_SHEET,
    INCOME_STATEMENT,
)
ALL_TABLES: tuple[TableDef, ...] = (*CONTRACT_TABLES, CONTROL)
TABLES: dict[str, TableDef] = {table.name: table for table in ALL_TABLES}
STREAMED_TABLES: tuple[TableDef, ...] = tuple(t for t in CONTRACT_TABLES if t.stream)
STATEMENT_TABLES: tuple[TableDef, ...] = (EARNINGS, CASH_FLOW, BALANCE_SHEET, INCOME_STATEMENT)


def table_def(name: str) -> TableDef:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None
