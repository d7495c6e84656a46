"""Lambda handler for the DynamoDB Streams event source mapping (ReportBatchItemFailures enabled).

One ``apply`` per table per batch (one ``_bulk`` on OpenSearch). Powertools' BatchProcessor marks the records the
index did not take; the response then names only the *earliest* failed sequence number, so Lambda resumes the
shard from there and no record after it is skipped (records after it that did apply are delivered again and
their versions make that a no-op). Bad records are dead-lettered with the full record (SQS when
POLLEN_DEAD_LETTER_QUEUE_URL is set, else the log), because the mapping's on-failure destination keeps only
metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from pollen.adapters.search.factory import build_search_index
from pollen.observability import MetricsRecorder, StdoutSink, configure_logging, new_correlation_id
from pollen.settings import Settings, load_settings
from pollen.streams.records import table_from_arn
from pollen.streams.sync import StreamSync

log = logging.getLogger(__name__)

#: SQS takes messages up to 256 KiB; a record with two 400 KB images can be bigger.
_SQS_LIMIT = 250_000


class RecordNotApplied(Exception):
    """Marks a record the index did not take, for the batch processor."""


class SqsDeadLetters:
    """Full-record dead letters on an SQS queue; a record too big for SQS is logged whole instead."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def put(self, table: str, item: Mapping[str, Any], reason: str) -> None:
        body = json.dumps({"table": table, "reason": reason[:500], "record": item}, default=str, sort_keys=True)
        if len(body.encode()) > _SQS_LIMIT:
            LogDeadLetters().put(table, item, reason)
            body = json.dumps({"table": table, "reason": reason[:500], "record": None, "logged": True})
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)


class LogDeadLetters:
    def put(self, table: str, item: Mapping[str, Any], reason: str) -> None:
        log.error(
            "dead letter",
            extra={"table": table, "reason": reason[:500], "record": json.loads(json.dumps(item, default=str))},
        )


def handle(event: Mapping[str, Any], sync: StreamSync, *, table_prefix: str) -> dict[str, Any]:
    """Apply a stream event; returns the partial batch response."""
    records: list[dict[str, Any]] = list(event.get("Records", []))
    by_table: dict[str | None, list[dict[str, Any]]] = {}
    for record in records:
        table = table_from_arn(str(record.get("eventSourceARN", "")), table_prefix)
        by_table.setdefault(table, []).append(record)
    failed: set[str] = set()
    for table, group in by_table.items():
        outcome = sync.apply_records(group, sync.table_for(table))
        failed.update(outcome.failed)
        log.info(
            "stream batch applied",
            extra={
                "table": table,
                "records": outcome.records,
                "indexed": outcome.indexed,
                "deleted": outcome.deleted,
                "conflicts": outcome.conflicts,
                "skipped": outcome.skipped,
                "dead_letters": outcome.dead_letters,
                "failed": len(outcome.failed),
            },
        )

    def record_handler(record: DynamoDBRecord) -> None:
        if record.dynamodb is not None and record.dynamodb.sequence_number in failed:
            raise RecordNotApplied(record.dynamodb.sequence_number)

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    with processor(records=records, handler=record_handler):
        processor.process()
    return earliest_failure_only(dict(processor.response()))


def earliest_failure_only(response: dict[str, Any]) -> dict[str, Any]:
    """Keep only the failed item with the lowest sequence number (compared as integers)."""
    failures = [f for f in response.get("batchItemFailures", []) if str(f.get("itemIdentifier", "")).isdigit()]
    if not failures:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [min(failures, key=lambda f: int(f["itemIdentifier"]))]}


_cached: tuple[Settings, StreamSync, MetricsRecorder, Logger] | None = None


def _build() -> tuple[Settings, StreamSync, MetricsRecorder, Logger]:
    """Built once per container (warm starts reuse the index connection and the logging setup)."""
    global _cached
    if _cached is None:
        settings = load_settings()
        logger = configure_logging(
            level=settings.log_level or "INFO", secrets=settings.secret_values(), function="stream_sync"
        )
        metrics = MetricsRecorder(StdoutSink())
        dead_letters: Any = LogDeadLetters()
        if settings.dead_letter_queue_url:
            from pollen.adapters.dynamodb.client import make_client

            sqs = make_client("sqs", region=settings.region, max_attempts=3)
            dead_letters = SqsDeadLetters(sqs, settings.dead_letter_queue_url)
        index = build_search_index(settings, metrics)
        _cached = (settings, StreamSync(index, metrics=metrics, dead_letters=dead_letters), metrics, logger)
    return _cached


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, sync, metrics, logger = _build()
    logger.append_keys(correlation_id=getattr(context, "aws_request_id", None) or new_correlation_id())
    try:
        return handle(event, sync, table_prefix=settings.table_prefix)
    finally:
        metrics.flush()
