"""The ItemStore contract runs against each implementation: the in-memory fake the unit tests use and the DynamoDB
store on the moto server over HTTP. Where the two disagree, the DynamoDB store's behaviour is the contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.ports import DeadLetterSink, ItemStore
from pollen.tables import ASSETS, COMPANY_OVERVIEW, CONTROL, EARNINGS, TABLES
from tests.fakes import InMemoryStore
from tests.integration.store_support import FAST_RETRY, client_factory

IMPLEMENTATIONS = ("memory", pytest.param("dynamo", marks=pytest.mark.integration))


@dataclass
class Harness:
    """One store under the contract, its dead-letter sink, and what a test needs around it."""

    kind: str
    store: Any
    sink: MemoryDeadLetters
    #: Builds another store of the same kind over the same data (a second run), with its own dead-letter sink.
    build: Any
    foreign_writer: Any = field(default=None)

    @property
    def port(self) -> ItemStore:
        typed: ItemStore = self.store
        return typed

    def other(self, dead_letters: DeadLetterSink | None = None) -> Any:
        return self.build(dead_letters)

    def plant_foreign(self, table: str, item: dict[str, Any]) -> None:
        """Store an item as another tool would write it: as is, without pollen's content hash."""
        self.foreign_writer(table, item)


CONTRACT_TABLES = (ASSETS, COMPANY_OVERVIEW, CONTROL, EARNINGS)


@pytest.fixture(scope="module")
def contract_tables(endpoint: str) -> tuple[str, Any]:
    """The prefix of the tables the DynamoDB variant uses, created once per module (each test starts them empty),
    and a client for them."""
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    client = make_client("dynamodb", endpoint_url=endpoint)
    ensure_tables(client, prefix, CONTRACT_TABLES)
    return prefix, client


def _empty_tables(dynamodb: Any, prefix: str) -> None:
    for table in CONTRACT_TABLES:
        names = {f"#k{i}": name for i, name in enumerate(table.key_names)}
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=prefix + table.name,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            ConsistentRead=True,
        )
        for page in pages:
            for key in page["Items"]:
                dynamodb.delete_item(TableName=prefix + table.name, Key=key)


@pytest.fixture(params=IMPLEMENTATIONS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    sink = MemoryDeadLetters()
    if request.param == "memory":
        memory = InMemoryStore(dead_letters=sink)

        def other_memory(dead_letters: DeadLetterSink | None) -> InMemoryStore:
            # A second run on the same data: the same tables and leases under another dead-letter sink.
            twin = InMemoryStore(dead_letters=dead_letters)
            twin.tables, twin.hashes, twin.leases = memory.tables, memory.hashes, memory.leases
            return twin

        yield Harness(
            "memory",
            memory,
            sink,
            other_memory,
            lambda table, item: memory.put_raw(table, item, hashed=False),
        )
        return
    endpoint = request.getfixturevalue("endpoint")
    prefix, dynamodb = request.getfixturevalue("contract_tables")
    _empty_tables(dynamodb, prefix)
    built: list[DynamoStore] = []

    def dynamo(dead_letters: DeadLetterSink | None) -> DynamoStore:
        store = DynamoStore(
            client_factory=client_factory(endpoint, "wire"),
            table_prefix=prefix,
            dead_letters=dead_letters,
            retry=FAST_RETRY,
            concurrency=2,
        )
        built.append(store)
        return store

    serializer = TypeSerializer()

    def foreign(table: str, item: dict[str, Any]) -> None:
        assert table in TABLES
        wire = {name: serializer.serialize(value) for name, value in item.items()}
        dynamodb.put_item(TableName=prefix + table, Item=wire)

    try:
        yield Harness("dynamo", dynamo(sink), sink, dynamo, foreign)
    finally:
        for store in built:
            store.close()
