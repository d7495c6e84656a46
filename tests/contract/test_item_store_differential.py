"""The fake and the DynamoDB store agree on any sequence of upserts and deletes: the same counts for every call,
the same items afterwards, the same dead letters. Generated sequences reach what the hand-written cases may miss
(numbers written differently, empty sets, repeated keys with and without dates, deletes in between)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.errors import PollenError
from pollen.ports import DeadLetterOperation
from pollen.tables import EARNINGS
from tests.fakes import InMemoryStore
from tests.integration.store_support import FAST_RETRY, client_factory

pytestmark = pytest.mark.integration

PERIOD = "ANNUAL#2025-12-31"
#: Sort keys a move goes to: before, at and after the one the items are written under.
PERIODS = ("ANNUAL#2024-12-31", PERIOD, "ANNUAL#2026-12-31")
SYNCS = (None, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
#: Few values, each in several spellings: equal content must be found equal however it was written.
NUMBERS = (Decimal(1), Decimal("1.0"), 1, Decimal("2.50"), Decimal("2.5"), Decimal("NaN"))

items = st.fixed_dictionaries(
    {"symbol": st.sampled_from("ABC"), "reportedEPS": st.sampled_from(NUMBERS)},
    optional={
        "lastSyncDate": st.sampled_from(SYNCS[1:]),
        "tags": st.sets(st.sampled_from(["x", "y"]), max_size=2),
        "detail": st.lists(st.sampled_from(NUMBERS[:5]), max_size=2),
    },
)
calls = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(items, min_size=1, max_size=5)),
        st.tuples(st.just("delete"), st.lists(st.sampled_from("ABC"), min_size=1, max_size=3)),
        st.tuples(st.just("move"), st.tuples(st.sampled_from("ABC"), st.sampled_from(PERIODS))),
    ),
    min_size=1,
    max_size=5,
)


class ExampleSink:
    """The dead-letter sink of the one store all examples share: each example reads its own letters."""

    def __init__(self) -> None:
        self.current = MemoryDeadLetters()

    def put(self, table: str, item: Mapping[str, Any], reason: str, *, operation: DeadLetterOperation = "put") -> None:
        self.current.put(table, item, reason, operation=operation)


@pytest.fixture
def dynamo(dynamodb: Any, endpoint: str, table_prefix: str) -> Iterator[tuple[DynamoStore, ExampleSink]]:
    ensure_tables(dynamodb, table_prefix, (EARNINGS,))
    sink = ExampleSink()
    with DynamoStore(
        client_factory=client_factory(endpoint, "wire"),
        table_prefix=table_prefix,
        dead_letters=sink,
        retry=FAST_RETRY,
        concurrency=2,
    ) as store:
        yield store, sink


_examples = itertools.count()


def _symbol(item: dict[str, Any]) -> str:
    return str(item["symbol"])


def _move(store: Any, symbol: str, target: str) -> dict[str, Any] | str:
    """What a move returned, or the type of error it raised."""
    try:
        return dict(store.move_sort_key("earnings", {"symbol": symbol, "fiscalPeriod": PERIOD}, target))
    except PollenError as exc:
        return type(exc).__name__


def _counts(report: Any) -> dict[str, int]:
    return {n: getattr(report, n) for n in ("written", "unchanged", "duplicates", "stale", "invalid", "failed")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=calls)
def test_the_fake_and_dynamodb_agree_on_any_sequence_of_writes(
    dynamo: tuple[DynamoStore, ExampleSink], sequence: list[tuple[str, list[Any]]]
) -> None:
    namespace = f"E{next(_examples)}-"  # one server table for every example: each uses its own symbols
    fake_letters, real_letters = MemoryDeadLetters(), MemoryDeadLetters()
    fake = InMemoryStore(dead_letters=fake_letters)
    real, sink = dynamo
    sink.current = real_letters
    for operation, arguments in sequence:
        if operation == "upsert":
            batch = [{**i, "symbol": namespace + i["symbol"], "fiscalPeriod": PERIOD} for i in arguments]
            outcomes = [store.upsert("earnings", batch) for store in (fake, real)]
        elif operation == "delete":
            keys = [{"symbol": namespace + s, "fiscalPeriod": PERIOD} for s in arguments]
            outcomes = [store.delete("earnings", keys) for store in (fake, real)]
        else:
            symbol, target = arguments
            moved = [_move(store, namespace + symbol, target) for store in (fake, real)]
            assert moved[0] == moved[1], (operation, arguments)
            continue
        assert _counts(outcomes[0]) == _counts(outcomes[1]), (operation, arguments)
    mine = [i for i in real.scan("earnings") if str(i["symbol"]).startswith(namespace)]
    assert sorted(fake.scan("earnings"), key=_symbol) == sorted(mine, key=_symbol)
    assert fake_letters.entries == real_letters.entries
    assert fake_letters.operations == real_letters.operations
