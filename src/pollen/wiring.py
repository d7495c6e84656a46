"""Entry-point wiring: builds the adapters the jobs need from typed settings.

Only entry points (CLI commands, Lambda handlers) call these; jobs receive the adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pollen.jobs.common import Clock, utc_now

# Adapters are imported by the function that builds them: a Lambda handler's cold import loads only what its own
# adapters need (no Alpaca client, status collector or boto3 for a function that does not use them).
if TYPE_CHECKING:
    from pollen.jobs.runs import RunLog
    from pollen.jobs.status import StatusCollector
    from pollen.observability import MetricsRecorder
    from pollen.ports import AssetSource, FundamentalsSource, ItemStore
    from pollen.settings import Settings


def build_store(settings: Settings, metrics: MetricsRecorder, **options: Any) -> ItemStore:
    """The DynamoDB store for these settings."""
    from pollen.adapters.dynamodb import store

    return store.build_store(settings, metrics, **options)


def build_sources(settings: Settings, metrics: MetricsRecorder) -> tuple[AssetSource, FundamentalsSource]:
    """The Alpaca and Alpha Vantage clients for these settings."""
    from pollen.adapters import sources

    return sources.build_sources(settings, metrics)


def build_run_log(settings: Settings, metrics: MetricsRecorder, store: ItemStore, clock: Clock = utc_now) -> RunLog:
    """Where job runs leave their records (``pollenControl``), kept ``run_retention_days``."""
    from pollen.jobs.runs import RunLog

    return RunLog(store, metrics=metrics, retention=timedelta(days=settings.run_retention_days), clock=clock)


def dead_letters_destination(settings: Settings) -> str:
    """Where this process's write dead letters go (recorded with each run)."""
    return settings.dead_letter_queue_url or str(settings.home / "dead-letters")


def build_status(
    settings: Settings, metrics: MetricsRecorder, *, clock: Clock = utc_now, store: ItemStore | None = None
) -> StatusCollector:
    """`pollen status`'s collector: the store, DescribeTable counts, run records, the local stream poller's
    checkpoints (when it runs here) and the dead letters waiting (local files; the queue's depth when set)."""
    from pollen.adapters.dynamodb.client import make_client
    from pollen.adapters.status import DescribeTableStatistics, StreamLag, local_dead_letters, queue_dead_letters
    from pollen.jobs.status import DeadLetterCount, QuotaSettings, StatusCollector
    from pollen.tables import STREAMED_TABLES

    store = store or build_store(settings, metrics)
    dynamodb = make_client("dynamodb", region=settings.region, endpoint_url=settings.dynamodb_endpoint, max_attempts=3)
    streams = make_client(
        "dynamodbstreams", region=settings.region, endpoint_url=settings.streams_endpoint, max_attempts=3
    )
    home = settings.home
    dead_letters: list[Callable[[], DeadLetterCount]] = [lambda: local_dead_letters(home)]
    queue_url = settings.dead_letter_queue_url
    if queue_url:
        sqs = make_client("sqs", region=settings.region, max_attempts=3)
        dead_letters.append(lambda: queue_dead_letters(sqs, queue_url))
    return StatusCollector(
        store,
        DescribeTableStatistics(dynamodb, table_prefix=settings.table_prefix),
        build_run_log(settings, metrics, store, clock),
        quota=QuotaSettings(
            per_minute=settings.alphavantage_per_minute,
            per_day=settings.alphavantage_per_day,
            concurrency=settings.pollenate_concurrency,
        ),
        clock=clock,
        streams=StreamLag(streams, home, [(t, settings.table_name(t.name)) for t in STREAMED_TABLES], now=clock),
        dead_letters=dead_letters,
    )
