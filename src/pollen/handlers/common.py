"""What the Lambda handlers share: settings (validated once per process), Powertools logging, EMF metrics to
stdout, the deadline from the context, and cached adapters.

Each handler module has a ``build_dependencies(settings, metrics)`` function: the seam through which tests inject
fakes (the real one goes through pollen.wiring). Adapters are built once per warm container.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from pollen.deadline import Deadline
from pollen.errors import AuthError, ConfigError, PollenError
from pollen.observability import MetricsRecorder, StdoutSink, configure_logging
from pollen.ports import AssetSource, FundamentalsSource, ItemStore
from pollen.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: Seconds kept back from Lambda's remaining time to finish, report and flush metrics.
DEADLINE_MARGIN_S = 15.0


class LambdaContext(Protocol):
    aws_request_id: str
    function_name: str

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass
class Dependencies:
    store: ItemStore
    assets: AssetSource | None = None
    fundamentals: FundamentalsSource | None = None
    queue: Any = None
    #: Builds the status report (the scheduler logs its health line); None where a handler does not need it.
    status: Callable[[], Any] | None = None


@dataclass
class Invocation:
    settings: Settings
    metrics: MetricsRecorder
    deadline: Deadline
    dependencies: Dependencies
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


Builder = Callable[[Settings, MetricsRecorder], Dependencies]


class HandlerState:
    """Per-module state that survives warm invocations: settings, metrics recorder, adapters."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.settings: Settings | None = None
        self.metrics = MetricsRecorder(StdoutSink())
        self.dependencies: Dependencies | None = None
        self.cold = True

    def reset(self) -> None:
        self.settings = None
        self.dependencies = None
        self.cold = True

    @contextmanager
    def invocation(self, context: LambdaContext, build: Builder) -> Iterator[Invocation]:
        if self.settings is None:
            self.settings = load_settings()
        settings = self.settings
        logger = configure_logging(
            level=settings.log_level or "INFO",
            secrets=settings.secret_values(),
            correlation_id=getattr(context, "aws_request_id", None),
            job=self.job,
            function_name=getattr(context, "function_name", self.job),
        )
        logger.append_keys(cold_start=self.cold)
        self.cold = False
        deadline = Deadline.from_lambda_context(context, DEADLINE_MARGIN_S)
        try:
            if self.dependencies is None:
                self.dependencies = build(settings, self.metrics)
            log.info("invocation started", extra={"remaining_s": round(deadline.remaining_s(), 1)})
            yield Invocation(settings, self.metrics, deadline, self.dependencies)
        except AuthError as exc:
            self.metrics.count("AuthFailed", 1, job=self.job)
            log.error("authentication failed", extra={"error": str(exc)})
            raise
        except ConfigError as exc:
            self.metrics.count("ConfigError", 1, job=self.job)
            log.error("configuration error", extra={"error": str(exc)})
            raise
        except PollenError as exc:
            self.metrics.count("InvocationFailed", 1, job=self.job, error=type(exc).__name__)
            log.error("invocation failed", extra={"error": str(exc), "error_type": type(exc).__name__})
            raise
        finally:
            self._record_memory(context)
            self.metrics.flush()

    def _record_memory(self, context: LambdaContext) -> None:
        """Peak memory as a share of the function's allocation (seed 001 alarms above 80%)."""
        limit_mb = float(getattr(context, "memory_limit_in_mb", 0) or 0)
        if limit_mb <= 0:
            return
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
        self.metrics.record("MemoryUsedPercent", round(100.0 * peak_mb / limit_mb, 1), MetricUnit.Percent, job=self.job)


def result(report: Any, run: Invocation | None = None) -> dict[str, Any]:
    """A report as the invocation's JSON result; with the invocation, its run record is kept too."""
    if run is not None:
        record_run(run, report)
    data: dict[str, Any] = report.to_json_dict()
    return data


def record_run(run: Invocation, report: Any) -> None:
    """Leave the run's record in ``pollenControl`` (pollen.jobs.runs); never fails the invocation."""
    from pollen import wiring

    try:
        log_ = wiring.build_run_log(run.settings, run.metrics, run.dependencies.store)
        log_.record(
            report,
            started_at=run.started_at,
            source="lambda",
            dead_letters_to=wiring.dead_letters_destination(run.settings),
        )
    except PollenError as exc:
        log.warning("run record not written", extra={"error": str(exc)[:200]})
