"""The search index port and its adapters (embedded SQLite FTS5, OpenSearch)."""

from pollen.adapters.search.base import ApplyResult, SearchHit, SearchIndex

__all__ = ["ApplyResult", "SearchHit", "SearchIndex"]
