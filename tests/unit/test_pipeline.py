"""The demo's pipeline with the in-memory store and fake sources (the embedded stack and simulator wiring is
the command's part)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from pollen.cli import runtime as rt
from pollen.cli.demo import render
from pollen.jobs.pipeline import WRITE_UNITS_METRIC, run_pipeline
from pollen.observability import MetricsRecorder
from pollen.report import JobReport
from pollen.settings import Settings
from tests import payloads
from tests.fakes import FakeAssetSource, FakeFundamentals, InMemoryStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class CountingStore(InMemoryStore):
    """Records write units the way the DynamoDB store does (one per item written here)."""

    def __init__(self, metrics: MetricsRecorder) -> None:
        super().__init__()
        self.metrics = metrics

    def upsert(self, table, items, *, deadline=None, stored=None):  # type: ignore[no-untyped-def]
        outcome = super().upsert(table, items, deadline=deadline, stored=stored)
        self.metrics.count(WRITE_UNITS_METRIC, outcome.written, table=table)
        return outcome


def test_pipeline_runs_every_step_and_summarises() -> None:
    metrics = MetricsRecorder()
    store = CountingStore(metrics)
    symbols = [f"S{i:02d}" for i in range(30)]
    assets = FakeAssetSource([payloads.alpaca_asset(s) for s in symbols], {s: i for i, s in enumerate(symbols)})
    soon = (NOW + timedelta(days=5)).date().isoformat()
    fundamentals = FakeFundamentals([payloads.calendar_row("S01", soon, "2026-09-30")])
    for symbol in symbols:
        fundamentals.add_company(
            symbol,
            overview=payloads.overview(symbol),
            earnings=payloads.earnings(symbol, annual=1, quarterly=2),
            statements=payloads.statement(symbol, annual=1, quarterly=2),
        )
    extra_calls: list[str] = []

    def stream_sync() -> JobReport:
        extra_calls.append("stream")
        return JobReport(job="stream-sync")

    report = run_pipeline(
        store,
        assets,
        fundamentals,
        metrics=metrics,
        clock=lambda: NOW,
        pollenate_count=20,
        extra_steps=[("stream sync", stream_sync)],
    )
    assert report.ok, report.errors
    assert [s.step for s in report.steps] == ["sync assets", "sync earnings", "pollenate next 20", "stream sync"]
    assert extra_calls == ["stream"]
    sync, calendar, pollenate, _ = report.steps
    assert sync.written == 30 and sync.write_units == 30
    assert calendar.written == 1
    assert pollenate.details["pollenated"] == 20
    assert pollenate.written == 20 * (1 + 3 + 3 * 3) == pollenate.write_units
    assert [e["asset_symbol"] for e in report.upcoming_earnings] == ["S01"]
    assert report.consistency["duplicate_symbols"] == 0 and report.consistency["ok"]

    runtime = rt.Runtime(
        settings=Settings.model_validate({}),
        metrics=metrics,
        correlation_id="x",
        json_output=False,
        out=Console(record=True, width=200),
        err=Console(record=True, stderr=True),
    )
    render(runtime, report)
    text = runtime.out.export_text()
    assert "pollenate next 20" in text and "S01" in text and "consistency" in text
