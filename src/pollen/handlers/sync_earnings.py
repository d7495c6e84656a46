"""Lambda: SyncEarningsCalendar, on an EventBridge schedule. The horizon comes from the event (``horizon`` or
``detail.horizon``; a rule's constant input), 3month by default."""

from __future__ import annotations

from typing import Any

from pollen import wiring
from pollen.errors import ConfigError
from pollen.handlers.common import Dependencies, HandlerState, LambdaContext, result
from pollen.jobs.common import utc_now
from pollen.jobs.sync_earnings import HORIZONS, Horizon, SyncEarningsCalendar
from pollen.observability import MetricsRecorder
from pollen.settings import Settings

STATE = HandlerState("SyncEarningsCalendar")
clock = utc_now


def build_dependencies(settings: Settings, metrics: MetricsRecorder) -> Dependencies:
    _, fundamentals = wiring.build_sources(settings, metrics)
    return Dependencies(
        store=wiring.build_store(settings, metrics, durable_dead_letters=True), fundamentals=fundamentals
    )


def horizon_of(event: dict[str, Any]) -> Horizon:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    value = event.get("horizon") or (detail or {}).get("horizon") or "3month"
    for horizon in HORIZONS:
        if value == horizon:
            return horizon
    raise ConfigError(f"unknown horizon {value!r:.40} in the event; use one of {', '.join(HORIZONS)}")


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with STATE.invocation(context, build_dependencies) as run:
        horizon = horizon_of(event if isinstance(event, dict) else {})
        assert run.dependencies.fundamentals is not None
        job = SyncEarningsCalendar(
            run.dependencies.store, run.dependencies.fundamentals, metrics=run.metrics, clock=clock
        )
        return result(job.run(horizon, run.deadline), run)
