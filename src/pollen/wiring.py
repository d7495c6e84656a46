"""Entry-point wiring: builds the adapters the jobs need from typed settings.

Only entry points (CLI commands, Lambda handlers) call these; jobs receive the adapters.
"""

from __future__ import annotations

from typing import Any

from pollen.adapters import sources
from pollen.adapters.dynamodb import store
from pollen.observability import MetricsRecorder
from pollen.ports import AssetSource, FundamentalsSource, ItemStore
from pollen.settings import Settings


def build_store(settings: Settings, metrics: MetricsRecorder, **options: Any) -> ItemStore:
    """The DynamoDB store for these settings."""
    return store.build_store(settings, metrics, **options)


def build_sources(settings: Settings, metrics: MetricsRecorder) -> tuple[AssetSource, FundamentalsSource]:
    """The Alpaca and Alpha Vantage clients for these settings."""
    return sources.build_sources(settings, metrics)
