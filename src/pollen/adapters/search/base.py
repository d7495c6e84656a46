"""The search index's port and its data types live in :mod:`pollen.ports`; their names stay importable here."""

from __future__ import annotations

from pollen.ports import TOMBSTONE_RETENTION_S, ApplyResult, Change, SearchHit, SearchIndex

__all__ = ["TOMBSTONE_RETENTION_S", "ApplyResult", "Change", "SearchHit", "SearchIndex"]
