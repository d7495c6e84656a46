"""Transactions: TransactWriteItems with an idempotency token, its cancellations explained action by action, and
``move_sort_key`` (one transaction over the whole partition, each action conditional on its item being unchanged
since it was read; read again and retried on a conflict; with ``unless_leased``, also conditional on a job's lease
being free, refused with :class:`pollen.errors.LeaseBlocked` while it is held)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batching import MAX_TRANSACT_ACTIONS
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.errors import error_code, translate
from pollen.adapters.dynamodb.lease import free_check
from pollen.adapters.dynamodb.records import prepare
from pollen.adapters.dynamodb.reports import M_MOVE_CONFLICTS, M_RETRIES, M_TX_CANCELLED, key_text
from pollen.adapters.dynamodb.schema import HASH_ATTRIBUTE, SYNC_ATTRIBUTE, TableCatalog, TableInfo, sort_value
from pollen.deadline import Deadline
from pollen.errors import LeaseBlocked, NotFound, PermanentError, PollenError
from pollen.ports import Item, Key
from pollen.tables import CONTROL

log = logging.getLogger(__name__)

#: A sort-key move that meets a concurrent write reads the partition again and retries, at most this often.
MOVE_ATTEMPTS = 8

#: Cancellation reasons that another try may not meet again.
_TRANSIENT_CODES = {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


class TransactionCancelled(PermanentError):
    """A TransactWriteItems call was cancelled; ``outcomes`` has one (code, message) per action, ``items`` the item
    a failed condition found, per action (None where none was asked for or there was none)."""

    def __init__(
        self,
        message: str,
        *,
        outcomes: list[tuple[str, str]],
        items: list[Item | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.outcomes = outcomes
        self.items = items or [None] * len(outcomes)

    def failed(self, index: int) -> bool:
        """Whether action ``index`` failed its condition."""
        return index < len(self.outcomes) and self.outcomes[index][0] == "ConditionalCheckFailed"


class Transactions:
    def __init__(
        self,
        catalog: TableCatalog,
        dispatcher: Dispatcher,
        bookkeeping: frozenset[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.bookkeeping = bookkeeping
        #: Wall time (epoch seconds) a guarded move compares lease expiries with (they are wall times too).
        self.clock = clock

    def put_action(
        self, table: str, item: Item, *, condition: str | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A TransactWriteItems Put of a plain item (encoded, checked, with its content hash)."""
        info = self.catalog.info(table)
        record = prepare(info, 0, item, self.bookkeeping)
        action: dict[str, Any] = {"TableName": info.physical, "Item": record.wire}
        if condition:
            action["ConditionExpression"] = condition
            if names:
                action["ExpressionAttributeNames"] = names
        return {"Put": action}

    def delete_action(self, table: str, key: Key, *, must_exist: bool = False) -> dict[str, Any]:
        info = self.catalog.info(table)
        wire = codec.encode_item({name: key[name] for name in info.key_names})
        codec.check_key(wire, info.key_schema)
        action: dict[str, Any] = {"TableName": info.physical, "Key": wire}
        if must_exist:
            action["ConditionExpression"] = "attribute_exists(#pk)"
            action["ExpressionAttributeNames"] = {"#pk": info.key_names[0]}
        return {"Delete": action}

    def transact_write(
        self, actions: Sequence[dict[str, Any]], *, token: str | None = None, deadline: Deadline | None = None
    ) -> None:
        """One TransactWriteItems (at most 100 actions) with an idempotency token (derived from the actions when not
        given, so a retried call is not applied twice). Transient cancellations (conflicts, throttling) are retried
        with the same token; otherwise raises :class:`TransactionCancelled` with one outcome per action."""
        if not actions:
            return
        if len(actions) > MAX_TRANSACT_ACTIONS:
            raise PermanentError(f"a transaction holds at most {MAX_TRANSACT_ACTIONS} actions, not {len(actions)}")
        deadline = deadline or Deadline.never()
        if token is None:
            text = json.dumps(actions, sort_keys=True, default=_token_default)
            token = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
        metrics, retry = self.dispatcher.metrics, self.dispatcher.retry
        stalls = 0
        while True:
            try:
                self.dispatcher.attempt(
                    "TransactWriteItems",
                    lambda client: client.transact_write_items(TransactItems=list(actions), ClientRequestToken=token),
                    explain=lambda exc: transaction_error(exc, actions),
                )
                return
            except PollenError as err:
                if not err.transient:
                    if isinstance(err, TransactionCancelled):
                        metrics.count(M_TX_CANCELLED)
                    raise
                stalls += 1
                if retry.exhausted(stalls) or deadline.expired():
                    raise
            metrics.count(M_RETRIES, operation="TransactWriteItems")
            retry.sleep(stalls, deadline)

    def move_sort_key(self, table: str, key: Key, new_sort: Any, *, unless_leased: str | None = None) -> Item:
        """See :meth:`.store.DynamoStore.move_sort_key`."""
        info = self.catalog.info(table)
        if len(info.key_names) != 2:
            raise PermanentError(f"{table} has no sort key to move")
        for attempt in range(1, MOVE_ATTEMPTS + 1):
            try:
                return self._move_once(table, info, key, new_sort, unless_leased)
            except TransactionCancelled as exc:
                if unless_leased is not None and exc.failed(0):
                    raise _lease_blocked(table, key, unless_leased, exc.items[0]) from exc
                if not any(code == "ConditionalCheckFailed" for code, _ in exc.outcomes) or attempt == MOVE_ATTEMPTS:
                    raise
                self.dispatcher.metrics.count(M_MOVE_CONFLICTS, table=table)
                log.info("sort-key move conflicted with a concurrent write; reading again", extra={"key": key})
        raise AssertionError("unreachable")

    def _move_once(self, table: str, info: TableInfo, key: Key, new_sort: Any, unless_leased: str | None) -> Item:
        """Read the partition and move it in one transaction (TransactionCancelled when something changed, or when
        the lease ``unless_leased`` is held: then its ConditionCheck, the first action, failed)."""
        partition_name, sort_name = info.key_names
        stored = self._partition(info, key[partition_name])
        if not stored:
            raise NotFound(f"{table} {partition_name}={key[partition_name]}: no item to move", keys=[key])
        content = max(stored, key=lambda i: (str(i.get(SYNC_ATTRIBUTE, "")), sort_value(i[sort_name])))
        target = max([new_sort, *(i[sort_name] for i in stored)], key=sort_value)
        item = {k: v for k, v in content.items() if k != HASH_ATTRIBUTE} | {sort_name: target}
        if len(stored) == 1 and content[sort_name] == target:
            return item  # already there
        actions = [self._unchanged_action(table, info, i, item) for i in stored]
        if not any("Put" in a for a in actions):
            put = self.put_action(table, item)
            put["Put"]["ConditionExpression"] = "attribute_not_exists(#k)"
            put["Put"]["ExpressionAttributeNames"] = {"#k": partition_name}
            actions.append(put)
        if unless_leased is not None:
            # One more action, on another table's item: the transaction commits only while nobody holds the lease.
            actions.insert(0, free_check(self.catalog.info(CONTROL.name).physical, unless_leased, self.clock()))
        self.transact_write(actions)
        return item

    def _partition(self, info: TableInfo, value: Any) -> list[Item]:
        """Every item of one partition, strongly consistent, with ``contentHash`` (for the move's conditions)."""
        params: dict[str, Any] = {
            "TableName": info.physical,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": info.key_names[0]},
            "ExpressionAttributeValues": {":p": codec.encode_value(value)},
            "ConsistentRead": True,
        }
        items: list[Item] = []
        while True:
            response = self.dispatcher.call("query", Deadline.never(), keys=[{info.key_names[0]: value}], **params)
            items.extend(codec.decode_item(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            params["ExclusiveStartKey"] = last

    def _unchanged_action(self, table: str, info: TableInfo, stored: Item, item: Item) -> dict[str, Any]:
        """The move's action on one stored item: a Delete, or the Put of ``item`` when it has the same key; either
        holds only while the stored item is unchanged (same ``contentHash`` and ``lastSyncDate``)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        parts = []
        for n, attribute in enumerate((HASH_ATTRIBUTE, SYNC_ATTRIBUTE)):
            names[f"#c{n}"] = attribute
            if attribute in stored:
                values[f":c{n}"] = codec.encode_value(stored[attribute])
                parts.append(f"#c{n} = :c{n}")
            else:
                parts.append(f"attribute_not_exists(#c{n})")
        same_key = all(stored[k] == item[k] for k in info.key_names)
        if same_key:
            action = self.put_action(table, item)
        else:
            action = self.delete_action(table, {k: stored[k] for k in info.key_names})
        body = next(iter(action.values()))
        body["ConditionExpression"] = " AND ".join(parts)
        body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        return action


def transaction_error(exc: ClientError, actions: Sequence[dict[str, Any]]) -> PollenError:
    """A TransactWriteItems error; a cancellation explained action by action (transient when every failing action
    failed for a reason another try may not meet)."""
    if error_code(exc) != "TransactionCanceledException":
        return translate(exc, action="TransactWriteItems")
    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
    outcomes = [(str(r.get("Code") or "None"), str(r.get("Message") or "")) for r in reasons]
    items = [codec.decode_item(r["Item"]) if r.get("Item") else None for r in reasons]
    failing = [(i, code, message) for i, (code, message) in enumerate(outcomes) if code != "None"]
    parts = [_explain_action(actions, i, code, message) for i, code, message in failing]
    transient = bool(failing) and all(code in _TRANSIENT_CODES for _, code, _ in failing)
    message = "transaction cancelled: " + ("; ".join(parts) or str(exc))
    return TransactionCancelled(
        message[:500], outcomes=outcomes, items=items, code="TransactionCanceled", transient=transient
    )


def _lease_blocked(table: str, key: Key, job: str, lease: Item | None) -> LeaseBlocked:
    """The refusal of a move guarded by ``job``'s lease, naming the holder when the cancellation returned it."""
    holder = f" by {lease['owner']}" if lease and lease.get("owner") else ""
    until = f" until {lease['expiresAtIso']}" if lease and lease.get("expiresAtIso") else ""
    return LeaseBlocked(
        f"{table} {key_text(key)} not moved: the lease of job {job!r} is held{holder}{until}",
        job=job,
        keys=[key],
        code="LeaseBlocked",
    )


def _explain_action(actions: Sequence[dict[str, Any]], i: int, code: str, message: str) -> str:
    verb, body = next(iter(actions[i].items())) if i < len(actions) else ("?", {})
    what = key_text(codec.decode_item(body.get("Key") or {})) if verb != "Put" else "new item"
    explain = " (the item to delete does not exist)" if code == "ConditionalCheckFailed" and verb == "Delete" else ""
    return f"action {i + 1} ({verb} {what}): {code}{explain}{': ' + message if message else ''}"


def _token_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)
