"""Lambda handler for the DynamoDB Streams event source mapping (ReportBatchItemFailures enabled).

One ``apply`` per table per batch (one ``_bulk`` on OpenSearch). Powertools' BatchProcessor marks the records the
index did not take; the response then names only the *earliest* failed sequence number, so Lambda resumes the
shard from there and no record after it is skipped (records after it that did apply are delivered again and
their versions make that a no-op). Bad records are dead-lettered with the full record to the SQS queue of
POLLEN_DEAD_LETTER_QUEUE_URL (required here: the mapping's on-failure destination keeps only metadata, and /tmp does
not survive); when even SQS refuses them, the invocation fails and the event source retries the batch.

The same function purges old tombstones from the index when invoked with ``{"action": "purge-tombstones"}`` (an
EventBridge schedule in template.yaml). Without POLLEN_SEARCH_URL it refuses to run (ConfigError): the embedded
index is a file that Lambda throws away; the template leaves the function out when OpenSearchEndpoint is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from pollen.adapters.deadletters import SqsDeadLetters
from pollen.adapters.search.factory import build_search_index
from pollen.errors import ConfigError
from pollen.observability import MetricsRecorder, StdoutSink, configure_logging, new_correlation_id
from pollen.ports import STREAM_RECORD, DeadLetterSink
from pollen.settings import Settings, load_settings
from pollen.streams.records import table_from_arn
from pollen.streams.sync import StreamSync

log = logging.getLogger(__name__)

#: The event the purge schedule sends (template.yaml, PurgeTombstones): ``{"action": "purge-tombstones"}``.
PURGE_ACTION = "purge-tombstones"


class RecordNotApplied(Exception):
    """Marks a record the index did not take, for the batch processor."""


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


def build_dead_letters(settings: Settings) -> DeadLetterSink:
    """Stream records that cannot be indexed go to the dead-letter queue, never to a file under /tmp."""
    if not settings.dead_letter_queue_url:
        raise ConfigError("POLLEN_DEAD_LETTER_QUEUE_URL is not set: stream sync in Lambda needs a dead-letter queue")
    return SqsDeadLetters(settings.dead_letter_queue_url, region=settings.region, kind=STREAM_RECORD)


def _build() -> tuple[Settings, StreamSync, MetricsRecorder, Logger]:
    """Built once per container (warm starts reuse the index connection and the logging setup)."""
    global _cached
    if _cached is None:
        settings = load_settings()
        logger = configure_logging(
            level=settings.log_level or "INFO", secrets=settings.secret_values(), function="stream_sync"
        )
        metrics = MetricsRecorder(StdoutSink())
        index = build_search_index(settings, metrics, embedded_allowed=False)
        sync = StreamSync(index, metrics=metrics, dead_letters=build_dead_letters(settings))
        _cached = (settings, sync, metrics, logger)
    return _cached


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, sync, metrics, logger = _build()
    logger.append_keys(correlation_id=getattr(context, "aws_request_id", None) or new_correlation_id())
    try:
        if isinstance(event, Mapping) and event.get("action") == PURGE_ACTION:
            purged = sync.index.purge_tombstones()
            metrics.count("TombstonesPurged", purged)
            log.info("tombstones purged", extra={"purged": purged})
            return {"purged": purged}
        return handle(event, sync, table_prefix=settings.table_prefix)
    finally:
        metrics.flush()
