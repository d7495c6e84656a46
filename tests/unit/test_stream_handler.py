"""The Lambda handler with Lambda-shaped DynamoDB Streams events (the ESM's record format)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.search.base import ApplyResult
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.errors import ConfigError
from pollen.handlers import stream_sync
from pollen.observability import MemorySink, MetricsRecorder
from pollen.streams.records import Change
from pollen.streams.sync import StreamSync

_ser = TypeSerializer()
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-05-01T00:00:00.000"
SEQ = 4_000_000_000_000_000_000_000


def lambda_record(
    event: str, seq: int, table: str, keys: dict[str, Any], new: Any = None, old: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1714521600,
        "Keys": {k: _ser.serialize(v) for k, v in keys.items()},
        "SequenceNumber": str(seq),
        "SizeBytes": 120,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = {k: _ser.serialize(v) for k, v in new.items()}
    if old is not None:
        body["OldImage"] = {k: _ser.serialize(v) for k, v in old.items()}
    return {
        "eventID": f"id-{seq}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": ARN.format(table=table),
    }


def overview(symbol: str, name: str) -> dict[str, Any]:
    return {"symbol": symbol, "Name": name, "PERatio": Decimal("31.5"), "lastSyncDate": "2024-05-01T00:00:00Z"}


class FailingFor:
    """Index that fails the listed documents (transiently) and applies the rest."""

    def __init__(self, inner: EmbeddedSearchIndex, failing: set[str]) -> None:
        self.inner = inner
        self.failing = failing

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = self.inner.apply([c for c in changes if c.doc_id not in self.failing])
        result.failed += [(c, "503 unavailable") for c in changes if c.doc_id in self.failing]
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make_sync(index: Any) -> tuple[StreamSync, MemoryDeadLetters]:
    letters = MemoryDeadLetters()
    return StreamSync(index, metrics=MetricsRecorder(MemorySink()), dead_letters=letters), letters


def test_applies_a_batch_and_filters_other_tables(tmp_path: Path) -> None:
    index = EmbeddedSearchIndex(tmp_path / "i.sqlite")
    sync, _ = make_sync(index)
    event = {
        "Records": [
            lambda_record("INSERT", SEQ + 1, "dev-companyOverview", {"symbol": "AAPL"}, new=overview("AAPL", "Apple")),
            lambda_record(
                "INSERT", SEQ + 2, "dev-companyOverview", {"symbol": "MSFT"}, new=overview("MSFT", "Microsoft")
            ),
            lambda_record(
                "REMOVE", SEQ + 3, "dev-companyOverview", {"symbol": "MSFT"}, old=overview("MSFT", "Microsoft")
            ),
            lambda_record(
                "INSERT",
                SEQ + 4,
                "dev-earnings",
                {"symbol": "AAPL", "fiscalPeriod": "ANNUAL#2023"},
                new={"symbol": "AAPL", "fiscalPeriod": "ANNUAL#2023"},
            ),
        ]
    }
    assert stream_sync.handle(event, sync, table_prefix="dev-") == {"batchItemFailures": []}
    assert dict(index.documents("companyOverview")) == {
        "AAPL": {"symbol": "AAPL", "Name": "Apple", "PERatio": "31.5", "lastSyncDate": "2024-05-01T00:00:00Z"}
    }
    assert sync.metrics.total("RecordsSkipped", reason="table") == 1


def test_reports_only_the_earliest_failed_sequence_number(tmp_path: Path) -> None:
    index = EmbeddedSearchIndex(tmp_path / "i.sqlite")
    sync, _ = make_sync(FailingFor(index, {"B", "D"}))
    records = [
        lambda_record("INSERT", SEQ + i, "dev-companyOverview", {"symbol": s}, new=overview(s, s))
        for i, s in enumerate("ABCDE", start=1)
    ]
    response = stream_sync.handle({"Records": records}, sync, table_prefix="dev-")
    assert response == {"batchItemFailures": [{"itemIdentifier": str(SEQ + 2)}]}
    # Lambda redelivers from B: with the index healthy again, everything converges (C and E again are no-ops).
    healthy, _ = make_sync(index)
    assert stream_sync.handle({"Records": records[1:]}, healthy, table_prefix="dev-") == {"batchItemFailures": []}
    assert [doc_id for doc_id, _ in index.documents("companyOverview")] == ["A", "B", "C", "D", "E"]
    assert healthy.metrics.total("VersionConflicts") == 2


def test_entire_batch_failure_is_reported_not_raised(tmp_path: Path) -> None:
    sync, _ = make_sync(FailingFor(EmbeddedSearchIndex(tmp_path / "i.sqlite"), {"A", "B"}))
    records = [
        lambda_record("INSERT", SEQ + 9, "dev-companyOverview", {"symbol": "B"}, new=overview("B", "b")),
        lambda_record("INSERT", SEQ + 10, "dev-companyOverview", {"symbol": "A"}, new=overview("A", "a")),
    ]
    assert stream_sync.handle({"Records": records}, sync, table_prefix="dev-") == {
        "batchItemFailures": [{"itemIdentifier": str(SEQ + 9)}]
    }


def test_bad_records_are_dead_lettered_whole(tmp_path: Path) -> None:
    sync, letters = make_sync(EmbeddedSearchIndex(tmp_path / "i.sqlite"))
    bad = lambda_record("INSERT", SEQ + 1, "dev-companyOverview", {"symbol": "X"})  # no NewImage
    assert stream_sync.handle({"Records": [bad]}, sync, table_prefix="dev-") == {"batchItemFailures": []}
    ((table, record, reason),) = letters.entries
    assert table == "companyOverview" and record == bad and "NewImage" in reason
    outcome = sync.apply_records([bad], "companyOverview")
    assert outcome.ok and outcome.invalid == 1
    assert outcome.errors == [f"companyOverview record {SEQ + 1}: dead-lettered: {reason}"]


def test_handler_entry_point_refuses_to_index_into_a_file_under_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without POLLEN_SEARCH_URL the Lambda function has nowhere durable to index: a configuration error, not an
    embedded index in /tmp that Lambda throws away (the CLI keeps the embedded default)."""
    monkeypatch.setenv("POLLEN_HOME", str(tmp_path))
    monkeypatch.setenv("POLLEN_TABLE_PREFIX", "dev-")
    monkeypatch.setenv("POLLEN_DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:1/123456789012/dlq")
    monkeypatch.setattr(stream_sync, "_cached", None)
    record = lambda_record("INSERT", SEQ + 1, "dev-companyOverview", {"symbol": "AAPL"}, new=overview("AAPL", "Apple"))
    with pytest.raises(ConfigError, match="POLLEN_SEARCH_URL"):
        stream_sync.handler({"Records": [record]}, None)
    monkeypatch.setattr(stream_sync, "_cached", None)
    assert not list(tmp_path.rglob("*"))
