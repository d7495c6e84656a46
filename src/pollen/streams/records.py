"""Stream records into index changes.

Documents are JSON-ready: every DynamoDB number becomes a *string* in plain positional notation (``1E+3`` ->
``"1000"``), so it is exact, never E-notation and never subject to a search engine's numeric mapping (which
would round or reject 21-digit values); string/number sets become sorted lists; binary becomes base64.

Versions: a document's version is the record's sequence number compared as an integer, encoded as a fixed-width
string (``version_key``) that sorts lexically in the same order, with one trailing digit that is 0 for a stream
record and 1 for a backfill written at that stream position (a backfill read its items after that record, so it
wins a tie; any later record beats it).
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal
from urllib.parse import quote

from pollen.errors import InvalidRecord
from pollen.ports import Change as Change  # importable here, as before
from pollen.tables import STREAMED_TABLES, TableDef

log = logging.getLogger(__name__)


#: Attributes whose change alone is not worth mirroring (a MODIFY touching only these is skipped).
BOOKKEEPING_ATTRIBUTES: frozenset[str] = frozenset({"lastSyncDate"})
#: Sequence numbers are 21 to 40 digits; the padded width leaves room.
SEQUENCE_WIDTH = 48


@cache
def _deserializer() -> Any:
    # Imported on first use: boto3.dynamodb.types loads the whole of boto3 (s3transfer included), which a handler's
    # cold import does not need.
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def _binary_value(value: Any) -> bytes | None:
    """The bytes of a binary value (bytes, or boto3's ``Binary`` once boto3 decoded one), else None."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    types = sys.modules.get("boto3.dynamodb.types")  # no Binary can exist before boto3's types are loaded
    if types is not None and isinstance(value, types.Binary):
        return bytes(value.value)
    return None


def version_key(sequence_number: str, *, backfill: bool = False) -> str:
    """A string whose lexical order is the integer order of sequence numbers (backfill after its position)."""
    digits = sequence_number.strip()
    if not digits.isdigit() or len(digits) > SEQUENCE_WIDTH:
        raise InvalidRecord(f"bad sequence number {sequence_number[:60]!r}")
    digits = digits.lstrip("0") or "0"
    return digits.zfill(SEQUENCE_WIDTH) + ("1" if backfill else "0")


def sequence_of(version: str) -> str:
    """The sequence number a version key was made from."""
    return version[:SEQUENCE_WIDTH].lstrip("0") or "0"


def to_json_value(value: Any) -> Any:
    """A deserialized DynamoDB value as an exact JSON-ready value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if (raw_value := _binary_value(value)) is not None:
        return base64.b64encode(raw_value).decode("ascii")
    if isinstance(value, set | frozenset):
        return _set_json(list(value))
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, float):
        # Never produced by DynamoDB; kept exact through its repr rather than silently rounded.
        return format(Decimal(repr(value)), "f")
    raise InvalidRecord(f"unsupported value type {type(value).__name__}")


def _set_json(members: list[Any]) -> list[str]:
    """A number, binary or string set as a sorted JSON list (numbers exact, binaries base64)."""
    if all(isinstance(m, Decimal | int) for m in members):
        return [format(Decimal(m), "f") for m in sorted(members)]
    binaries = [b for b in map(_binary_value, members) if b is not None]
    if len(binaries) == len(members):
        return [base64.b64encode(b).decode("ascii") for b in sorted(binaries)]
    return sorted(str(m) for m in members)


def to_document(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain item (Decimal numbers, sets, bytes) as an index document."""
    return {str(k): to_json_value(v) for k, v in item.items()}


def deserialize_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON image (``{"a": {"S": "x"}}``) as a plain item."""
    try:
        return {k: _deserializer().deserialize(v) for k, v in image.items()}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidRecord(f"undecodable image: {exc}") from exc


def _key_part(value: Any) -> str:
    text = value if isinstance(value, str) else to_json_value(value)
    return quote(str(text), safe=":")


def document_id(table: TableDef, item: Mapping[str, Any]) -> str:
    """The escaped full primary key: key values percent-escaped (``|`` and ``%`` included), joined by ``|``."""
    try:
        return "|".join(_key_part(item[name]) for name in table.key_names)
    except KeyError as exc:
        raise InvalidRecord(f"{table.name}: key attribute {exc.args[0]!r} missing") from None


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in set(old) | set(new) if old.get(name, _MISSING) != new.get(name, _MISSING))


_MISSING = object()


@dataclass(frozen=True)
class Skipped:
    """A record that needs no index change, and why."""

    reason: Literal["table", "event", "bookkeeping"]
    sequence_number: str
    table: str = ""


def streamed_table(logical_name: str, tables: Iterable[TableDef] = STREAMED_TABLES) -> TableDef | None:
    return next((t for t in tables if t.name == logical_name), None)


def table_from_arn(arn: str, table_prefix: str) -> str | None:
    """Logical table name from a stream or table ARN (``...:table/<prefix><name>/stream/<label>``)."""
    try:
        physical = arn.split(":", 5)[5].split("/")[1]
    except IndexError:
        return None
    if not physical.startswith(table_prefix):
        return None
    return physical[len(table_prefix) :]


def _created_at(raw: Mapping[str, Any]) -> float | None:
    value = raw.get("ApproximateCreationDateTime")
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def decode_record(
    record: Mapping[str, Any],
    table: TableDef | None,
    *,
    bookkeeping: frozenset[str] = BOOKKEEPING_ATTRIBUTES,
) -> Change | Skipped:
    """One stream record (the shape GetRecords and Lambda share) as a Change, or why it is skipped.

    ``table`` is the streamed table the record came from, or None when it is not a streamed table.
    Raises InvalidRecord for a record that cannot be decoded.
    """
    body = record.get("dynamodb")
    if not isinstance(body, Mapping):
        raise InvalidRecord("stream record without a 'dynamodb' body")
    sequence = str(body.get("SequenceNumber", ""))
    version = version_key(sequence)
    if table is None:
        return Skipped("table", sequence)
    event = record.get("eventName")
    if event not in ("INSERT", "MODIFY", "REMOVE"):
        return Skipped("event", sequence, table.name)
    keys = deserialize_image(body.get("Keys") or {})
    doc_id = document_id(table, keys)
    created = _created_at(body)
    if event == "REMOVE":
        return Change(table.name, doc_id, "delete", version, None, sequence, record, created)
    if "NewImage" not in body:
        raise InvalidRecord(f"{table.name} {doc_id}: {event} record without NewImage (stream view type?)")
    new = deserialize_image(body["NewImage"])
    if event == "MODIFY" and "OldImage" in body:
        old = deserialize_image(body["OldImage"])
        changed = changed_fields(old, new)
        if not set(changed) - bookkeeping:
            log.info(
                "skipped bookkeeping-only change",
                extra={"table": table.name, "doc_id": doc_id, "changed": changed, "sequence_number": sequence},
            )
            return Skipped("bookkeeping", sequence, table.name)
        log.info(
            "document changed",
            extra={"table": table.name, "doc_id": doc_id, "changed": changed, "sequence_number": sequence},
        )
    return Change(table.name, doc_id, "upsert", version, to_document(new), sequence, record, created)


def backfill_change(table: TableDef, item: Mapping[str, Any], position: str) -> Change:
    """An upsert of a scanned item, at the stream position taken before the scan."""
    return Change(
        table.name,
        document_id(table, item),
        "upsert",
        version_key(position, backfill=True),
        to_document(item),
        position,
    )
