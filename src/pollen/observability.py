"""Structured JSON logs (Powertools Logger) and CloudWatch EMF metrics (Powertools' EMF provider).

Modules log through the standard library (``logging.getLogger(__name__)``, names under ``pollen.``); the
entry point calls :func:`configure_logging` once, which puts a Powertools JSON handler on the ``pollen``
logger with the run's correlation id. Everything written passes a redacting stream, so a secret value
never reaches the log even if some library echoes it.

Every metric with dimensions is also published under ``service`` alone (a second EMF dimension set), which
is what the alarms in template.yaml watch.

Metrics are aggregated in memory by :class:`MetricsRecorder` and flushed as EMF documents to a sink: stdout
inside Lambda (CloudWatch picks them up), ``POLLEN_HOME/metrics.jsonl`` from the CLI. Aggregating first
keeps Powertools from auto-flushing to stdout mid-run, which would break ``--json`` output.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

NAMESPACE = "Pollen"
SERVICE = "pollen"
REDACTED = "***"
#: Libraries whose request logs are worth having at DEBUG: httpx logs every request's URL at INFO (Alpha Vantage's
#: carries the API key). At DEBUG they are written through the redacting JSON handler; otherwise not at all.
LIBRARY_LOGGERS = ("httpx",)


class RedactingStream:
    """A text stream that masks known secret values before writing."""

    def __init__(self, inner: IO[str], secrets: Iterable[str] = ()) -> None:
        self._inner = inner
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask more values from now on (credentials fetched after logging was configured)."""
        self._secrets = sorted(set(self._secrets) | {s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def write(self, text: str) -> int:
        return self._inner.write(self.redact(text))

    def flush(self) -> None:
        self._inner.flush()


def redact(text: str, secrets: Iterable[str]) -> str:
    return RedactingStream(sys.stderr, secrets).redact(text)


#: Every value registered in this process: a warm Lambda container configures logging again on each invocation,
#: long after the adapters (and the secrets they fetched) were built, so the list must outlive the handlers.
_registered_secrets: set[str] = set()
_registered_lock = threading.Lock()


def registered_secrets() -> list[str]:
    with _registered_lock:
        return sorted(_registered_secrets)


def forget_secrets() -> None:
    """Clear the process-wide list (tests: one test's values must not mask another's output)."""
    with _registered_lock:
        _registered_secrets.clear()


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values (e.g. credentials read from Secrets Manager) to the redaction of the configured log handlers,
    and of every handler configured later in this process."""
    values = [s for s in secrets if s]
    if not values:
        return
    with _registered_lock:
        _registered_secrets.update(values)
    for handler in logging.getLogger(SERVICE).handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(stream, RedactingStream):
            stream.add(values)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def configure_logging(
    *,
    level: str = "INFO",
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
    correlation_id: str | None = None,
    **keys: Any,
) -> Logger:
    """Install the JSON handler on the ``pollen`` logger (idempotent: replaces the previous one).

    The handler masks ``secrets`` and every value registered so far with :func:`register_secrets`."""
    std = logging.getLogger(SERVICE)
    for handler in list(std.handlers):
        std.removeHandler(handler)
    # Powertools marks the logger it configured and would reuse (or index) the handler removed above.
    for mark in ("init", "powertools_handler", "powertools_buffer_config", "powertools_buffer_cache"):
        if hasattr(std, mark):
            delattr(std, mark)
    logger = Logger(
        service=SERVICE,
        level=level,
        stream=RedactingStream(stream or sys.stderr, [*secrets, *registered_secrets()]),  # type: ignore[arg-type]
        utc=True,
    )
    logger.append_keys(correlation_id=correlation_id or new_correlation_id(), **keys)
    std.propagate = False
    _route_library_logs(std, debug=logging.getLevelName(str(level).upper()) == logging.DEBUG)
    return logger


def _route_library_logs(std: logging.Logger, *, debug: bool) -> None:
    """At DEBUG, the libraries' request logs go through the ``pollen`` handlers (and so their redaction)."""
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            if isinstance(getattr(handler, "stream", None), RedactingStream):
                library.removeHandler(handler)
        if debug:
            for handler in std.handlers:
                library.addHandler(handler)
            library.setLevel(logging.DEBUG)
            library.propagate = False
        else:
            library.setLevel(logging.NOTSET)
            library.propagate = True


class MetricsSink(Protocol):
    def emit(self, document: dict[str, Any]) -> None: ...


class StdoutSink:
    """Lambda: one EMF document per line on stdout."""

    def emit(self, document: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
        sys.stdout.flush()


class FileSink:
    """CLI: append EMF documents to a JSON Lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def emit(self, document: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(document, separators=(",", ":")) + "\n")


class MemorySink:
    """Tests: keep the documents."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def emit(self, document: dict[str, Any]) -> None:
        self.documents.append(document)


_Dims = tuple[tuple[str, str], ...]
# Powertools' provider prints and clears its set by itself on reaching 100 metrics or 100 values; stay below.
_MAX_METRICS_PER_DOCUMENT = 99
_MAX_VALUES_PER_METRIC = 99


class MetricsRecorder:
    """Thread-safe aggregation of counters and timings, flushed as EMF through Powertools' provider."""

    def __init__(self, sink: MetricsSink | None = None, *, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self.sink: MetricsSink = sink or MemorySink()
        self.namespace = namespace
        self.service = service
        self._lock = threading.Lock()
        self._counts: dict[_Dims, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._samples: dict[_Dims, dict[str, tuple[MetricUnit, list[float]]]] = defaultdict(dict)

    @staticmethod
    def _dims(dimensions: dict[str, str]) -> _Dims:
        return tuple(sorted((k, str(v)) for k, v in dimensions.items()))

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        with self._lock:
            self._counts[self._dims(dimensions)][name] += value

    def record(self, name: str, value: float, unit: MetricUnit, **dimensions: str) -> None:
        """A sample (timing, size, gauge); every sample is kept (a flush spreads them over several documents)."""
        with self._lock:
            per_dims = self._samples[self._dims(dimensions)]
            _, values = per_dims.setdefault(name, (unit, []))
            values.append(value)

    def timing_ms(self, name: str, milliseconds: float, **dimensions: str) -> None:
        self.record(name, round(milliseconds, 3), MetricUnit.Milliseconds, **dimensions)

    @contextmanager
    def timer(self, name: str, **dimensions: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timing_ms(name, (time.perf_counter() - start) * 1000, **dimensions)

    def total(self, name: str, **dimensions: str) -> float:
        """Sum of a counter over every dimension set that includes the given dimensions."""
        wanted = set(self._dims(dimensions))
        with self._lock:
            return sum(metrics.get(name, 0.0) for dims, metrics in self._counts.items() if wanted <= set(dims))

    def samples(self, name: str) -> list[float]:
        with self._lock:
            return [v for per in self._samples.values() if name in per for v in per[name][1]]

    def flush(self) -> int:
        """Emit everything recorded so far as EMF documents; returns how many documents were written."""
        with self._lock:
            counts, samples = self._counts, self._samples
            self._counts = defaultdict(lambda: defaultdict(float))
            self._samples = defaultdict(dict)
        emitted = 0
        for dims in sorted(set(counts) | set(samples)):
            entries: list[tuple[str, MetricUnit, list[float]]] = [
                (name, MetricUnit.Count, [value]) for name, value in counts.get(dims, {}).items()
            ]
            entries += [(name, unit, values) for name, (unit, values) in samples.get(dims, {}).items()]
            for document_entries in _documents(entries):
                provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
                for key, dim_value in dims:
                    provider.add_dimension(name=key, value=dim_value)
                for name, unit, values in document_entries:
                    for sample in values:
                        provider.add_metric(name=name, unit=unit, value=sample)
                document: dict[str, Any] = dict(provider.serialize_metric_set())
                if dims:
                    # Publish the same values under the service alone too, so alarms and dashboards can use totals
                    # (CloudWatch alarms cannot aggregate over dimensions themselves).
                    for directive in document["_aws"]["CloudWatchMetrics"]:
                        directive["Dimensions"].append(["service"])
                self.sink.emit(document)
                emitted += 1
        return emitted


def _documents(
    entries: list[tuple[str, MetricUnit, list[float]]],
) -> Iterator[list[tuple[str, MetricUnit, list[float]]]]:
    """Split one dimension set's metrics into EMF documents within Powertools' limits: at most 99 metrics per
    document and 99 values per metric. A metric with more values continues in the next documents (one slice of it
    per document, since two slices of one name in a document would be merged into one list)."""
    slices = [
        [
            (name, unit, values[start : start + _MAX_VALUES_PER_METRIC])
            for start in range(0, len(values), _MAX_VALUES_PER_METRIC)
        ]
        or [(name, unit, values)]
        for name, unit, values in entries
    ]
    rounds = max((len(s) for s in slices), default=0)
    for round_index in range(rounds):
        layer = [s[round_index] for s in slices if round_index < len(s)]
        for start in range(0, len(layer), _MAX_METRICS_PER_DOCUMENT):
            yield layer[start : start + _MAX_METRICS_PER_DOCUMENT]
