"""The poller against a scripted Streams client: shard order, closed shards, expired iterators, windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.search.base import ApplyResult
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.adapters.stream_records import binary_as_bytes
from pollen.observability import MemorySink, MetricsRecorder
from pollen.streams.checkpoints import FileCheckpoints, ShardCheckpoint
from pollen.streams.poller import StreamPoller, StreamReport, StreamSource, parents_first
from pollen.streams.records import Change
from pollen.streams.sync import StreamSync
from pollen.tables import COMPANY_OVERVIEW

_ser = TypeSerializer()
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t-companyOverview/stream/2024"
BASE = 5 * 10**21


def rec(event: str, seq: int, symbol: str, name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"SequenceNumber": str(seq), "Keys": {"symbol": _ser.serialize(symbol)}}
    if name is not None:
        body["NewImage"] = {"symbol": _ser.serialize(symbol), "Name": _ser.serialize(name)}
    return {"eventName": event, "dynamodb": body}


class FakeStreams:
    """Shards: a closed parent, then an open child (a split)."""

    def __init__(self) -> None:
        self.shards = {
            "shard-0": {
                "records": [rec("INSERT", BASE + 1, "A", "one"), rec("MODIFY", BASE + 2, "A", "two")],
                "closed": True,
            },
            "shard-1": {
                "records": [rec("MODIFY", BASE + 5, "A", "three"), rec("INSERT", BASE + 6, "B", "b")],
                "closed": False,
            },
        }
        self.reads: list[str] = []
        self.expire_next = False

    def list_streams(self, TableName: str) -> dict[str, Any]:
        return {"Streams": [{"StreamArn": ARN, "TableName": TableName, "StreamLabel": "2024"}]}

    def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:
        child = {
            "ShardId": "shard-1",
            "ParentShardId": "shard-0",
            "SequenceNumberRange": {"StartingSequenceNumber": str(BASE + 5)},
        }
        parent = {
            "ShardId": "shard-0",
            "SequenceNumberRange": {"StartingSequenceNumber": str(BASE + 1), "EndingSequenceNumber": str(BASE + 2)},
        }
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": [child, parent]}}  # child listed first

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, Any]:
        records = self.shards[ShardId]["records"]
        position = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            position = next(i + 1 for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == SequenceNumber)
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.expire_next:
            self.expire_next = False
            raise ClientError({"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords")
        shard_id, position = ShardIterator.split("|")
        self.reads.append(shard_id)
        shard = self.shards[shard_id]
        batch = shard["records"][int(position) : int(position) + Limit]
        end = int(position) + len(batch)
        if shard["closed"] and end >= len(shard["records"]):
            return {"Records": batch}  # a closed shard read to its end: no next iterator
        return {"Records": batch, "NextShardIterator": f"{shard_id}|{end}"}


def make(tmp_path: Path, client: FakeStreams, **options: Any) -> tuple[StreamPoller, EmbeddedSearchIndex]:
    index = EmbeddedSearchIndex(tmp_path / "i.sqlite")
    sync = StreamSync(index, metrics=MetricsRecorder(MemorySink()), dead_letters=MemoryDeadLetters())
    poller = StreamPoller(
        client,
        sync,
        FileCheckpoints(tmp_path / "cp.json"),
        [StreamSource(COMPANY_OVERVIEW, "t-companyOverview")],
        **options,
    )
    return poller, index


def test_parents_before_children(tmp_path: Path) -> None:
    client = FakeStreams()
    poller, index = make(tmp_path, client, batch_size=1, window_s=0)
    report = poller.run_once()
    assert report.ok and report.records == 4
    assert client.reads.index("shard-1") > max(i for i, s in enumerate(client.reads) if s == "shard-0")
    assert index.get("companyOverview", "A") == {"symbol": "A", "Name": "three"}
    checkpoints = FileCheckpoints(tmp_path / "cp.json").shards(ARN)
    assert checkpoints["shard-0"].finished and not checkpoints["shard-1"].finished
    assert checkpoints["shard-1"].sequence_number == str(BASE + 6)
    # Restarted: the finished parent is not read again, the child resumes after its checkpoint.
    client.reads.clear()
    again, _ = make(tmp_path, client, batch_size=1, window_s=0)
    assert again.run_once().records == 0
    assert client.reads == ["shard-1"]
    assert again.head_sequence(COMPANY_OVERVIEW) == str(BASE + 6)


def test_parents_first_ordering() -> None:
    shards = [
        {"ShardId": "c", "ParentShardId": "b"},
        {"ShardId": "b", "ParentShardId": "a"},
        {"ShardId": "a"},
        {"ShardId": "x", "ParentShardId": "gone"},
    ]
    assert [s["ShardId"] for s in parents_first(shards)] == ["a", "x", "b", "c"]


def test_expired_iterator_restarts_from_the_checkpoint(tmp_path: Path) -> None:
    client = FakeStreams()
    client.expire_next = True
    poller, index = make(tmp_path, client, batch_size=10, window_s=0)
    assert poller.run_once().ok
    assert index.get("companyOverview", "B") == {"symbol": "B", "Name": "b"}


def test_small_batches_wait_for_the_window_unless_draining(tmp_path: Path) -> None:
    client = FakeStreams()
    now = [0.0]
    poller, index = make(tmp_path, client, batch_size=10, window_s=5.0, monotonic=lambda: now[0], sleep=lambda s: None)
    report = StreamReport()
    # A continuous pass: the parent is closed (flushed at its end); the child's 2 records wait inside the window...
    poller._pass(report, drain=False)
    assert index.get("companyOverview", "A") == {"symbol": "A", "Name": "two"}
    assert index.get("companyOverview", "B") is None
    now[0] += 6  # ...until the window has passed
    poller._pass(report, drain=False)
    assert index.get("companyOverview", "B") == {"symbol": "B", "Name": "b"}
    stops = iter([False, True])
    assert poller.run(lambda: next(stops)).ok


class BacklogStreams(FakeStreams):
    """One open shard holding a backlog: ``keys`` symbols, each written several times, some deleted at the end."""

    def __init__(self, records: int, keys: int = 97) -> None:
        super().__init__()
        backlog = [rec("MODIFY", BASE + n, f"K{n % keys}", f"name {n}") for n in range(records)]
        for n in range(records, records + min(records, 5)):  # the last writes of a few keys are deletes
            backlog.append(rec("REMOVE", BASE + n, f"K{n % keys}"))
        self.shards = {"shard-0": {"records": backlog, "closed": False}}
        self.limits: list[int] = []

    def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:
        shard = {"ShardId": "shard-0", "SequenceNumberRange": {"StartingSequenceNumber": str(BASE)}}
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": [shard]}}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.limits.append(Limit)
        return super().get_records(ShardIterator, Limit)

    def expected(self) -> dict[str, dict[str, Any] | None]:
        """Each key's last state: what the index must hold once the backlog is applied."""
        last: dict[str, dict[str, Any] | None] = {}
        for record in self.shards["shard-0"]["records"]:
            symbol = record["dynamodb"]["Keys"]["symbol"]["S"]
            image = record["dynamodb"].get("NewImage")
            last[symbol] = {"symbol": symbol, "Name": image["Name"]["S"]} if image else None
        return last


