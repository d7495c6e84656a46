"""The stored versions an upsert compares with (each key's ``contentHash`` and ``lastSyncDate``), read whichever
way costs fewer read units.

- By key: each worker reads its chunk in strongly consistent BatchGetItems of 100 keys; every item costs at least one
  unit, whatever the projection.
- By Scan: for a large upsert into a table that is small next to it, one parallel projected Scan of the whole table
  before the writes (a Scan is charged by the bytes read, so reading 10,000 small items costs a few hundred units
  instead of 10,000). The choice uses DescribeTable's size and count, which DynamoDB refreshes only every few hours,
  so the Scan gives up, and the reads go by key, once it has read more items than the estimate allowed.
- From the caller: what it has just read of the whole table (``upsert(stored=...)``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import suppress

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batching import MAX_BATCH_GET
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.records import Record
from pollen.adapters.dynamodb.reports import M_COMPARE_SCANS, M_RETRIES
from pollen.adapters.dynamodb.scan import Scanner
from pollen.adapters.dynamodb.schema import HASH_ATTRIBUTE, SYNC_ATTRIBUTE, TableInfo
from pollen.deadline import Deadline
from pollen.errors import PollenError, TransientError
from pollen.ports import Item

log = logging.getLogger(__name__)

#: Stored (contentHash, lastSyncDate) by key signature.
Versions = dict[tuple[str, ...], tuple[str | None, str | None]]

#: Upserts smaller than this always read by key (a few BatchGetItems; not worth a DescribeTable).
SCAN_COMPARE_MIN_ITEMS = 1_000
#: Read units per item read by key, strongly consistent (items up to 4 KB), and bytes per unit for a Scan.
RCU_BYTES = 4096


def versions_of(info: TableInfo, stored: Iterable[Item]) -> Versions:
    """The versions of items a caller has read (plain items with their content hash), by key signature."""
    found: Versions = {}
    for item in stored:
        try:
            _, signature = codec.encode_key(item, info.key_schema)
        except codec.CodecError:
            continue  # not a key of this table: it cannot match an incoming item either
        digest, sync = item.get(HASH_ATTRIBUTE), item.get(SYNC_ATTRIBUTE)
        found[signature] = (
            digest if isinstance(digest, str) else None,
            sync if isinstance(sync, str) else None,
        )
    return found


class VersionReader:
    def __init__(self, dispatcher: Dispatcher, scanner: Scanner) -> None:
        self.dispatcher = dispatcher
        self.scanner = scanner

    def by_scan(self, info: TableInfo, records: Sequence[Record], deadline: Deadline) -> Versions | None:
        """The stored versions of the whole table by one projected, strongly consistent, parallel Scan, when that
        costs fewer read units than reading the records' keys; None when reading by key is cheaper or the Scan gave
        up."""
        budget = self._scan_budget(info, records, deadline)
        if budget is None:
            return None
        found = self._scan_versions(info, budget, deadline)
        if found is not None:
            self.dispatcher.metrics.count(M_COMPARE_SCANS, table=info.logical)
        return found

    def _scan_budget(self, info: TableInfo, records: Sequence[Record], deadline: Deadline) -> int | None:
        """The cost model: how many items the Scan may read before it gives up, or None when reading by key is
        cheaper (or the table's figures cannot be had)."""
        count = len(records)
        if count < SCAN_COMPARE_MIN_ITEMS:
            return None
        try:
            described = self.dispatcher.call("describe_table", deadline, TableName=info.physical)["Table"]
        except PollenError as exc:
            log.info("describe failed; reading by key", extra={"table": info.logical, "error": exc.message[:200]})
            return None
        stored_items = int(described.get("ItemCount", 0))
        # A size of 0 next to a count (not refreshed yet, or an emulator): assume items like the incoming ones.
        stored_bytes = int(described.get("TableSizeBytes", 0)) or stored_items * _mean_size(records)
        if stored_bytes / RCU_BYTES >= count:
            return None
        # Both figures may be hours old: stop once the Scan has read clearly more than they promised.
        return 2 * max(stored_items, count)

    def _scan_versions(self, info: TableInfo, budget: int, deadline: Deadline) -> Versions | None:
        attributes = [*info.key_names, HASH_ATTRIBUTE, SYNC_ATTRIBUTE]
        found: Versions = {}
        items = self.scanner.scan(
            info.logical, segments=self.dispatcher.concurrency, attributes=attributes, consistent=True, wire=True
        )
        try:
            for item in items:
                if len(found) >= budget or deadline.expired():
                    log.info("comparison scan abandoned", extra={"table": info.logical, "read": len(found)})
                    return None
                found[codec.key_signature(item, info.key_names)] = (
                    item.get(HASH_ATTRIBUTE, {}).get("S"),
                    item.get(SYNC_ATTRIBUTE, {}).get("S"),
                )
        except PollenError as exc:
            log.info("comparison scan failed; reading by key", extra={"table": info.logical, "error": exc.message})
            return None
        finally:
            items.close()
        return found

    def by_key(self, info: TableInfo, records: Sequence[Record], deadline: Deadline) -> Versions:
        """Stored ``contentHash`` and ``lastSyncDate`` by key signature, 100 keys per BatchGetItem; unprocessed keys
        go back in the queue and ride along with the next request."""
        names = {f"#k{i}": name for i, name in enumerate(info.key_names)}
        names.update({"#h": HASH_ATTRIBUTE, "#s": SYNC_ATTRIBUTE})
        waiting = deque({name: r.wire[name] for name in info.key_names} for r in records)
        found: Versions = {}
        stalls = 0
        retry = self.dispatcher.retry
        while waiting:
            keys = [waiting.popleft() for _ in range(min(MAX_BATCH_GET, len(waiting)))]
            request = {
                info.physical: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            response = self.dispatcher.call("batch_get_item", deadline, RequestItems=request)
            for item in response.get("Responses", {}).get(info.physical, []):
                digest = item.get(HASH_ATTRIBUTE, {}).get("S")
                sync = item.get(SYNC_ATTRIBUTE, {}).get("S")
                found[codec.key_signature(item, info.key_names)] = (digest, sync)
            left = response.get("UnprocessedKeys", {}).get(info.physical, {}).get("Keys", [])
            if not left:
                stalls = 0
                continue
            stalls = stalls + 1 if len(left) == len(keys) else 0
            waiting.extend(left)
            if retry.exhausted(stalls) or deadline.expired():
                raise TransientError(f"BatchGetItem: {len(waiting)} keys left unprocessed after retries")
            self.dispatcher.metrics.count(M_RETRIES, operation="BatchGetItem")
            retry.sleep(stalls, deadline)
        return found


def _mean_size(records: Sequence[Record], sample: int = 16) -> int:
    """DynamoDB size of the records' items, averaged over a few spread across them (at least 1 byte)."""
    step = max(1, len(records) // sample)
    sizes = []
    for record in records[::step][:sample]:
        with suppress(codec.CodecError):
            sizes.append(codec.item_size(codec.encode_item(record.plain)))
    return max(1, sum(sizes) // len(sizes)) if sizes else RCU_BYTES
