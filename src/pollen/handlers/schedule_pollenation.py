"""Lambda: enqueue the N most due symbols to the pollenation queue (``POLLEN_POLLENATE_QUEUE_URL``), on an
EventBridge schedule. N is the event's ``count`` if it has one, else ``POLLEN_POLLENATE_BATCH`` (the template's
``PollenateBatchPerRun``; 20 when unset)."""

from __future__ import annotations

from typing import Any

from pollen import wiring
from pollen.adapters.sqs import SqsQueue
from pollen.errors import ConfigError
from pollen.handlers.common import Dependencies, HandlerState, LambdaContext, result
from pollen.jobs.common import utc_now
from pollen.jobs.scheduler import enqueue_due
from pollen.observability import MetricsRecorder
from pollen.settings import Settings

STATE = HandlerState("SchedulePollenation")
clock = utc_now
MAX_COUNT = 1000


def build_dependencies(settings: Settings, metrics: MetricsRecorder) -> Dependencies:
    if settings.pollenate_queue_url is None:
        raise ConfigError("POLLEN_POLLENATE_QUEUE_URL is not set")
    queue = SqsQueue(settings.pollenate_queue_url, region=settings.region)
    return Dependencies(store=wiring.build_store(settings, metrics, durable_dead_letters=True), queue=queue)


def count_of(event: Any, default: int) -> int:
    value = event.get("count", default) if isinstance(event, dict) else default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigError(f"count must be an integer from 1 to {MAX_COUNT}, not {value!r:.40}")
    return value


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with STATE.invocation(context, build_dependencies) as run:
        count = count_of(event, run.settings.pollenate_batch)
        report = enqueue_due(run.dependencies.store, run.dependencies.queue, count, metrics=run.metrics, clock=clock)
        return result(report)
