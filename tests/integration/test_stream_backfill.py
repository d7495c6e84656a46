"""Backfill next to live streaming, step by step (moto server over HTTP, real streams)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pollen.streams.backfill import run_backfill
from pollen.streams.records import version_key
from pollen.tables import COMPANY_OVERVIEW
from tests.integration.stream_support import MotoScanner, World

pytestmark = pytest.mark.integration


def overview(symbol: str, name: str) -> dict[str, Any]:
    return {"symbol": symbol, "Name": name, "lastSyncDate": f"2024-01-01T00:00:0{len(name) % 10}Z"}


def test_backfill_repairs_stale_documents_and_never_resurrects(
    dynamodb: Any, streams: Any, table_prefix: str, tmp_path: Path
) -> None:
    world = World.create(dynamodb, streams, table_prefix, tmp_path)
    world.put("companyOverview", overview("A", "first"))
    world.put("companyOverview", overview("B", "bee"))
    assert world.poller().run_once().ok
    world.put("companyOverview", overview("A", "second"))  # in the stream, not yet applied
    head = world.poller().head_sequence(world.sources()[2].table)

    deleted: list[bool] = []

    def delete_b_during_scan() -> None:
        if not deleted:
            world.delete("companyOverview", {"symbol": "B"})
            deleted.append(True)

    scanner = MotoScanner(dynamodb, table_prefix, page_size=1, between_pages=delete_b_during_scan)
    report = run_backfill(scanner, world.sync(), world.poller().head_sequence, tables=[COMPANY_OVERVIEW], segments=1)
    assert report.ok, report.errors
    assert report.positions["companyOverview"] == head
    # A is repaired before the poller gets there (B, if scanned before its delete, was written at the position).
    assert world.index.get("companyOverview", "A") == overview("A", "second")
    assert world.index.version_of("companyOverview", "A") == version_key(head, backfill=True)

    final = world.poller().run_once()
    assert final.ok and final.conflicts >= 1  # A's record at the position loses to the backfill
    assert world.index.get("companyOverview", "B") is None  # the later delete wins
    assert world.indexed() == world.expected()

    # A second backfill (B gone from the table) leaves B deleted.
    again = run_backfill(MotoScanner(dynamodb, table_prefix), world.sync(), world.poller().head_sequence)
    assert again.ok and again.scanned == 1
    assert world.index.get("companyOverview", "B") is None
    assert world.indexed() == world.expected()
