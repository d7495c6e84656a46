"""Test support for stream sync: a scanning adapter over the moto server, and a world of tables + index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.adapters.stream_records import records_client
from pollen.observability import MemorySink, MetricsRecorder
from pollen.streams.checkpoints import FileCheckpoints
from pollen.streams.poller import StreamPoller, StreamSource
from pollen.streams.records import document_id, to_document
from pollen.streams.sync import StreamSync
from pollen.tables import STREAMED_TABLES, table_def

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


class MotoScanner:
    """The scanning port over boto3 `scan` (one page of ``page_size`` at a time); ``between_pages`` runs after
    every page, so a test can interleave table writes with a scan."""

    def __init__(
        self, client: Any, prefix: str, *, page_size: int = 25, between_pages: Callable[[], None] | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.page_size = page_size
        self.between_pages = between_pages

    def scan(self, table: str, *, segments: int = 1) -> Iterator[dict[str, Any]]:
        for segment in range(segments):
            kwargs: dict[str, Any] = {
                "TableName": self.prefix + table,
                "Limit": self.page_size,
                "Segment": segment,
                "TotalSegments": segments,
            }
            while True:
                page = self.client.scan(**kwargs)
                for raw in page.get("Items", []):
                    yield {k: _deserializer.deserialize(v) for k, v in raw.items()}
                if self.between_pages is not None:
                    self.between_pages()
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def table_documents(client: Any, prefix: str, table: str) -> dict[str, dict[str, Any]]:
    """What the index must hold for a table: every item, as a document, by document id."""
    definition = table_def(table)
    return {document_id(definition, item): to_document(item) for item in MotoScanner(client, prefix).scan(table)}


def index_documents(index: EmbeddedSearchIndex, table: str) -> dict[str, dict[str, Any]]:
    return dict(index.documents(table))


@dataclass
class World:
    """Tables under a fresh prefix, an embedded index and a poller factory."""

    dynamodb: Any
    streams: Any
    prefix: str
    home: Path
    index: EmbeddedSearchIndex
    metrics: MetricsRecorder
    dead_letters: MemoryDeadLetters

    @classmethod
    def create(cls, dynamodb: Any, streams: Any, prefix: str, home: Path) -> World:
        for table in STREAMED_TABLES:
            dynamodb.create_table(**table.create_table_request(prefix + table.name))
        metrics = MetricsRecorder(MemorySink())
        return cls(dynamodb, streams, prefix, home, EmbeddedSearchIndex.in_home(home), metrics, MemoryDeadLetters())

    def sources(self) -> list[StreamSource]:
        return [StreamSource(t, self.prefix + t.name) for t in STREAMED_TABLES]

    def sync(self, index: Any = None) -> StreamSync:
        return StreamSync(index or self.index, metrics=self.metrics, dead_letters=self.dead_letters)

    def poller(self, index: Any = None, **options: Any) -> StreamPoller:
        options.setdefault("batch_size", 10)
        options.setdefault("window_s", 0.0)
        # As `pollen stream sync` builds it against the embedded stack: GetRecords through the JSON client.
        client = records_client(
            self.streams, endpoint_url=self.streams.meta.endpoint_url, region=self.streams.meta.region_name
        )
        return StreamPoller(client, self.sync(index), FileCheckpoints.in_home(self.home), self.sources(), **options)

    def expected(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {t.name: table_documents(self.dynamodb, self.prefix, t.name) for t in STREAMED_TABLES}

    def indexed(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {t.name: index_documents(self.index, t.name) for t in STREAMED_TABLES}

    def put(self, table: str, item: dict[str, Any]) -> None:
        self.dynamodb.put_item(TableName=self.prefix + table, Item=serialize(item))

    def delete(self, table: str, key: dict[str, Any]) -> None:
        self.dynamodb.delete_item(TableName=self.prefix + table, Key=serialize(key))

    def raw_records(self) -> dict[str, list[dict[str, Any]]]:
        """Every record in each table's stream, read directly (TRIM_HORIZON to the end)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for source in self.sources():
            arn = self.streams.list_streams(TableName=source.physical_name)["Streams"][0]["StreamArn"]
            records: list[dict[str, Any]] = []
            for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while iterator:
                    page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                    records += page["Records"]
                    iterator = page.get("NextShardIterator")
                    if not page["Records"]:
                        break
            out[source.table.name] = records
        return out
