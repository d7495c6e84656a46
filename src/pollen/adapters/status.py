"""What `pollen status` observes besides the tables: DynamoDB's item counts, dead letters waiting (local files or
the dead-letter queue's depth) and the local stream poller's position and lag."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.admin import describe
from pollen.aws import error_code, translate
from pollen.ports import ZERO_SEQUENCE, DeadLetterCount, StreamCheckpoints, StreamPosition, later_sequence
from pollen.tables import TableDef

#: Stream records counted after a checkpoint before the count is reported as "at least".
PENDING_CAP = 10_000


class DescribeTableStatistics:
    """Item counts from DescribeTable (DynamoDB refreshes them about every six hours)."""

    def __init__(self, client: Any, *, table_prefix: str = "") -> None:
        self.client = client
        self.table_prefix = table_prefix

    def item_count(self, table: str) -> int | None:
        described = describe(self.client, f"{self.table_prefix}{table}")
        if described is None:
            return None
        return int(described.get("ItemCount", 0))


def local_dead_letters(home: Path) -> DeadLetterCount:
    """Items in the dead-letter files under ``home/dead-letters`` (one JSON item per line; the ``.reasons``
    siblings are not counted)."""
    folder = home / "dead-letters"
    waiting = 0
    if folder.is_dir():
        for path in sorted(folder.glob("*.jsonl")):
            if path.name.endswith(".reasons.jsonl"):
                continue
            with path.open("rb") as fh:
                waiting += sum(1 for line in fh if line.strip())
    return DeadLetterCount(waiting=waiting, where=str(folder))


def queue_dead_letters(client: Any, queue_url: str) -> DeadLetterCount:
    """The dead-letter queue's depth (SQS GetQueueAttributes; approximate by SQS's own account)."""
    try:
        attributes = client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service="sqs", action="GetQueueAttributes") from exc
    waiting = int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )
    return DeadLetterCount(waiting=waiting, where=queue_url, approximate=True)


class StreamLag:
    """Where the local poller (``pollen stream sync``) stands per streamed table: its checkpoint, the records after
    it and the age of the oldest of them. None when no local poller has run here (``checkpoints`` returns None)."""

    def __init__(
        self,
        client: Any,
        checkpoints: Callable[[], StreamCheckpoints | None],
        tables: list[tuple[TableDef, str]],
        *,
        now: Any = None,
        cap: int = PENDING_CAP,
    ) -> None:
        self.client = client
        self.checkpoints = checkpoints
        self.tables = tables
        self.now = now or (lambda: datetime.now().astimezone())
        self.cap = cap

    def __call__(self) -> list[StreamPosition] | None:
        checkpoints = self.checkpoints()
        if checkpoints is None:
            return None
        return [self._position(checkpoints, table, physical) for table, physical in self.tables]

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, name)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="dynamodbstreams", action=name) from exc

    def _position(self, checkpoints: StreamCheckpoints, table: TableDef, physical: str) -> StreamPosition:
        position = StreamPosition(table=table.name)
        arn = self._latest_stream(physical)
        if arn is None:
            return position
        head = ZERO_SEQUENCE
        for applied in checkpoints.shards(arn).values():
            if applied.sequence_number:
                head = later_sequence(head, applied.sequence_number)
        oldest: datetime | None = None
        shards = self._call("describe_stream", StreamArn=arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            iterator = self._iterator_after_checkpoint(checkpoints, arn, shard["ShardId"])
            if iterator is not None:
                oldest = _earliest(oldest, self._count_pending(iterator, position))
        position.capped = position.pending >= self.cap
        position.checkpoint = None if head == ZERO_SEQUENCE else head
        if oldest is not None:
            position.lag_s = round(max(0.0, (self.now() - oldest).total_seconds()), 1)
        return position

    def _latest_stream(self, physical: str) -> str | None:
        """The ARN of the table's newest stream (by label), or None when it has none."""
        streams = self._call("list_streams", TableName=physical).get("Streams", [])
        streams = [s for s in streams if s.get("TableName", physical) == physical]
        if not streams:
            return None
        return str(max(streams, key=lambda s: str(s.get("StreamLabel", "")))["StreamArn"])

    def _iterator_after_checkpoint(self, checkpoints: StreamCheckpoints, arn: str, shard_id: str) -> str | None:
        """An iterator at the first record the poller has not applied; None for a finished or trimmed shard."""
        checkpoint = checkpoints.get(arn, shard_id)
        if checkpoint is not None and checkpoint.finished:
            return None
        kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
        if checkpoint is not None and checkpoint.sequence_number:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint.sequence_number)
        try:
            iterator: str | None = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        except ClientError as exc:
            if error_code(exc) != "TrimmedDataAccessException":
                raise translate(exc, service="dynamodbstreams", action="get_shard_iterator") from exc
            return None
        return iterator

    def _count_pending(self, iterator: str, position: StreamPosition) -> datetime | None:
        """Add the shard's records from ``iterator`` on to ``position.pending`` (up to the cap over all shards);
        returns the creation time of the oldest of them."""
        oldest: datetime | None = None
        next_iterator: str | None = iterator
        while next_iterator and position.pending < self.cap:
            response = self._call("get_records", ShardIterator=next_iterator, Limit=1000)
            records = response.get("Records", [])
            for record in records:
                oldest = _earliest(oldest, record.get("dynamodb", {}).get("ApproximateCreationDateTime"))
            position.pending += len(records)
            next_iterator = response.get("NextShardIterator")
            if not records:
                break
        return oldest


def _earliest(known: datetime | None, candidate: Any) -> datetime | None:
    """The earlier of two creation times; a candidate that is not a datetime (absent) is ignored."""
    if isinstance(candidate, datetime) and (known is None or candidate < known):
        return candidate
    return known
