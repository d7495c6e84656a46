"""A stream backlog drained by `stream sync --once`: today's pages and batches of 10 against large ones, one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from bench.bench_stream import overview
from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.adapters.stream_records import WireRecordsClient, records_client
from pollen.local.stack import MotoServer
from pollen.observability import MemorySink, MetricsRecorder
from pollen.streams.checkpoints import FileCheckpoints
from pollen.streams.poller import GET_RECORDS_MAX, StreamPoller, StreamReport, StreamSource
from pollen.streams.sync import StreamSync
from pollen.tables import STREAMED_TABLES, TABLES

RECORDS = int(os.environ.get("POLLEN_BENCH_STREAM_RECORDS", "10000"))
#: A src tree of the code to compare with (e.g. `git archive <commit> src | tar -x -C DIR`, then DIR/src).
BASE_SOURCE = os.environ.get("POLLEN_BENCH_BASE_SRC")
_ser = TypeSerializer()


class _SourceMotoServer(MotoServer):
    """moto's server as another src tree runs it (its own pollen.local.motoserver and motopatch)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def child_environment(self) -> dict[str, str]:
        return {**super().child_environment(), "PYTHONPATH": self.source}


class _CountingIndex(EmbeddedSearchIndex):
    """The embedded index, counting applies: each is one SQLite transaction."""

    transactions = 0

    def apply(self, changes: Any) -> Any:
        self.transactions += 1
        return super().apply(changes)


