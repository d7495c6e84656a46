"""Lambda: enqueue the N most due symbols to the pollenation queue (``POLLEN_POLLENATE_QUEUE_URL``), on an
EventBridge schedule. N is the event's ``count`` if it has one, else ``POLLEN_POLLENATE_BATCH`` (the template's
``PollenateBatchPerRun``; 20 when unset)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pollen import wiring
from pollen.errors import ConfigError, PollenError
from pollen.handlers.common import Dependencies, HandlerState, LambdaContext, result
from pollen.jobs.common import utc_now
from pollen.jobs.scheduler import enqueue_due
from pollen.observability import MetricsRecorder
from pollen.settings import Settings

if TYPE_CHECKING:  # the status collector's module loads when the first invocation builds it
    from pollen.jobs.status import StatusReport

log = logging.getLogger(__name__)
STATE = HandlerState("SchedulePollenation")
clock = utc_now
MAX_COUNT = 1000


def build_dependencies(settings: Settings, metrics: MetricsRecorder) -> Dependencies:
    queue = wiring.build_queue(settings)
    store = wiring.build_store(settings, metrics, durable_dead_letters=True)
    status = wiring.build_status(settings, metrics, store=store)
    return Dependencies(store=store, queue=queue, status=lambda: status.collect())


def count_of(event: Any, default: int) -> int:
    value = event.get("count", default) if isinstance(event, dict) else default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigError(f"count must be an integer from 1 to {MAX_COUNT}, not {value!r:.40}")
    return value


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with STATE.invocation(context, build_dependencies) as run:
        count = count_of(event, run.settings.pollenate_batch)
        report = enqueue_due(run.dependencies.store, run.dependencies.queue, count, metrics=run.metrics, clock=clock)
        response = result(report, run)
        log_health(run.dependencies.status)
        return response


def log_health(status: Callable[[], StatusReport] | None) -> None:
    """The one-line health of the whole system at each run (pollen status); never fails the schedule."""
    if status is None:
        return
    try:
        report = status()
    except PollenError as exc:
        log.warning("status not computed", extra={"error": str(exc)[:200]})
        return
    log.info(report.health_line, extra={"health": report.health, "reasons": report.reasons})
