"""Lambda: SyncAssets, on an EventBridge schedule."""

from __future__ import annotations

from typing import Any

from pollen import wiring
from pollen.handlers.common import Dependencies, HandlerState, LambdaContext, result
from pollen.jobs.common import utc_now
from pollen.jobs.sync_assets import SyncAssets
from pollen.observability import MetricsRecorder
from pollen.settings import Settings

STATE = HandlerState("SyncAssets")
clock = utc_now


def build_dependencies(settings: Settings, metrics: MetricsRecorder) -> Dependencies:
    assets, _ = wiring.build_sources(settings, metrics)
    return Dependencies(store=wiring.build_store(settings, metrics, durable_dead_letters=True), assets=assets)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with STATE.invocation(context, build_dependencies) as run:
        assert run.dependencies.assets is not None
        job = SyncAssets(run.dependencies.store, run.dependencies.assets, metrics=run.metrics, clock=clock)
        return result(job.run(run.deadline), run)
