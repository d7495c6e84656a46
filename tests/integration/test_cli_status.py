"""`pollen status` and run records through the command line, against the moto server over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.status import StreamLag, local_dead_letters, queue_dead_letters
from pollen.streams.checkpoints import CHECKPOINT_FILE, FileCheckpoints
from pollen.tables import ASSETS
from tests.conftest import run_pollen

pytestmark = pytest.mark.integration


def test_a_job_command_leaves_a_run_record_and_status_reports_it_as_one_json_object(
    pollen_env: dict[str, str], dynamodb: Any, table_prefix: str, tmp_path: Path
) -> None:
    assert run_pollen("tables", "create", "--json", env=pollen_env).returncode == 0
    items = tmp_path / "assets.jsonl"
    items.write_text(
        "\n".join(
            json.dumps(
                {
                    "symbol": s,
                    "lastPollenationDate": "1970-01-01T00:00:00Z",
                    "status": "active",
                    "volume": 10,
                    "lastSyncDate": "2025-01-06T10:00:00Z",
                }
            )
            for s in ("IBM", "MSFT")
        )
        + "\n"
    )
    loaded = run_pollen("load", "assets", str(items), "--json", env=pollen_env)
    assert loaded.returncode == 0, loaded.stderr

    records = dynamodb.query(
        TableName=f"{table_prefix}pollenControl",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "run#load"}},
    )["Items"]
    assert len(records) == 1
    record = records[0]
    assert record["ok"] == {"BOOL": True} and record["written"] == {"N": "2"} and record["source"] == {"S": "cli"}
    assert record["tables"]["M"]["assets"]["M"]["written"] == {"N": "2"}

    page = tmp_path / "out" / "status.html"
    result = run_pollen("status", "--json", "--html", str(page), "--at", "2025-01-06T12:00:00Z", env=pollen_env)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()  # exactly one JSON object on stdout
    report = json.loads(line)
    assert {"ok", "written", "unchanged", "failed", "invalid", "duration_s", "errors"} <= set(report)
    assert report["freshness"]["assets_active"] == 2 and report["pollination"]["due"]["never_pollenated"] == 2
    assert report["runs"]["last"]["load"]["ok"] is True
    assert report["health"] == "attention" and report["reasons"] == ["no sync-assets run in 36 h"]
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_status_with_a_bad_time_is_a_usage_error(pollen_env: dict[str, str]) -> None:
    result = run_pollen("status", "--at", "yesterday", "--json", env=pollen_env)
    assert result.returncode == 2
    assert json.loads(result.stdout)["ok"] is False and "--at" in result.stderr


def test_dead_letters_waiting_are_counted_in_local_files_and_on_the_queue(endpoint: str, tmp_path: Path) -> None:
    folder = tmp_path / "dead-letters"
    folder.mkdir()
    (folder / "assets-run1.jsonl").write_text('{"symbol": "A"}\n{"symbol": "B"}\n')
    (folder / "assets-run1.reasons.jsonl").write_text('{"reason": "x", "item": true}\n' * 2)  # not items
    (folder / "stream-records.jsonl").write_text('{"eventID": "1"}\n')
    assert local_dead_letters(tmp_path).waiting == 3
    assert local_dead_letters(tmp_path / "nowhere").waiting == 0

    sqs = make_client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"dead-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
    counted = queue_dead_letters(sqs, url)
    assert (counted.waiting, counted.where, counted.approximate) == (4, url, True)


def test_stream_lag_counts_the_records_after_the_checkpoint_and_ages_the_oldest(
    dynamodb: Any, streams: Any, table_prefix: str, tmp_path: Path
) -> None:
    ensure_tables(dynamodb, table_prefix, [ASSETS])
    name = f"{table_prefix}assets"
    lag = StreamLag(
        streams,
        partial(FileCheckpoints.if_present, tmp_path),
        [(ASSETS, name)],
        now=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    assert lag() is None  # no local poller has run here
    (tmp_path / CHECKPOINT_FILE).write_text("{}")
    for symbol in ("IBM", "MSFT"):
        dynamodb.put_item(
            TableName=name, Item={"symbol": {"S": symbol}, "lastPollenationDate": {"S": "1970-01-01T00:00:00Z"}}
        )
    (position,) = lag() or []
    assert (position.table, position.checkpoint, position.pending, position.capped) == ("assets", None, 2, False)
    assert 3500 < position.lag_s < 3700  # the oldest record is about an hour older than "now"
