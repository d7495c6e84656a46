"""Reads: single items, batches of keys, and queries through the table or a GSI, with the fallback to a filtered,
sorted Scan of the base table when the index cannot answer.

The fallback happens when the index is missing or still backfilling (an error naming the index), or keeps failing
with throttling, 5xx or resets after a small retry budget (3 rounds, waits capped at 1 s). Any other error is
raised, never hidden by a fallback. Items already yielded before a failure are not repeated. Metrics:
``GsiQueryFailure`` (with the reason) and ``GsiFallback``."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batching import MAX_BATCH_GET
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.reports import M_GSI_FAILURE, M_GSI_FALLBACK, M_GSI_MS, M_GSI_QUERIES
from pollen.adapters.dynamodb.scan import Scanner, keeps_hash, plain_item
from pollen.adapters.dynamodb.schema import KeySchema, TableCatalog, TableInfo, sort_value
from pollen.deadline import Deadline
from pollen.errors import PollenError, ThrottledError, TransientError
from pollen.ports import Item, Key

log = logging.getLogger(__name__)

#: At most this many items per Query page when a limit is given (without one, DynamoDB's 1 MB pages).
QUERY_PAGE_ITEMS = 1000

#: How DynamoDB says that an index cannot serve reads while its table can: it does not exist (ValidationException
#: "The table does not have the specified index: X"; moto: ResourceNotFoundException "Invalid index: X for table: Y")
#: or is still being built (ValidationException "Cannot read from backfilling global secondary index: X").
_INDEX_UNUSABLE = {
    "does not have the specified index": "missing",
    "invalid index": "missing",
    "backfilling global secondary index": "backfilling",
}


def index_failure(error: PollenError) -> str | None:
    """Why a failed query through an index may fall back to a Scan of the base table ("missing", "backfilling",
    "throttled", "unavailable"), or None when the error must be raised: a permanent error that is not about the index
    (a value of the wrong type, a missing table, denied access) would fail or mislead the Scan as well."""
    if error.transient:
        return "throttled" if isinstance(error, ThrottledError) else "unavailable"
    if error.code in ("ValidationException", "ResourceNotFoundException"):
        text = error.message.lower()
        for phrase, reason in _INDEX_UNUSABLE.items():
            if phrase in text:
                return reason
    return None


@dataclass
class _Query:
    """One query's key condition and projection, shared by the Query and its fallback Scan."""

    info: TableInfo
    index: str | None
    #: The key schema the condition runs on (the index's, else the table's); None for an unknown index.
    schema: KeySchema | None
    sort_name: str | None
    keep_hash: bool
    attributes: Sequence[str] | None
    condition: str
    names: dict[str, str]
    values: dict[str, Any]
    descending: bool
    limit: int | None

    @classmethod
    def build(
        cls,
        info: TableInfo,
        partition: tuple[str, Any],
        sort_between: tuple[Any, Any] | None,
        index: str | None,
        descending: bool,
        limit: int | None,
        attributes: Sequence[str] | None,
    ) -> _Query:
        schema = info.indexes.get(index) if index else info.key_schema
        # Unknown index: guess nothing about its sort key; the fallback then returns the matches unsorted.
        sort_name = (schema[1][0] if len(schema) > 1 else None) if schema is not None else None
        keep_hash = keeps_hash(attributes)
        if attributes:
            needed = [*info.key_names, partition[0], *([sort_name] if sort_name else [])]
            attributes = list(dict.fromkeys([*attributes, *needed]))
        names = {"#p": partition[0]}
        values = {":p": codec.encode_value(partition[1])}
        condition = "#p = :p"
        if sort_between is not None and sort_name is not None:
            names["#s"] = sort_name
            values[":lo"] = codec.encode_value(sort_between[0])
            values[":hi"] = codec.encode_value(sort_between[1])
            condition += " AND #s BETWEEN :lo AND :hi"
        return cls(info, index, schema, sort_name, keep_hash, attributes, condition, names, values, descending, limit)


