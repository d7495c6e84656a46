"""Entry-point wiring: builds the adapters the jobs need from typed settings.

Only entry points (CLI commands, Lambda handlers) call these; jobs receive the adapters.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from pollen.adapters import sources
from pollen.observability import MetricsRecorder
from pollen.ports import AssetSource, FundamentalsSource, ItemStore
from pollen.settings import Settings


def build_store(settings: Settings, metrics: MetricsRecorder, **options: Any) -> ItemStore:
    """The DynamoDB store (pollen.adapters.dynamodb.store) for these settings."""
    module = importlib.import_module("pollen.adapters.dynamodb.store")
    return cast(ItemStore, module.build_store(settings, metrics, **options))


def build_sources(settings: Settings, metrics: MetricsRecorder) -> tuple[AssetSource, FundamentalsSource]:
    """The Alpaca and Alpha Vantage clients for these settings."""
    return sources.build_sources(settings, metrics)
