from __future__ import annotations

import io
import json
import logging

from pollen.observability import MemorySink, MetricsRecorder, configure_logging


def test_logs_are_json_with_correlation_id_and_secrets_masked() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream, secrets=["s3cr3t-value"], correlation_id="run-42")
    logging.getLogger("pollen.test").info("token s3cr3t-value used", extra={"table": "assets"})
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["correlation_id"] == "run-42"
    assert record["table"] == "assets"
    assert record["level"] == "INFO"
    assert "s3cr3t-value" not in stream.getvalue()
    assert "***" in record["message"]


def test_metrics_aggregate_and_flush_as_emf_under_pollen_namespace() -> None:
    sink = MemorySink()
    metrics = MetricsRecorder(sink)
    metrics.count("WriteSuccess", 20, table="assets")
    metrics.count("WriteSuccess", 5, table="assets")
    metrics.count("WriteFailure", 1, table="earnings")
    metrics.timing_ms("BatchLatency", 12.5, table="assets")
    assert metrics.total("WriteSuccess") == 25
    assert metrics.total("WriteSuccess", table="earnings") == 0
    assert metrics.flush() == 2
    by_table = {doc["table"]: doc for doc in sink.documents}
    assets = by_table["assets"]
    directive = assets["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Pollen"
    assert {m["Name"] for m in directive["Metrics"]} == {"WriteSuccess", "BatchLatency"}
    assert sorted(map(sorted, directive["Dimensions"])) == [["service"], ["service", "table"]]
    assert assets["WriteSuccess"] in (25, 25.0, [25.0], [25])
    assert by_table["earnings"]["WriteFailure"] in (1, 1.0, [1.0], [1])
    assert metrics.flush() == 0  # flushed metrics are not sent twice


def test_more_than_one_hundred_metrics_split_into_several_documents() -> None:
    sink = MemorySink()
    metrics = MetricsRecorder(sink)
    for i in range(150):
        metrics.count(f"M{i}")
    assert metrics.flush() == 2
    assert sum(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in sink.documents) == 150


def test_configure_logging_twice_in_one_process_logs_to_the_new_stream() -> None:
    """Warm Lambda invocations and in-process CLI runs configure logging again."""
    import io
    import logging

    from pollen.observability import configure_logging

    first, second = io.StringIO(), io.StringIO()
    configure_logging(level="INFO", stream=first)
    configure_logging(level="INFO", stream=second)
    logging.getLogger("pollen.test").info("hello again")
    assert "hello again" in second.getvalue()
    assert "hello again" not in first.getvalue()


def test_every_sample_is_flushed_across_as_many_documents_as_needed() -> None:
    # A 12,000-asset sync sends ~480 batches: every BatchWriteLatency sample must reach CloudWatch.
    sink = MemorySink()
    metrics = MetricsRecorder(sink)
    for i in range(480):
        metrics.timing_ms("BatchWriteLatency", float(i), table="assets")
    metrics.timing_ms("UpsertDuration", 7.0, table="assets")
    metrics.count("DynamoWriteSuccess", 12_000, table="assets")
    metrics.flush()
    sent: list[float] = []
    for document in sink.documents:
        value = document.get("BatchWriteLatency", [])
        values = value if isinstance(value, list) else [value]
        assert len(values) <= 99  # Powertools' limit per metric and blob
        sent.extend(values)
    assert sorted(sent) == [float(i) for i in range(480)]
    assert sum(1 for d in sink.documents if "UpsertDuration" in d) == 1
    counts = [d["DynamoWriteSuccess"] for d in sink.documents if "DynamoWriteSuccess" in d]
    assert counts in ([12_000], [[12_000]], [12_000.0], [[12_000.0]])


def test_at_debug_the_http_request_log_is_written_redacted_and_at_info_not_at_all() -> None:
    """httpx logs each request's URL, Alpha Vantage's API key included: at DEBUG that line is wanted, masked."""
    import httpx

    from pollen.observability import register_secrets

    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    debug, info = io.StringIO(), io.StringIO()
    configure_logging(level="DEBUG", stream=debug)
    register_secrets(["av-key-123"])  # fetched from Secrets Manager after logging was configured
    client.get("https://www.alphavantage.co/query?function=OVERVIEW&symbol=IBM&apikey=av-key-123")
    lines = [json.loads(line) for line in debug.getvalue().splitlines()]
    assert any("apikey=***" in line["message"] for line in lines), lines
    assert "av-key-123" not in debug.getvalue()

    configure_logging(level="INFO", stream=info)
    client.get("https://www.alphavantage.co/query?function=OVERVIEW&symbol=IBM&apikey=av-key-123")
    assert "HTTP Request" not in info.getvalue()
    assert debug.getvalue().count("HTTP Request") == 1  # the INFO configuration took the handler away
