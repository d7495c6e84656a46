"""Entry-point wiring for the search index: OpenSearch when POLLEN_SEARCH_URL is set, else the embedded index."""

from __future__ import annotations

from pollen.adapters.search.base import SearchIndex
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.observability import MetricsRecorder
from pollen.settings import Settings


def build_search_index(settings: Settings, metrics: MetricsRecorder) -> SearchIndex:
    if settings.search_url:
        from pollen.adapters.search.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_url(settings.search_url, index_prefix=settings.table_prefix, metrics=metrics)
    return EmbeddedSearchIndex.in_home(settings.home)
