"""The local stream poller behind `pollen stream sync`: DescribeStream, shard iterators, GetRecords.

Per table it finds the latest stream, lists its shards and reads them parents first (a child shard is read only
once its parent is finished, so a key's records keep their order across a shard split). GetRecords pages are as
large as the stream gives (up to ``backlog_batch_size``, at most 1,000). Caught up, records are applied in batches
of ``batch_size`` (the Lambda's batch) and a smaller batch waits at most ``window_s`` for more (``--once`` does not
wait: it drains what is there, then returns). Behind (at least ``batch_size`` records waiting), everything read is
applied at once, up to ``backlog_batch_size`` records per index transaction: a backlog drains in a few large
transactions instead of one per ten records. The checkpoint moves only past records the index has applied; on a
failure it stays before the earliest failed record and reading resumes from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.aws import error_code, translate
from pollen.ports import ZERO_SEQUENCE, later_sequence
from pollen.report import JobReport
from pollen.streams.checkpoints import FileCheckpoints, ShardCheckpoint
from pollen.streams.sync import BatchOutcome, StreamSync
from pollen.tables import TableDef

log = logging.getLogger(__name__)

#: The most records one GetRecords call returns (DynamoDB Streams' own limit).
GET_RECORDS_MAX = 1000

#: GetRecords page size when only looking for the stream's head (backfill position).
_PEEK_LIMIT = GET_RECORDS_MAX


@dataclass(frozen=True)
class StreamSource:
    table: TableDef
    physical_name: str


class StreamReport(JobReport):
    job: str = "stream sync"
    records: int = 0
    indexed: int = 0
    deleted: int = 0
    conflicts: int = 0
    skipped: int = 0
    dead_letters: int = 0
    retries: int = 0
    batches: int = 0
    lag_s: float | None = None

    def absorb(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.records += outcome.records
        self.indexed += outcome.indexed
        self.deleted += outcome.deleted
        self.conflicts += outcome.conflicts
        self.skipped += outcome.skipped
        self.dead_letters += outcome.dead_letters
        self.retries += outcome.retries
        self.invalid += outcome.invalid
        self.failed += len(outcome.failed)
        self.written = self.indexed + self.deleted
        self.unchanged = self.conflicts + self.skipped
        if outcome.lag_s is not None:
            self.lag_s = round(outcome.lag_s, 3)
        for error in outcome.errors:
            self.add_error(error)
        self.ok = self.failed == 0 and not self.errors


@dataclass
class _ShardState:
    iterator: str | None = None
    pending: list[Mapping[str, Any]] = field(default_factory=list)
    first_pending_at: float = 0.0


def parents_first(shards: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Shards ordered so that every parent listed comes before its children."""
    by_id = {s["ShardId"]: s for s in shards}

    def depth(shard: Mapping[str, Any]) -> int:
        level, parent, seen = 0, shard.get("ParentShardId"), set()
        while parent in by_id and parent not in seen:
            seen.add(parent)
            level += 1
            parent = by_id[parent].get("ParentShardId")
        return level

    return sorted(shards, key=lambda s: (depth(s), s["ShardId"]))


