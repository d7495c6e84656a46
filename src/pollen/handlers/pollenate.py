"""Lambda: PollenateAsset.

- SQS messages (from the schedule function): body ``{"symbol": "IBM", "enqueuedAt": "..."}`` or just ``IBM``.
  Partial batch failures through Powertools' BatchProcessor: a message whose asset stays due is reported failed
  (SQS delivers it again, then to the dead-letter queue); a message that can never succeed (bad symbol, unknown
  asset) is consumed and counted. Once the quota is gone or the deadline comes, the remaining messages are
  returned to the queue without calling Alpha Vantage.
- Direct invocations: ``{"symbol": "IBM"}`` returns the pollenation report.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pollen import wiring
from pollen.domain.values import is_valid_symbol
from pollen.errors import AuthError, ConfigError, InvalidRecord, QuotaExhausted, TransientError
from pollen.handlers.common import Dependencies, HandlerState, Invocation, LambdaContext, record_run, result
from pollen.jobs.common import utc_now
from pollen.jobs.pollenate import PollenateAsset, PollenateReport
from pollen.observability import MetricsRecorder
from pollen.settings import Settings

log = logging.getLogger(__name__)

STATE = HandlerState("PollenateAsset")
clock = utc_now


class RetryLater(TransientError):
    """The message goes back to the queue (reported as a batch item failure)."""


def build_dependencies(settings: Settings, metrics: MetricsRecorder) -> Dependencies:
    _, fundamentals = wiring.build_sources(settings, metrics)
    return Dependencies(
        store=wiring.build_store(settings, metrics, durable_dead_letters=True), fundamentals=fundamentals
    )


def parse_message(body: str) -> tuple[str, str | None]:
    """(symbol, enqueuedAt) from a message body; raises InvalidRecord."""
    text = (body or "").strip()
    symbol: Any = text
    since: Any = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidRecord("message body is not valid JSON") from None
        symbol, since = data.get("symbol"), data.get("enqueuedAt")
    if not is_valid_symbol(symbol):
        raise InvalidRecord(f"message has no valid symbol: {str(symbol)!r:.40}")
    return str(symbol), since if isinstance(since, str) else None


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with STATE.invocation(context, build_dependencies) as run:
        assert run.dependencies.fundamentals is not None
        job = PollenateAsset(run.dependencies.store, run.dependencies.fundamentals, metrics=run.metrics, clock=clock)
        if isinstance(event, dict) and isinstance(event.get("Records"), list):
            return _batch(event, context, job, run)
        symbol = event.get("symbol") if isinstance(event, dict) else None
        if not isinstance(symbol, str) or not is_valid_symbol(symbol):
            report = PollenateReport(ok=False, invalid=1)
            report.add_error(f"the event has no valid symbol: {str(symbol)!r:.40}")
            return result(report, run)
        return result(job.run([symbol], run.deadline), run)


def _batch(event: dict[str, Any], context: LambdaContext, job: PollenateAsset, run: Invocation) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    stopped: list[str] = []
    outcomes = PollenateReport()

    def record_handler(record: SQSRecord) -> str:
        if stopped:
            raise RetryLater(f"not started: {stopped[0]}")
        if run.deadline.expired():
            stopped.append("deadline")
            raise RetryLater("not started: deadline")
        try:
            symbol, since = parse_message(record.body)
        except InvalidRecord as exc:
            run.metrics.count("MessagesInvalid", 1, job=STATE.job)
            log.warning(
                "message consumed without pollenation", extra={"message_id": record.message_id, "error": str(exc)}
            )
            return "invalid"
        try:
            outcome = job.pollenate(symbol, run.deadline, not_pollenated_since=since)
            outcomes.add(outcome)
        except QuotaExhausted:
            stopped.append("quota exhausted")
            run.metrics.count("QuotaExhausted", 1, job=STATE.job)
            raise
        except (AuthError, ConfigError) as exc:
            # The batch processor would turn this into one item failure; it concerns every message.
            stopped.append(type(exc).__name__)
            run.metrics.count("AuthFailed" if isinstance(exc, AuthError) else "ConfigError", 1, job=STATE.job)
            log.error("pollenation cannot run", extra={"error": str(exc)})
            raise
        if outcome.status in ("unknown asset", "invalid symbol"):
            run.metrics.count("MessagesInvalid", 1, job=STATE.job)
            log.warning("message consumed without pollenation", extra={"symbol": symbol, "status": outcome.status})
            return outcome.status
        if not outcome.ok:
            raise RetryLater(f"{symbol}: {outcome.error or outcome.status}")
        return outcome.status

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=cast(Any, context)
    )
    failures = len(response.get("batchItemFailures", []))
    run.metrics.count("MessagesFailed", failures, job=STATE.job)
    run.metrics.count("MessagesProcessed", len(event["Records"]) - failures, job=STATE.job)
    if outcomes.assets:
        outcomes.duration_s = round((datetime.now(UTC) - run.started_at).total_seconds(), 3)
        record_run(run, outcomes)
    return dict(response)
