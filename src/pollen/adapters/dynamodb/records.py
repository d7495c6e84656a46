"""One input item on its way to DynamoDB: its key and version first (enough to resolve duplicates), then its full
encoding, content hash and size."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.schema import HASH_ATTRIBUTE, HASH_ATTRIBUTE_BYTES, SYNC_ATTRIBUTE, TableInfo


@dataclass
class Record:
    """One input item on its way through an upsert."""

    position: int
    plain: Mapping[str, Any]
    key: dict[str, Any]
    wire: dict[str, Any]
    signature: tuple[str, ...]
    sync: str | None
    digest: str
    size: int
    #: The complete item's JSON (wire form), set with the digest.
    json: str = ""


def guarded_encoding(encode: Callable[..., Any], *args: Any) -> Any:
    """Run a codec function, turning what malformed input makes Python raise into an invalid item."""
    try:
        return encode(*args)
    except UnicodeError as exc:  # a lone surrogate ("\\ud800") has no UTF-8 form
        raise codec.CodecError(f"a string has no UTF-8 form ({getattr(exc, 'reason', 'bad character')})") from None
    except RecursionError:
        raise codec.CodecError("nested too deeply") from None


def prepare_key(info: TableInfo, position: int, item: Mapping[str, Any]) -> Record:
    """The cheap first pass (key and version only), enough to resolve duplicates before the workers start."""
    if not isinstance(item, Mapping):
        raise codec.CodecError(f"an item must be a JSON object, not {type(item).__name__}")
    key_wire, signature = guarded_encoding(codec.encode_key, item, info.key_schema)
    sync = item.get(SYNC_ATTRIBUTE)
    return Record(
        position=position,
        plain=item,
        key={name: item[name] for name in info.key_names},
        wire=key_wire,
        signature=signature,
        sync=sync if isinstance(sync, str) else None,
        digest="",
        size=0,
    )


def complete(record: Record, bookkeeping: frozenset[str]) -> None:
    """The full encoding, content hash (over all attributes but ``bookkeeping``) and size check (done by the
    workers, in parallel with the I/O)."""
    if HASH_ATTRIBUTE in record.plain:
        raise codec.CodecError(
            f"attribute name {HASH_ATTRIBUTE!r} is reserved: pollen stores its content hash there (rename it)"
        )
    wire, size = guarded_encoding(codec.encode_item_sized, record.plain)
    size += HASH_ATTRIBUTE_BYTES + codec.HASH_CHARS
    if size > codec.MAX_ITEM_BYTES:
        raise codec.CodecError(f"item is {size} bytes, over DynamoDB's 400 KB limit")
    digest, text = guarded_encoding(codec.add_content_hash, wire, bookkeeping, HASH_ATTRIBUTE)
    record.wire, record.digest, record.size, record.json = wire, digest, size, text


def prepare(info: TableInfo, position: int, item: Mapping[str, Any], bookkeeping: frozenset[str]) -> Record:
    record = prepare_key(info, position, item)
    complete(record, bookkeeping)
    return record


@dataclass
class Write:
    """One request of a BatchWriteItem: a put of a record or a delete of a key."""

    signature: tuple[str, ...]
    request: dict[str, Any]
    #: ``request`` as compact JSON, for clients that take a ready body (``call_json``).
    json: str
    size: int
    units: int
    record: Any  # Record for puts, the plain key for deletes


def put_write(record: Record) -> Write:
    """The PutRequest of a completed record."""
    return Write(
        record.signature,
        {"PutRequest": {"Item": record.wire}},
        '{"PutRequest":{"Item":' + record.json + "}}",
        record.size,
        codec.write_units(record.size),
        record,
    )
