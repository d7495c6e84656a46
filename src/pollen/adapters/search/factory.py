"""Entry-point wiring for the search index: OpenSearch when POLLEN_SEARCH_URL is set, else the embedded index.

The embedded index lives in a file under POLLEN_HOME: right for the CLI, useless in Lambda (``/tmp`` does not
outlive the container), so a Lambda entry point asks for ``embedded_allowed=False`` and gets a ConfigError instead.
"""

from __future__ import annotations

from pollen.adapters.search.base import SearchIndex
from pollen.errors import ConfigError
from pollen.observability import MetricsRecorder
from pollen.settings import Settings


def build_search_index(settings: Settings, metrics: MetricsRecorder, *, embedded_allowed: bool = True) -> SearchIndex:
    if settings.search_url:
        from pollen.adapters.search.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_url(
            settings.search_url,
            region=settings.region,
            signed=settings.search_auth == "sigv4",
            service=settings.search_service,
            index_prefix=settings.table_prefix,
            metrics=metrics,
        )
    if not embedded_allowed:
        raise ConfigError(
            "POLLEN_SEARCH_URL is not set: stream sync in Lambda needs an OpenSearch endpoint "
            "(deploy with OpenSearchEndpoint empty to leave stream sync out)"
        )
    from pollen.adapters.search.embedded import EmbeddedSearchIndex

    return EmbeddedSearchIndex.in_home(settings.home)
