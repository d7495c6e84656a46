"""The one dead-letter family (pollen.adapters.deadletters): every sink takes what the store and the stream sync
send through the one port, and the local formats stay what `pollen load` and people reading them expect.
(SQS: tests/integration/test_sqs_dead_letters.py and test_replay_dead_letters.py.)"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from pollen.adapters.deadletters import (
    JsonlDeadLetters,
    MemoryDeadLetters,
    StreamRecordFile,
    read_dead_letter_file,
)
from pollen.errors import ConfigError
from pollen.ports import DeadLetterSink

RECORD = {
    "eventID": "1",
    "eventName": "INSERT",
    "dynamodb": {"SequenceNumber": "100", "NewImage": {"symbol": {"S": "IBM"}}},
}


def sinks(tmp_path: Path) -> list[DeadLetterSink]:
    """Each local sink, typed as the one port (mypy checks that each implements it)."""
    return [JsonlDeadLetters(tmp_path / "items"), StreamRecordFile(tmp_path / "records.jsonl"), MemoryDeadLetters()]


@pytest.mark.parametrize("which", range(3))
def test_every_sink_takes_one_and_many(tmp_path: Path, which: int) -> None:
    sink = sinks(tmp_path)[which]
    sink.put("assets", {"symbol": "A"}, "one")
    sink.put_many("assets", [({"symbol": "B"}, "two"), ({"symbol": "C"}, "three")], operation="delete")
    sink.put_many("assets", [])  # nothing to keep writes nothing


def test_memory_keeps_the_operation_of_each_entry() -> None:
    sink = MemoryDeadLetters()
    sink.put("assets", {"symbol": "A"}, "one")
    sink.put_many("assets", [({"symbol": "B"}, "gone")], operation="delete")
    assert sink.entries == [("assets", {"symbol": "A"}, "one"), ("assets", {"symbol": "B"}, "gone")]
    assert sink.operations == ["put", "delete"]


def test_item_files_keep_their_replayable_format(tmp_path: Path) -> None:
    sink = JsonlDeadLetters(tmp_path, run_id="run1")
    sink.put_many("earnings", [({"symbol": "IBM", "eps": Decimal("1.10")}, "throttled")])
    sink.put("earnings", {"symbol": "IBM", "fiscalPeriod": "Q"}, "bad key", operation="delete")
    header, items = read_dead_letter_file(tmp_path / "earnings-run1.jsonl")
    assert header == ("put", "earnings") and items == [{"symbol": "IBM", "eps": Decimal("1.10")}]
    header, keys = read_dead_letter_file(tmp_path / "earnings-run1.deletes.jsonl")
    assert header == ("delete", "earnings") and keys == [{"symbol": "IBM", "fiscalPeriod": "Q"}]
    reasons = (tmp_path / "earnings-run1.reasons.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in reasons] == [{"reason": "throttled", "item": True}]
    assert sink.files() == [tmp_path / "earnings-run1.deletes.jsonl", tmp_path / "earnings-run1.jsonl"]


def test_stream_records_keep_their_file_format(tmp_path: Path) -> None:
    sink = StreamRecordFile.in_home(tmp_path)
    assert sink.path == tmp_path / "dead-letters" / "stream-records.jsonl"
    sink.put("assets", RECORD, "x" * 600)
    sink.put_many("assets", [({"document": {"symbol": "MSFT"}}, "rejected")])
    lines = [json.loads(line) for line in sink.path.read_text(encoding="utf-8").splitlines()]
    assert [sorted(line) for line in lines] == [["at", "reason", "record", "table"]] * 2
    assert lines[0]["record"] == RECORD and lines[0]["table"] == "assets" and lines[0]["reason"] == "x" * 500
    assert lines[1]["record"] == {"document": {"symbol": "MSFT"}}
    assert sink.read() == lines
    assert StreamRecordFile(tmp_path / "none.jsonl").read() == []


@pytest.mark.parametrize("which", range(2))
def test_a_folder_that_cannot_be_written_is_a_configuration_error(tmp_path: Path, which: int) -> None:
    blocked = tmp_path / "home"
    blocked.write_text("a file where the folder should be")
    choices: list[DeadLetterSink] = [JsonlDeadLetters(blocked / "dead-letters"), StreamRecordFile.in_home(blocked)]
    sink = choices[which]
    with pytest.raises(ConfigError, match="cannot write dead letters"):
        sink.put("assets", RECORD, "refused")