class CountingIndex(EmbeddedSearchIndex):
    """The embedded index, recording the size of every apply (each apply is one SQLite transaction)."""

    def __init__(self, path: Path, fail_sequence: str | None = None) -> None:
        super().__init__(path)
        self.transactions: list[int] = []
        self.fail_sequence = fail_sequence

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        self.transactions.append(len(changes))
        failing = [c for c in changes if c.sequence_number == self.fail_sequence]
        if failing:
            self.fail_sequence = None  # fails once, as a transient index error would
        result = super().apply([c for c in changes if c not in failing])
        result.failed += [(c, "simulated: index unavailable") for c in failing]
        return result


def backlog_poller(tmp_path: Path, client: FakeStreams, index: EmbeddedSearchIndex, **options: Any) -> StreamPoller:
    sync = StreamSync(index, metrics=MetricsRecorder(MemorySink()), dead_letters=MemoryDeadLetters())
    checkpoints = FileCheckpoints(tmp_path / "cp.json")
    return StreamPoller(client, sync, checkpoints, [StreamSource(COMPANY_OVERVIEW, "t-companyOverview")], **options)


def assert_converged(index: EmbeddedSearchIndex, client: BacklogStreams) -> None:
    for symbol, state in client.expected().items():
        assert index.get("companyOverview", symbol) == state, symbol


