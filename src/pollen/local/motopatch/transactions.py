"""TransactWriteItems saves and restores only what a transaction can change, not a deep copy of every table.

What moto does: ``DynamoDBBackend.transact_write_items`` deep-copies each table an action names, once per action,
before it applies anything, and when the transaction is cancelled puts the copies in place of the tables. At 20,000
items that is 8 s and 2 GB per two-action transaction.

What the patch does: while moto's function runs, its ``copy.deepcopy`` of a table (and only that call, only on this
thread) returns a ``TableBackup``: the table's partition structure copied shallowly, a deep copy of each item an action
addresses (an Update changes its item in place), and the stream shard's record list. moto's own code still decides
everything; if it rolls back, it stores the backup in ``self.tables``, and the wrapper then restores the original
table object from the backup and puts it back.

Why it is equivalent: during a transaction a table changes only through ``put_item``, ``delete_item`` and
``update_item`` of the addressed keys: inserts and removals are undone by the shallow structure copy, in-place
updates by the item copies, stream records by the saved list; moto's rollback decisions (which exceptions, which
tables) are its own code. Key attributes are read the way moto reads them; an action whose key cannot be read
cannot have found an item to change in place. One observable difference remains: after a rollback moto's tables
are fresh copies, so stream records written before the transaction no longer share set-valued lists with stored
items; here they still do, which matters only if such a list is later changed in place.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

_original_transact_write_items: Callable[..., Any] = DynamoDBBackend.transact_write_items
_transaction = threading.local()


class TableBackup:
    """What a transaction may change in one table, saved before it runs."""

    def __init__(self, backend: Any, table: Any, transact_items: list[dict[str, Any]]) -> None:
        self.table = table
        self.partitions = {
            hash_key: dict(partition) if table.range_key_attr else partition
            for hash_key, partition in table.items.items()
        }
        self.item_copies: dict[int, Any] = {}
        for action in transact_items:
            for operation in action.values():
                if not isinstance(operation, dict) or operation.get("TableName") != table.name:
                    continue
                item = self._addressed_item(backend, table, operation)
                if item is not None:
                    self.item_copies[id(item)] = copy.deepcopy(item)
        shard = table.stream_shard
        self.stream_records = None if shard is None else list(shard.items)

    @staticmethod
    def _addressed_item(backend: Any, table: Any, operation: dict[str, Any]) -> Any:
        try:
            if "Item" in operation:
                attrs = operation["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = operation["Key"]
            hash_value, range_value = backend.get_keys_value(table, key)
            return table.get_item(hash_value, range_value)
        except Exception:  # moto fails such an action before it changes anything
            return None

    def restore(self) -> Any:
        table = self.table
        table.items.clear()
        for hash_key, partition in self.partitions.items():
            if table.range_key_attr:
                table.items[hash_key] = {
                    range_key: self.item_copies.get(id(item), item) for range_key, item in partition.items()
                }
            else:
                table.items[hash_key] = self.item_copies.get(id(partition), partition)
        if self.stream_records is not None and table.stream_shard is not None:
            table.stream_shard.items = self.stream_records
        return table


class _CopyModule:
    """Stands in for ``copy`` in moto's DynamoDB models module: a table copied during a transaction is a backup."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        context = getattr(_transaction, "value", None)
        if context is not None and isinstance(value, Table):
            backend, transact_items, backups = context
            # moto copies a table once per action naming it, all before the first change: one backup serves all.
            if id(value) not in backups:
                backups[id(value)] = TableBackup(backend, value, transact_items)
            return backups[id(value)]
        return copy.deepcopy(value, memo)


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``transact_write_items`` with table backups in place of table copies."""
    _transaction.value = (self, transact_items, {})
    try:
        _original_transact_write_items(self, transact_items)
    finally:
        _transaction.value = None
        for table_name, table in list(self.tables.items()):
            if isinstance(table, TableBackup):
                self.tables[table_name] = table.restore()


def apply() -> None:
    dynamodb_models.copy = _CopyModule()  # type: ignore[attr-defined,assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