def _load(endpoint: str, prefix: str) -> float:
    """Create the streamed tables and write RECORDS companyOverview items (one INSERT record each)."""
    dynamodb = make_client("dynamodb", endpoint_url=endpoint)
    for table in TABLES.values():  # every table, as `pollen tables create` makes them (run records included)
        dynamodb.create_table(**table.create_table_request(prefix + table.name))
    started = time.perf_counter()
    name = prefix + "companyOverview"
    for start in range(0, RECORDS, 25):
        requests = [
            {"PutRequest": {"Item": {k: _ser.serialize(v) for k, v in overview(i).items()}}}
            for i in range(start, min(start + 25, RECORDS))
        ]
        pending: dict[str, Any] = {name: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return time.perf_counter() - started


def _drain(
    endpoint: str, home: Path, prefix: str, label: str, backlog_batch_size: int, *, wire: bool
) -> tuple[float, int, int]:
    """`stream sync --once` as the CLI builds it (all streamed tables, file checkpoints, batch 10, window 5 s)."""
    streams = make_client("dynamodbstreams", endpoint_url=endpoint, max_attempts=3)
    if wire:
        streams = records_client(streams, endpoint_url=endpoint, region="us-east-1")
    index = _CountingIndex(home / f"{label}.sqlite")
    sync = StreamSync(index, metrics=MetricsRecorder(MemorySink()), dead_letters=MemoryDeadLetters())
    poller = StreamPoller(
        streams,
        sync,
        FileCheckpoints(home / f"{label}-checkpoints.json"),
        [StreamSource(t, prefix + t.name) for t in STREAMED_TABLES],
        batch_size=10,
        backlog_batch_size=backlog_batch_size,
        window_s=5.0,
    )
    started = time.perf_counter()
    report: StreamReport = poller.run_once()
    elapsed = time.perf_counter() - started
    assert report.ok and report.indexed == RECORDS, report
    assert index.get("companyOverview", f"SYM{RECORDS - 1:06d}") is not None
    index.close()
    return elapsed, index.transactions, report.batches


def _cli_drain(endpoint: str, home: Path, prefix: str, label: str, source: str | None) -> tuple[float, float]:
    """`pollen stream sync --once --json` in a child process (``source``: another src tree to run, e.g. the code
    before this change); returns its wall time and the report's own duration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLEN_")}
    env.update(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=endpoint,
        AWS_REGION="us-east-1",
        POLLEN_TABLE_PREFIX=prefix,
        POLLEN_HOME=str(home / label),
    )
    if source:
        env["PYTHONPATH"] = source
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pollen", "stream", "sync", "--once", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - started
    report = json.loads(done.stdout)
    assert report["ok"] and report["indexed"] == RECORDS, (report, done.stderr[-2000:])
    return wall, float(report["duration_s"])


def main() -> str:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="pollen-bench-backlog-") as scratch, MotoServer() as server:
        home = Path(scratch)
        prefix = f"b{uuid.uuid4().hex[:8]}-"
        load_s = _load(server.endpoint, prefix)
        # The same stream, read from its start by each poller with its own checkpoints and index.
        before_s, before_tx, _ = _drain(server.endpoint, home, prefix, "before", 10, wire=False)
        large_s, large_tx, _ = _drain(server.endpoint, home, prefix, "large", GET_RECORDS_MAX, wire=False)
        after_s, after_tx, _ = _drain(server.endpoint, home, prefix, "after", GET_RECORDS_MAX, wire=True)
        cli_rows = []
        if BASE_SOURCE:
            # The code before, client and embedded server both: its own server, loaded the same way.
            with _SourceMotoServer(BASE_SOURCE) as base_server:
                _load(base_server.endpoint, prefix)
                wall, job = _cli_drain(base_server.endpoint, home, prefix, "cli-before-own-server", BASE_SOURCE)
                cli_rows.append(("the code before (client and its embedded server)", wall, job))
            wall, job = _cli_drain(server.endpoint, home, prefix, "cli-before", BASE_SOURCE)
            cli_rows.append(("the code before (client) against this server", wall, job))
        wall, job = _cli_drain(server.endpoint, home, prefix, "cli-after", None)
        cli_rows.append(("this code (client and server)", wall, job))
        load = os.getloadavg()[0]
    before_rate, large_rate, after_rate = RECORDS / before_s, RECORDS / large_s, RECORDS / after_s
    return "\n".join(
        [
            "## Stream sync: a backlog drained by `stream sync --once`",
            "",
            f"Method: {RECORDS:,} companyOverview items written to moto's server (child process, HTTP on loopback;",
            f"BatchWriteItem, {load_s:.0f} s), so the table's stream holds {RECORDS:,} INSERT records; then the same",
            "stream drained three times from its start, each time by a `StreamPoller.run_once` built as `pollen stream",
            "sync --once` builds it (the three streamed tables, file checkpoints with fsync, the embedded index, batch",
            "10, window 5 s) with its own checkpoints and index file. Before: pages and index transactions of 10",
            "records through boto3 (`backlog_batch_size=10`, the poller's behaviour until now). Large batches:",
            "GetRecords pages of up to 1,000, everything read applied at once when at least a batch is waiting (the",
            "default), still through boto3. After: the same with GetRecords through pollen's JSON client",
            f"(`{WireRecordsClient.__name__}`, what `pollen stream sync` uses against a loopback endpoint). Every record",
            f"indexed in each run. Load average at the end: {load:.1f} on 2 shared cores.",
            "",
            "| poller | seconds | records/s | index transactions | speed-up |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| before: pages and batches of 10, boto3 | {before_s:.1f} | {before_rate:,.0f} | {before_tx:,} | 1.0x |",
            f"| pages of 1,000, backlog in large batches, boto3 | {large_s:.1f} | {large_rate:,.0f} "
            f"| {large_tx:,} | {large_rate / before_rate:.1f}x |",
            f"| after: the same, GetRecords through the JSON client | {after_s:.1f} | {after_rate:,.0f} "
            f"| {after_tx:,} | {after_rate / before_rate:.1f}x |",
            "",
            "`pollen stream sync --once` itself on the same stream (a child process each, its own POLLEN_HOME; job",
            "seconds are the report's `duration_s`, wall includes start-up). The code before is a `src` tree given",
            "by `POLLEN_BENCH_BASE_SRC` (`git archive <commit> src`), run once against a moto server of its own",
            "(started from that tree, so with its motopatch, and loaded the same way) and once against this one.",
            "",
            "| `pollen stream sync --once` | wall s | job s | records/s (job) | speed-up (job) | speed-up (wall) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {name} | {wall:.1f} | {job:.1f} | {RECORDS / job:,.0f} | {cli_rows[0][2] / job:.1f}x "
                f"| {cli_rows[0][1] / wall:.1f}x |"
                for name, wall, job in cli_rows
            ),
            "",
            "Caught up, the poller still applies batches of `POLLEN_STREAM_BATCH_SIZE` (10) after at most",
            "`POLLEN_STREAM_WINDOW_S`; the Lambda's event source mapping keeps batch 10.",
            "",
        ]
    )


if __name__ == "__main__":
    print(main())
