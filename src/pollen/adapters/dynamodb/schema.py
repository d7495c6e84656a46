"""Tables as the store sees them: logical and physical names, key schema and indexes (pollen's own definitions,
else DescribeTable), and the attributes the store keeps on every item."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pollen.adapters.dynamodb.errors import MissingResource
from pollen.deadline import Deadline
from pollen.errors import ConfigError
from pollen.tables import TABLES

if TYPE_CHECKING:
    from pollen.adapters.dynamodb.dispatch import Dispatcher

SYNC_ATTRIBUTE = "lastSyncDate"
HASH_ATTRIBUTE = "contentHash"
HASH_ATTRIBUTE_BYTES = len(HASH_ATTRIBUTE)
DEFAULT_BOOKKEEPING: frozenset[str] = frozenset({SYNC_ATTRIBUTE})

#: DynamoDB's rule for table names.
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")

KeySchema = tuple[tuple[str, str], ...]


def check_table_name(name: str) -> None:
    """ConfigError (exit 2) for a name DynamoDB would refuse, before any call is made."""
    if not TABLE_NAME.match(name):
        raise ConfigError(
            f"illegal table name {name[:80]!r}: DynamoDB allows 3-255 characters: letters, digits, '_', '.', '-'"
        )


@dataclass(frozen=True)
class TableInfo:
    logical: str
    physical: str
    key_schema: KeySchema
    indexes: dict[str, KeySchema] = field(default_factory=dict)

    @cached_property
    def key_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.key_schema)


class TableCatalog:
    """The metadata of the tables a store uses, looked up once per table."""

    def __init__(self, dispatcher: Dispatcher, table_prefix: str) -> None:
        self.dispatcher = dispatcher
        self.table_prefix = table_prefix
        #: Logical name -> metadata, filled on first use.
        self.known: dict[str, TableInfo] = {}

    def info(self, table: str) -> TableInfo:
        """Key schema and indexes of a logical table (pollen's definitions, else DescribeTable)."""
        info = self.known.get(table)
        if info is not None:
            return info
        definition = TABLES.get(table)
        if definition is not None:
            check_table_name(self.table_prefix + table)
            info = TableInfo(
                table,
                self.table_prefix + table,
                tuple((k.name, k.type) for k in (definition.partition, definition.sort) if k is not None),
                {
                    i.name: tuple((k.name, k.type) for k in (i.partition, i.sort) if k is not None)
                    for i in definition.indexes
                },
            )
        else:
            info = self.describe(table)
        self.known[table] = info
        return info

    def describe(self, table: str) -> TableInfo:
        """A table pollen does not define, by DescribeTable: the prefixed name first, then the name as given."""
        candidates = [self.table_prefix + table] + ([table] if self.table_prefix else [])
        candidates = [name for name in candidates if TABLE_NAME.match(name)] or [candidates[0]]
        for physical in candidates:
            check_table_name(physical)
            try:
                described = self.dispatcher.call("describe_table", Deadline.never(), TableName=physical)["Table"]
            except MissingResource:
                continue
            return _described_info(table, physical, described)
        raise MissingResource(
            f"table {' or '.join(dict.fromkeys(candidates))} does not exist (run `pollen tables create`)",
            code="ResourceNotFoundException",
        )

    def require(self, table: str) -> TableInfo:
        """The table's metadata, after checking with DescribeTable that it exists (MissingResource, exit 2, if not)."""
        info = self.info(table)
        self.dispatcher.call("describe_table", Deadline.never(), TableName=info.physical)
        return info


def _described_info(table: str, physical: str, described: dict[str, Any]) -> TableInfo:
    types = {a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])}

    def schema(keys: list[dict[str, str]]) -> KeySchema:
        ordered = sorted(keys, key=lambda k: k["KeyType"] != "HASH")
        return tuple((k["AttributeName"], types[k["AttributeName"]]) for k in ordered)

    return TableInfo(
        table,
        physical,
        schema(described["KeySchema"]),
        {g["IndexName"]: schema(g["KeySchema"]) for g in described.get("GlobalSecondaryIndexes", [])},
    )


def sort_value(value: Any) -> tuple[int, Any]:
    """An order over key values of any type: numbers, then strings, then binary."""
    if isinstance(value, Decimal | int):
        return (0, Decimal(value))
    if isinstance(value, bytes):
        return (2, value)
    return (1, "" if value is None else str(value))