class StreamPoller:
    def __init__(
        self,
        client: Any,
        sync: StreamSync,
        checkpoints: FileCheckpoints,
        sources: Sequence[StreamSource],
        *,
        batch_size: int = 10,
        backlog_batch_size: int = GET_RECORDS_MAX,
        window_s: float = 5.0,
        poll_interval_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.sync = sync
        self.checkpoints = checkpoints
        self.sources = list(sources)
        self.batch_size = batch_size
        # Never below the caught-up batch: with both equal the poller reads and applies batch_size at a time.
        self.backlog_batch_size = max(batch_size, backlog_batch_size)
        self.read_limit = min(GET_RECORDS_MAX, self.backlog_batch_size)
        self.window_s = window_s
        self.poll_interval_s = poll_interval_s
        self.sleep = sleep
        self.monotonic = monotonic
        self._states: dict[tuple[str, str], _ShardState] = {}
        self._arns: dict[str, str | None] = {}

    # -- AWS calls --------------------------------------------------------------------------------------------

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, name)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="dynamodbstreams", action=name) from exc

    def stream_arn(self, source: StreamSource) -> str | None:
        if source.physical_name not in self._arns:
            streams = self._call("list_streams", TableName=source.physical_name).get("Streams", [])
            streams = [s for s in streams if s.get("TableName", source.physical_name) == source.physical_name]
            latest = max(streams, key=lambda s: str(s.get("StreamLabel", "")), default=None)
            self._arns[source.physical_name] = latest["StreamArn"] if latest else None
        return self._arns[source.physical_name]

    def shards(self, stream_arn: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self._call("describe_stream", **kwargs)["StreamDescription"]
            shards += description.get("Shards", [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                return shards

    def _iterator(self, stream_arn: str, shard_id: str, report: StreamReport | None) -> str:
        checkpoint = self.checkpoints.get(stream_arn, shard_id)
        kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
        if checkpoint and checkpoint.sequence_number:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint.sequence_number)
        try:
            return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])
        except ClientError as exc:
            if error_code(exc) != "TrimmedDataAccessException":
                raise translate(exc, service="dynamodbstreams", action="get_shard_iterator") from exc
            message = f"shard {shard_id}: records after the checkpoint were trimmed; run `pollen backfill`"
            log.warning(message, extra={"stream_arn": stream_arn})
            if report is not None:
                report.add_error(message)
            kwargs = {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
            return str(self._call("get_shard_iterator", **kwargs)["ShardIterator"])

    def _get_records(self, iterator: str, limit: int) -> dict[str, Any] | None:
        """GetRecords; None when the iterator expired (the caller starts again from the checkpoint)."""
        try:
            return dict(self.client.get_records(ShardIterator=iterator, Limit=limit))
        except ClientError as exc:
            if error_code(exc) in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                return None
            raise translate(exc, service="dynamodbstreams", action="get_records") from exc

    # -- polling ----------------------------------------------------------------------------------------------

    def run_once(self) -> StreamReport:
        """Read every shard to its current end, apply everything read, and return."""
        report = StreamReport()
        self._pass(report, drain=True)
        return report

    def run(self, should_stop: Callable[[], bool], report: StreamReport | None = None) -> StreamReport:
        """Poll until ``should_stop()`` says so; sleeps ``poll_interval_s`` when nothing arrived."""
        report = report or StreamReport()
        while not should_stop():
            if self._pass(report, drain=False) == 0:
                self.sleep(self.poll_interval_s)
        self._pass(report, drain=True)
        return report

    def _pass(self, report: StreamReport, *, drain: bool) -> int:
        read = 0
        for source in self.sources:
            stream_arn = self.stream_arn(source)
            if stream_arn is None:
                report.add_error(f"{source.physical_name}: no stream enabled")
                report.ok = False
                continue
            shards = parents_first(self.shards(stream_arn))
            listed = {s["ShardId"] for s in shards}
            for shard in shards:
                shard_id = shard["ShardId"]
                parent = shard.get("ParentShardId")
                if parent is not None and parent in listed:
                    parent_checkpoint = self.checkpoints.get(stream_arn, parent)
                    if parent_checkpoint is None or not parent_checkpoint.finished:
                        continue  # the parent's records come first
                checkpoint = self.checkpoints.get(stream_arn, shard_id)
                if checkpoint is not None and checkpoint.finished:
                    continue
                read += self._read_shard(source, stream_arn, shard_id, report, drain=drain)
        return read

    def _read_shard(
        self, source: StreamSource, stream_arn: str, shard_id: str, report: StreamReport, *, drain: bool
    ) -> int:
        state = self._states.setdefault((stream_arn, shard_id), _ShardState())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="get-records") as reader:
            return self._drain_shard(source, stream_arn, shard_id, state, report, reader, drain=drain)

    def _drain_shard(
        self,
        source: StreamSource,
        stream_arn: str,
        shard_id: str,
        state: _ShardState,
        report: StreamReport,
        reader: ThreadPoolExecutor,
        *,
        drain: bool,
    ) -> int:
        read = 0
        closed = False
        ahead: Future[dict[str, Any] | None] | None = None
        while True:
            if state.iterator is None:
                state.iterator = self._iterator(stream_arn, shard_id, report)
                state.pending.clear()
            response = ahead.result() if ahead is not None else self._get_records(state.iterator, self.read_limit)
            ahead = None
            if response is None:
                state.iterator = None
                continue
            records = self._take_page(state, response)
            read += len(records)
            closed = state.iterator is None
            ahead = self._read_ahead(state, records, reader)
            if not self._apply_backlog(source, stream_arn, shard_id, state, report, ahead):
                return read
            if not records or closed:
                break
        self._settle_shard(source, stream_arn, shard_id, state, report, closed=closed, drain=drain)
        return read

    def _take_page(self, state: _ShardState, response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Add one GetRecords page to the pending records and move the iterator on (None: the shard is closed)."""
        records: list[Mapping[str, Any]] = response.get("Records", [])
        if records and not state.pending:
            state.first_pending_at = self.monotonic()
        state.pending += records
        state.iterator = response.get("NextShardIterator")
        return records

    def _read_ahead(
        self, state: _ShardState, records: list[Mapping[str, Any]], reader: ThreadPoolExecutor
    ) -> Future[dict[str, Any] | None] | None:
        """When behind, the next page is read (one call at a time) while this one is applied; reading moves no
        checkpoint."""
        behind = len(state.pending) >= self.batch_size
        if behind and records and state.iterator is not None and self.backlog_batch_size > self.batch_size:
            return reader.submit(self._get_records, state.iterator, self.read_limit)
        return None

    def _apply_backlog(
        self,
        source: StreamSource,
        stream_arn: str,
        shard_id: str,
        state: _ShardState,
        report: StreamReport,
        ahead: Future[dict[str, Any] | None] | None,
    ) -> bool:
        """Behind: apply what is read in large transactions. False when a batch failed (reading stops there)."""
        while len(state.pending) >= self.batch_size:
            count = min(len(state.pending), self.backlog_batch_size)
            if not self._flush(source, stream_arn, shard_id, state, report, count):
                if ahead is not None:  # its page is dropped: reading resumes from the checkpoint
                    ahead.cancel()
                    wait([ahead])
                return False
        return True

    def _settle_shard(
        self,
        source: StreamSource,
        stream_arn: str,
        shard_id: str,
        state: _ShardState,
        report: StreamReport,
        *,
        closed: bool,
        drain: bool,
    ) -> None:
        """At the end of what can be read now: apply what is pending when draining, the shard closed or the batch
        window is over; a closed shard with nothing pending is checkpointed as finished."""
        window_over = state.pending and self.monotonic() - state.first_pending_at >= self.window_s
        flush_now = state.pending and (drain or closed or window_over)
        if flush_now and not self._flush(source, stream_arn, shard_id, state, report, len(state.pending)):
            return
        if closed and not state.pending:
            previous = self.checkpoints.get(stream_arn, shard_id)
            self.checkpoints.put(
                stream_arn, shard_id, ShardCheckpoint(previous.sequence_number if previous else None, finished=True)
            )
            self._states.pop((stream_arn, shard_id), None)

    def _flush(
        self,
        source: StreamSource,
        stream_arn: str,
        shard_id: str,
        state: _ShardState,
        report: StreamReport,
        count: int,
    ) -> bool:
        """Apply the first ``count`` pending records; checkpoint. False when some failed (reading stops there)."""
        batch, state.pending = state.pending[:count], state.pending[count:]
        if state.pending:
            state.first_pending_at = self.monotonic()
        outcome = self.sync.apply_records(batch, source.table)
        report.absorb(outcome)
        sequences = [str(r.get("dynamodb", {}).get("SequenceNumber", "")) for r in batch]
        earliest = outcome.earliest_failed()
        if earliest is None:
            done = sequences[-1] if sequences else None
        else:
            # Everything before the earliest failed record is applied; start again from it.
            before = [s for s in sequences if s.isdigit() and int(s) < int(earliest)]
            done = max(before, key=int) if before else None
        if done:
            self.checkpoints.put(stream_arn, shard_id, ShardCheckpoint(done))
        if earliest is not None:
            log.warning(
                "batch failed; will resume from the earliest failed record",
                extra={"shard_id": shard_id, "sequence_number": earliest, "failed": len(outcome.failed)},
            )
            state.iterator = None
            state.pending.clear()
            return False
        return True

    # -- backfill position ------------------------------------------------------------------------------------

    def head_sequence(self, table: TableDef) -> str:
        """The latest sequence number in the table's stream now (``"0"`` when empty): read-only, from the
        checkpoints to each shard's current end. Backfill takes its position from here."""
        source = next((s for s in self.sources if s.table.name == table.name), None)
        if source is None:
            return ZERO_SEQUENCE
        stream_arn = self.stream_arn(source)
        if stream_arn is None:
            return ZERO_SEQUENCE
        head = ZERO_SEQUENCE
        for shard in self.shards(stream_arn):
            shard_id = shard["ShardId"]
            checkpoint = self.checkpoints.get(stream_arn, shard_id)
            if checkpoint and checkpoint.sequence_number:
                head = later_sequence(head, checkpoint.sequence_number)
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            if ending:
                head = later_sequence(head, str(ending))
                continue
            iterator: str | None = self._iterator(stream_arn, shard_id, None)
            while iterator:
                response = self._get_records(iterator, _PEEK_LIMIT)
                if response is None:
                    break
                records = response.get("Records", [])
                for record in records:
                    head = later_sequence(head, str(record["dynamodb"]["SequenceNumber"]))
                iterator = response.get("NextShardIterator")
                if not records:
                    break
        return head