def test_a_backlog_is_applied_in_large_transactions_and_converges(tmp_path: Path) -> None:
    client = BacklogStreams(2_500)
    index = CountingIndex(tmp_path / "i.sqlite")
    poller = backlog_poller(tmp_path, client, index, batch_size=10, window_s=5.0)
    report = poller.run_once()
    assert report.ok and report.records == 2_505
    # Pages as large as the stream gives, each applied in one transaction: not 251 transactions of 10.
    assert set(client.limits) == {1000}
    assert index.transactions == [1000, 1000, 505]
    assert report.batches == 3
    assert_converged(index, client)
    last = client.shards["shard-0"]["records"][-1]["dynamodb"]["SequenceNumber"]
    assert FileCheckpoints(tmp_path / "cp.json").get(ARN, "shard-0") == ShardCheckpoint(last)


def test_caught_up_batches_stay_small(tmp_path: Path) -> None:
    client = BacklogStreams(2_500)
    index = CountingIndex(tmp_path / "i.sqlite")
    now = [0.0]
    poller = backlog_poller(tmp_path, client, index, batch_size=10, window_s=5.0, monotonic=lambda: now[0])
    poller.run_once()
    index.transactions.clear()
    records = client.shards["shard-0"]["records"]
    records += [rec("MODIFY", BASE + 10_000 + n, "NEW", f"new {n}") for n in range(3)]
    poller._pass(StreamReport(), drain=False)
    assert index.transactions == []  # 3 records wait for the caught-up batch of 10 or the window
    now[0] += 6
    poller._pass(StreamReport(), drain=False)
    assert index.transactions == [3]
    assert index.get("companyOverview", "NEW") == {"symbol": "NEW", "Name": "new 2"}


def test_backlog_batch_equal_to_batch_size_reads_and_applies_that_many(tmp_path: Path) -> None:
    client = BacklogStreams(95)
    index = CountingIndex(tmp_path / "i.sqlite")
    poller = backlog_poller(tmp_path, client, index, batch_size=10, backlog_batch_size=10, window_s=0)
    assert poller.run_once().ok
    assert set(client.limits) == {10}
    assert index.transactions == [10] * 10
    assert_converged(index, client)


def test_a_failure_inside_a_large_batch_keeps_the_checkpoint_before_it(tmp_path: Path) -> None:
    client = BacklogStreams(2_500)
    records = client.shards["shard-0"]["records"]
    failing = records[1_234]["dynamodb"]["SequenceNumber"]
    index = CountingIndex(tmp_path / "i.sqlite", fail_sequence=failing)
    poller = backlog_poller(tmp_path, client, index, batch_size=10, window_s=0)
    first = poller.run_once()
    assert not first.ok and first.failed == 1
    # Everything before the failed record is committed; the checkpoint stops right before it.
    checkpoint = FileCheckpoints(tmp_path / "cp.json").get(ARN, "shard-0")
    assert checkpoint == ShardCheckpoint(records[1_233]["dynamodb"]["SequenceNumber"])
    second = poller.run_once()  # delivered again from the failed record: later ones are version conflicts
    assert second.ok and second.records == len(records) - 1_234
    assert_converged(index, client)


def test_binary_from_json_becomes_bytes_at_any_depth() -> None:
    value = {"M": {"b": {"B": "AP8="}, "s": {"BS": ["AQ==", "Ag=="]}, "l": {"L": [{"B": "eA=="}, {"N": "1"}]}}}
    assert binary_as_bytes(value) == {
        "M": {"b": {"B": b"\x00\xff"}, "s": {"BS": [b"\x01", b"\x02"]}, "l": {"L": [{"B": b"x"}, {"N": "1"}]}}
    }
    assert binary_as_bytes({"B": "not base64!"}) == {"B": "not base64!"}  # left for the decoder to dead-letter
    assert binary_as_bytes({"S": "AP8="}) == {"S": "AP8="}
