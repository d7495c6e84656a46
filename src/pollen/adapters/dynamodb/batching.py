"""Pure batching rules: duplicate resolution and BatchWriteItem batches within DynamoDB's limits."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_TRANSACT_ACTIONS = 100
#: Bytes counted per request on top of the item (request envelope and table name), to stay safely under 16 MB.
REQUEST_OVERHEAD_BYTES = 256

T = TypeVar("T")


@dataclass
class Resolved(Generic[T]):
    winners: list[T]
    #: Inputs that lost to another input with the same key.
    losers: list[T]


def resolve_duplicates(
    records: Iterable[T], key: Callable[[T], Hashable], version: Callable[[T], str | None]
) -> Resolved[T]:
    """Keep one record per key. Rule (deterministic): the record with the newer ``version`` (``lastSyncDate``, an
    ISO-8601 UTC string) wins; when versions are equal or either is missing, the later input wins. Winners keep the
    position of the first input with their key."""
    chosen: dict[Hashable, T] = {}
    losers: list[T] = []
    for record in records:
        signature = key(record)
        previous = chosen.get(signature)
        if previous is None:
            chosen[signature] = record
            continue
        old, new = version(previous), version(record)
        if old is not None and new is not None and old > new:
            losers.append(record)
        else:
            losers.append(previous)
            chosen[signature] = record
    return Resolved(list(chosen.values()), losers)


def take_batch(
    waiting: deque[T],
    *,
    key: Callable[[T], Hashable],
    size: Callable[[T], int],
    max_count: int = MAX_BATCH_WRITE,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[T]:
    """Take the next batch from the front of the queue: at most ``max_count`` requests and ``max_bytes`` bytes, never
    two requests for one key (DynamoDB rejects a put and a delete, or two puts, of one key in one batch)."""
    batch: list[T] = []
    keys: set[Hashable] = set()
    used = 0
    while waiting and len(batch) < max_count:
        candidate = waiting[0]
        cost = size(candidate) + REQUEST_OVERHEAD_BYTES
        signature = key(candidate)
        if batch and (signature in keys or used + cost > max_bytes):
            break
        batch.append(waiting.popleft())
        keys.add(signature)
        used += cost
    return batch


def plan_batches(
    requests: Sequence[T],
    *,
    key: Callable[[T], Hashable],
    size: Callable[[T], int],
    max_count: int = MAX_BATCH_WRITE,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[list[T]]:
    """Split requests, in order, into the batches :func:`take_batch` makes."""
    waiting = deque(requests)
    batches: list[list[T]] = []
    while waiting:
        batches.append(take_batch(waiting, key=key, size=size, max_count=max_count, max_bytes=max_bytes))
    return batches
