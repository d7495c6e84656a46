"""The index converges to the tables whatever the delivery: duplicated and reordered batches, retried batches,
poller crash-restarts and a backfill interleaved with live writes (moto server over HTTP, real streams)."""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pollen.adapters.search.base import ApplyResult
from pollen.adapters.search.embedded import EmbeddedSearchIndex
from pollen.errors import TransientError
from pollen.streams.backfill import run_backfill
from pollen.streams.checkpoints import FileCheckpoints, ShardCheckpoint
from pollen.streams.poller import StreamPoller
from pollen.streams.records import Change
from tests.integration.stream_support import MotoScanner, World

pytestmark = pytest.mark.integration

SYMBOLS = ("AAPL", "BRK.B", "a|b%c", "MSFT")
DATES = ("2024-01-01", "2024-02-01")
POLLENATED = ("1970-01-01T00:00:00Z", "2024-03-01T12:00:00Z")


def content(variant: int) -> dict[str, Any]:
    """Item content for a variant; the same variant always gives the same content (and the same lastSyncDate,
    as the contract says: lastSyncDate changes only with the content)."""
    numbers = (Decimal("1E+3"), Decimal("0.000001"), Decimal("123456789012345678901234567890.5"), Decimal(-7))
    body: dict[str, Any] = {
        "name": f"Company {variant}",
        "value": numbers[variant % len(numbers)],
        "lastSyncDate": f"2024-01-{variant % 28 + 1:02d}T00:00:00Z",
    }
    if variant % 2:
        body["tags"] = {f"t{variant}", "common"}
        body["scores"] = {Decimal(variant), Decimal("2.5")}
    if variant % 3 == 0:
        body["blob"] = bytes([variant % 256, 0, 255])
        body["nested"] = {"list": [Decimal(variant), True, None, "x"], "map": {"k": Decimal("1.10")}}
    return body


def key_of(table: str, key_index: int) -> dict[str, Any]:
    symbol = SYMBOLS[key_index % len(SYMBOLS)]
    if table == "assets":
        return {"symbol": symbol, "lastPollenationDate": POLLENATED[key_index // len(SYMBOLS) % 2]}
    if table == "earningsCalendar":
        return {"asset_symbol": symbol, "earnings_date": DATES[key_index // len(SYMBOLS) % 2]}
    return {"symbol": symbol}


operations = st.lists(
    st.tuples(
        st.sampled_from(("put", "put", "delete")),
        st.sampled_from(("assets", "earningsCalendar", "companyOverview")),
        st.integers(0, 7),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=40,
)


def perform(world: World, op: tuple[str, str, int, int]) -> None:
    kind, table, key_index, variant = op
    key = key_of(table, key_index)
    if kind == "put":
        world.put(table, {**content(variant), **key})
    else:
        world.delete(table, key)


class Crash(Exception):
    """The poller process dying (between the index commit and the checkpoint write)."""


class CrashingCheckpoints(FileCheckpoints):
    def __init__(self, path: Path, rng: random.Random, rate: float) -> None:
        super().__init__(path)
        self.rng = rng
        self.rate = rate

    def put(self, stream_arn: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        if self.rng.random() < self.rate:
            raise Crash
        super().put(stream_arn, shard_id, checkpoint)


class FlakyIndex:
    """Fails some applies before touching the index (a retried batch) and some items (partial failure)."""

    def __init__(self, inner: EmbeddedSearchIndex, rng: random.Random, rate: float) -> None:
        self.inner = inner
        self.rng = rng
        self.rate = rate

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        if self.rng.random() < self.rate:
            raise TransientError("injected: index unavailable")
        if len(changes) > 1 and self.rng.random() < self.rate:
            cut = self.rng.randrange(1, len(changes))
            result = self.inner.apply(changes[:cut])
            result.failed += [(c, "injected: 503") for c in changes[cut:]]
            return result
        return self.inner.apply(changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def crash_prone_poller(world: World, rng: random.Random) -> StreamPoller:
    poller = world.poller(FlakyIndex(world.index, rng, 0.3), batch_size=rng.choice((1, 3, 10)))
    poller.checkpoints = CrashingCheckpoints(world.home / "stream-checkpoints.json", rng, 0.2)
    return poller


def run_with_crashes(world: World, rng: random.Random, attempts: int) -> None:
    for _ in range(attempts):
        try:
            crash_prone_poller(world, rng).run_once()  # a fresh poller each time: a restart from the checkpoint
        except Crash:
            continue


def chaos_delivery(world: World, rng: random.Random) -> None:
    """Deliver records straight from the stream: some duplicated, batches shuffled, some retried."""
    sync = world.sync()
    for table, records in world.raw_records().items():
        chosen = [r for r in records if rng.random() < 0.6]
        chosen += rng.sample(chosen, k=len(chosen) // 2)
        rng.shuffle(chosen)
        while chosen:
            size = rng.randint(1, 10)
            batch, chosen = chosen[:size], chosen[size:]
            sync.apply_records(batch, table)
            if rng.random() < 0.3:
                sync.apply_records(batch, table)  # a retried delivery of the same batch


@given(ops=operations, data=st.data())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_index_converges_to_tables(dynamodb: Any, streams: Any, ops: list[Any], data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    with tempfile.TemporaryDirectory() as home:
        world = World.create(dynamodb, streams, f"p{uuid.uuid4().hex[:12]}-", Path(home))
        pending = list(ops)
        backfill_at = data.draw(st.integers(0, len(ops)), label="backfill starts after op")
        while pending:
            step = rng.randint(1, 8)
            done_before = len(ops) - len(pending)
            for op in pending[:step]:
                perform(world, op)
            pending = pending[step:]
            action = rng.choice(("poll", "chaos", "none"))
            if action == "poll":
                run_with_crashes(world, rng, attempts=2)
            elif action == "chaos":
                chaos_delivery(world, rng)
            if done_before <= backfill_at < done_before + step and pending:
                # A backfill whose scan interleaves with live writes (one op after every scanned page).
                def next_write(queue: list[Any] = pending) -> None:
                    if queue:
                        perform(world, queue.pop(0))

                poller = world.poller()
                scanner = MotoScanner(dynamodb, world.prefix, page_size=2, between_pages=next_write)
                report = run_backfill(scanner, world.sync(), poller.head_sequence, segments=2)
                assert report.ok, report.errors
        run_with_crashes(world, rng, attempts=3)
        final = world.poller().run_once()
        assert final.ok, final.errors

        expected = world.expected()
        assert world.indexed() == expected

        # Replaying the whole stream (twice) changes nothing.
        before = world.index.snapshot()
        sync = world.sync()
        for _ in range(2):
            for table, records in world.raw_records().items():
                for start in range(0, len(records), 10):
                    sync.apply_records(records[start : start + 10], table)
        assert world.index.snapshot() == before
        assert world.indexed() == expected
        world.index.close()