class Reader:
    def __init__(self, dispatcher: Dispatcher, catalog: TableCatalog, scanner: Scanner) -> None:
        self.dispatcher = dispatcher
        self.catalog = catalog
        self.scanner = scanner

    def get(self, table: str, key: Key) -> Item | None:
        info = self.catalog.info(table)
        wire, _ = codec.encode_key(key, info.key_schema)
        response = self.dispatcher.call(
            "get_item", Deadline.never(), keys=[key], TableName=info.physical, Key=wire, ConsistentRead=True
        )
        item = response.get("Item")
        return plain_item(item) if item else None

    def batch_get(self, table: str, keys: Sequence[Key]) -> list[Item]:
        """The items that exist, in the order of ``keys`` (duplicates and missing keys left out)."""
        info = self.catalog.info(table)
        order: dict[tuple[str, ...], dict[str, Any]] = {}
        for key in keys:
            wire, signature = codec.encode_key(key, info.key_schema)
            order.setdefault(signature, wire)
        found: dict[tuple[str, ...], Item] = {}
        wires = list(order.values())
        for start in range(0, len(wires), MAX_BATCH_GET):
            self._get_batch(table, info, wires[start : start + MAX_BATCH_GET], found)
        return [found[s] for s in order if s in found]

    def _get_batch(
        self, table: str, info: TableInfo, pending: list[dict[str, Any]], found: dict[tuple[str, ...], Item]
    ) -> None:
        """One BatchGetItem of at most 100 keys, repeated for its unprocessed keys."""
        retry = self.dispatcher.retry
        stalls = 0
        while pending:
            response = self.dispatcher.call(
                "batch_get_item",
                Deadline.never(),
                RequestItems={info.physical: {"Keys": pending, "ConsistentRead": True}},
            )
            for item in response.get("Responses", {}).get(info.physical, []):
                found[codec.key_signature(item, info.key_names)] = plain_item(item)
            left = response.get("UnprocessedKeys", {}).get(info.physical, {}).get("Keys", [])
            stalls = stalls + 1 if len(left) == len(pending) else 0
            pending = left
            if pending:
                if retry.exhausted(stalls):
                    raise TransientError(f"BatchGetItem {table}: {len(pending)} keys left unprocessed")
                retry.sleep(stalls, Deadline.never())

    def query(
        self,
        table: str,
        *,
        partition: tuple[str, Any],
        sort_between: tuple[Any, Any] | None = None,
        index: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        attributes: Sequence[str] | None = None,
    ) -> Iterator[Item]:
        """Items with ``partition[0] == partition[1]`` (sort key within ``sort_between``, inclusive), in sort-key
        order, through ``index`` when given; falls back to a filtered Scan when the index is missing or failing
        (see the module docstring and :func:`index_failure`). ``attributes`` projects the items onto those (the
        table's and the index's keys always included; naming ``contentHash`` keeps it)."""
        info = self.catalog.info(table)
        query = _Query.build(info, partition, sort_between, index, descending, limit, attributes)
        seen: set[tuple[str, ...]] = set()  # keys already yielded, so a fallback mid-way does not repeat them
        if index and query.schema is None:
            log.warning("unknown index; scanning the table instead", extra={"table": table, "index": index})
        if query.schema is not None:
            answered = yield from self._query_pages(query, seen)
            if answered:
                return
        if index:
            self.dispatcher.metrics.count(M_GSI_FALLBACK, index=index)
        yield from self._scan_instead(query, sort_between, seen)

    def _query_pages(self, query: _Query, seen: set[tuple[str, ...]]) -> Generator[Item, None, bool]:
        """The Query's pages; False when the index could not answer and a Scan must take over."""
        info, index, limit = query.info, query.index, query.limit
        params = _query_params(query)
        if index:
            self.dispatcher.metrics.count(M_GSI_QUERIES, index=index)
        # Through an index, transient failures get a small retry budget before the Scan takes over.
        retry = self.dispatcher.retry
        retry = retry if not index else replace(retry, cap_s=min(retry.cap_s, 1.0), max_attempts=4)
        try:
            while True:
                started = time.perf_counter()
                response = self.dispatcher.call("query", Deadline.never(), retry=retry, **params)
                if index:
                    self.dispatcher.metrics.timing_ms(M_GSI_MS, (time.perf_counter() - started) * 1000, index=index)
                for item in response.get("Items", []):
                    if limit is not None and len(seen) >= limit:
                        return True
                    seen.add(codec.key_signature(item, info.key_names))
                    yield plain_item(item, keep_hash=query.keep_hash)
                last = response.get("LastEvaluatedKey")
                if not last or (limit is not None and len(seen) >= limit):
                    return True
                params["ExclusiveStartKey"] = last
        except PollenError as exc:
            reason = index_failure(exc) if index else None
            if reason is None:
                raise
            self.dispatcher.metrics.count(M_GSI_FAILURE, index=index or "", reason=reason)
            log.warning(
                "index query failed; scanning the table instead",
                extra={"index": index, "reason": reason, "error": exc.message},
            )
            return False

    def _scan_instead(
        self, query: _Query, sort_between: tuple[Any, Any] | None, seen: set[tuple[str, ...]]
    ) -> Iterator[Item]:
        """The query answered by a filtered Scan of the base table, sorted as the Query would have been."""
        info, sort_name, names = query.info, query.sort_name, query.names
        condition = query.condition
        if sort_name is not None and sort_between is None:
            condition += " AND attribute_exists(#s)"
            names["#s"] = sort_name
        pages = self.scanner.pages(
            info, segment=None, filter_=(condition, names, query.values), attributes=query.attributes, wire=True
        )
        matches = [item for item in pages if codec.key_signature(item, info.key_names) not in seen]
        plain = [plain_item(item, keep_hash=query.keep_hash) for item in matches]
        if sort_name is not None:  # ties in the table's key order, so the answer is the same every time
            keys = info.key_names
            plain.sort(
                key=lambda item: (sort_value(item.get(sort_name)), *(sort_value(item.get(k)) for k in keys)),
                reverse=query.descending,
            )
        limit = query.limit
        yield from plain if limit is None else plain[: max(0, limit - len(seen))]


def _query_params(query: _Query) -> dict[str, Any]:
    params: dict[str, Any] = {
        "TableName": query.info.physical,
        "KeyConditionExpression": query.condition,
        "ExpressionAttributeNames": query.names,
        "ExpressionAttributeValues": query.values,
        "ScanIndexForward": not query.descending,
    }
    if query.index:
        params["IndexName"] = query.index
    if query.limit is not None:
        params["Limit"] = max(1, min(query.limit, QUERY_PAGE_ITEMS))
    if query.attributes:
        projected = {f"#a{i}": name for i, name in enumerate(query.attributes)}
        params["ProjectionExpression"] = ", ".join(projected)
        params["ExpressionAttributeNames"] = {**query.names, **projected}
    return params
