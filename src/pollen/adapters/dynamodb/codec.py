"""Plain Python/JSON values <-> DynamoDB attribute values, item size by DynamoDB's rules, key checks, content hash.

Numbers: ``int``, ``Decimal`` and ``float`` become exact decimals; a float is taken by its shortest repr (``0.1`` is
``Decimal("0.1")``, not the binary expansion). DynamoDB's limits are enforced here: at most 38 significant digits,
magnitude between 1E-130 and 9.99...E+125, no NaN or Infinity. Empty sets are dropped from maps (DynamoDB has no empty set). Binary values are ``bytes`` on the way in and out; on the wire
they are base64 (the boto3 client or :mod:`pollen.adapters.dynamodb.wire` encodes them).

Sizes follow DynamoDB's documented rules (Developer Guide, "Item sizes and formats"): attribute name bytes plus
UTF-8 bytes for strings, raw bytes for binary, 1 byte per two significant digits plus 1 for numbers, 1 byte for null
and booleans, 3 bytes for a list or map plus 1 byte per element, and the sum of the elements for sets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Context, Decimal
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

from pollen.errors import InvalidRecord

MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_DIGITS = 38
MIN_EXPONENT = -130  # smallest positive: 1E-130
MAX_EXPONENT = 125  # largest: 9.9999999999999999999999999999999999999E+125

AttributeValue = dict[str, Any]
WireItem = dict[str, AttributeValue]

_DROP = object()
#: Wide enough that normalizing never rounds a number DynamoDB could hold (the default context keeps 28 digits).
_EXACT = Context(prec=200)
#: Integers below this magnitude have at most 38 digits: always storable, written as ``str`` writes them.
_INT_LIMIT = 10**38


class CodecError(InvalidRecord):
    """A value DynamoDB cannot store (or that pollen refuses to store silently wrong)."""


def number_text(value: Any) -> str:
    """The canonical DynamoDB text of a number: normalized, plain notation where it is reasonably short."""
    return _number(value)[0]


def _number(value: Any) -> tuple[str, int]:
    """Canonical text and DynamoDB size (1 byte per two significant digits, plus 1) of a number, validated."""
    kind = type(value)
    if kind is int:
        if -_INT_LIMIT < value < _INT_LIMIT:
            text = str(value)
            digits = len(text.lstrip("-").rstrip("0")) or 1
            return text, (digits + 1) // 2 + 1
    elif kind is Decimal:
        if value.is_finite():
            return _decimal_number(value)
    elif kind is float and math.isfinite(value):
        plain = _plain_number(Decimal(repr(value)))
        if plain is not None:
            return plain
    return _number_general(value)


@lru_cache(maxsize=4096)
def _decimal_number(number: Decimal) -> tuple[str, int]:
    """:func:`_number` of a finite Decimal, remembered: the text and size depend on the value only (equal Decimals
    such as ``30`` and ``30.0`` have one canonical text), and items repeat a few values on every item (margin
    requirements of 30, increments of 0.01), worked out once instead of once per item."""
    return _plain_number(number) or _number_general(number)


def _plain_number(number: Decimal) -> tuple[str, int] | None:
    """The fast path of :func:`_number` for the common case: a finite, non-zero Decimal that ``str`` already writes
    in short plain notation (exponent <= 0, magnitude >= 1E-6, at most 40 characters), with at most 38 significant
    digits. Gives exactly what :func:`_number_general` gives, or None when the number is not such a case."""
    if not number.is_finite() or not number:
        return None
    text = str(number)
    if len(text) > 40 or "E" in text:
        return None
    if "." in text:
        text = text.rstrip("0")
        if text[-1] == ".":
            text = text[:-1]
    digits = len(text.replace(".", "").lstrip("-").strip("0"))
    if digits > MAX_DIGITS:
        return None
    return text, (digits + 1) // 2 + 1


def _number_general(value: Any) -> tuple[str, int]:
    """:func:`_number` for any number: normalizes, checks DynamoDB's digits and range, and picks the notation."""
    if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:
        text = str(value)
        digits = len(text.lstrip("-").rstrip("0")) or 1
        return text, (digits + 1) // 2 + 1
    number = value if type(value) is Decimal else _raw_decimal(value)
    if not number.is_finite():
        raise CodecError(f"{value} is not a finite number")
    if not number:
        return "0", 2
    normal = number.normalize(_EXACT)
    digits = len(normal.as_tuple().digits)
    adjusted = normal.adjusted()
    if digits > MAX_DIGITS:
        raise CodecError(f"{number} has {digits} significant digits (DynamoDB keeps at most {MAX_DIGITS})")
    if not MIN_EXPONENT <= adjusted <= MAX_EXPONENT:
        raise CodecError(f"{number} is outside DynamoDB's number range (1E-130 to 9.99E+125)")
    text = format(normal, "f") if -40 < adjusted < 40 else str(normal)
    return text, (digits + 1) // 2 + 1


def _raw_decimal(value: Any) -> Decimal:
    """Decimal of an int, float or Decimal subclass, unchecked (``_number`` checks it)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise CodecError(f"{type(value).__name__} is not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    return Decimal(value)


#: DynamoDB's limit on nested maps and lists.
MAX_NESTING = 32


def encode_value(value: Any, depth: int = 1) -> Any:
    """One plain value as a DynamoDB AttributeValue (``_DROP`` for an empty set, which DynamoDB cannot hold).
    ``depth`` is the nesting level of a map or list value (an attribute's own value is level 1)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal | float):
        return {"N": _number(value)[0]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, Mapping | list | tuple):
        if depth > MAX_NESTING:
            raise CodecError(f"maps and lists nested deeper than DynamoDB's {MAX_NESTING} levels")
        return _encode_map(value, depth) if isinstance(value, Mapping) else _encode_list(value, depth)
    if isinstance(value, set | frozenset):
        return _encode_set(value)
    raise CodecError(f"values of type {type(value).__name__} cannot be stored")


def _encode_map(value: Mapping[Any, Any], depth: int) -> Any:
    encoded: dict[str, Any] = {}
    for key, inner in value.items():
        if not isinstance(key, str):
            raise CodecError(f"map key {key!r} is not a string")
        av = encode_value(inner, depth + 1)
        if av is not _DROP:
            encoded[key] = av
    return {"M": encoded}


def _encode_list(value: list[Any] | tuple[Any, ...], depth: int) -> Any:
    elements = []
    for inner in value:
        av = encode_value(inner, depth + 1)
        if av is _DROP:
            raise CodecError("an empty set inside a list cannot be stored")
        elements.append(av)
    return {"L": elements}


def _encode_set(value: set[Any] | frozenset[Any]) -> Any:
    if not value:
        return _DROP
    if all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}
    if all(isinstance(v, int | Decimal | float) and not isinstance(v, bool) for v in value):
        texts = {number_text(v) for v in value}
        return {"NS": sorted(texts, key=Decimal)}
    if all(isinstance(v, bytes | bytearray) for v in value):
        return {"BS": sorted(bytes(v) for v in value)}
    raise CodecError("a set must hold only strings, only numbers or only bytes")


def encode_item(item: Mapping[str, Any]) -> WireItem:
    """A plain item as DynamoDB attribute values (empty sets dropped)."""
    if not isinstance(item, Mapping):
        raise CodecError(f"an item must be a JSON object, not {type(item).__name__}")
    encoded: WireItem = {}
    for name, value in item.items():
        if not isinstance(name, str) or not name:
            raise CodecError(f"attribute name {name!r} must be a non-empty string")
        av = encode_value(value)
        if av is not _DROP:
            encoded[name] = av
    return encoded


def encode_item_sized(item: Mapping[str, Any]) -> tuple[WireItem, int]:
    """:func:`encode_item` and :func:`item_size` in one pass (the write path's hot spot)."""
    if not isinstance(item, Mapping):
        raise CodecError(f"an item must be a JSON object, not {type(item).__name__}")
    encoded: WireItem = {}
    size = 0
    for name, value in item.items():
        if not isinstance(name, str) or not name:
            raise CodecError(f"attribute name {name!r} must be a non-empty string")
        kind = type(value)
        if kind is str:
            encoded[name] = {"S": value}
            value_bytes = len(value) if value.isascii() else len(value.encode("utf-8"))
        elif kind is Decimal or kind is int or kind is float:
            text, value_bytes = _number(value)
            encoded[name] = {"N": text}
        elif kind is bool:
            encoded[name] = {"BOOL": value}
            value_bytes = 1
        else:
            av = encode_value(value)
            if av is _DROP:
                continue
            encoded[name] = av
            value_bytes = value_size(av)
        size += value_bytes + (len(name) if name.isascii() else len(name.encode("utf-8")))
    return encoded, size


def _as_bytes(value: Any) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def decode_value(av: Mapping[str, Any]) -> Any:
    """A DynamoDB AttributeValue (boto3 or wire form) as a plain value (numbers as Decimal)."""
    (kind, value), *_ = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: decode_value(v) for k, v in value.items()}
    if kind == "L":
        return [decode_value(v) for v in value]
    decode = _SET_AND_BINARY_DECODERS.get(kind)
    if decode is None:
        raise CodecError(f"unknown attribute type {kind!r}")
    return decode(value)


#: Decoders of the rarer attribute types (the common ones are checked first, in line).
_SET_AND_BINARY_DECODERS: dict[str, Callable[[Any], Any]] = {
    "SS": set,
    "NS": lambda value: {Decimal(v) for v in value},
    "B": _as_bytes,
    "BS": lambda value: {_as_bytes(v) for v in value},
}


def decode_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name, av in item.items():
        text = av.get("S")  # most values are strings: taken in line (a Scan decodes about 100,000 of them)
        plain[name] = text if text is not None else decode_value(av)
    return plain


# --- sizes -------------------------------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    number = Decimal(text)
    digits = 1 if not number else len(number.normalize(_EXACT).as_tuple().digits)
    return (digits + 1) // 2 + 1


def value_size(av: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (without its name)."""
    (kind, value), *_ = av.items()
    if kind == "S":
        return len(value.encode("utf-8"))
    if kind == "N":
        return _number_size(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "B":
        return len(_as_bytes(value))
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in value)
    if kind == "NS":
        return sum(_number_size(v) for v in value)
    if kind == "BS":
        return sum(len(_as_bytes(v)) for v in value)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in value)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in value.items())
    raise CodecError(f"unknown attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes DynamoDB counts for an encoded item (the 400 KB limit and capacity units use this)."""
    return sum(len(name.encode("utf-8")) + value_size(av) for name, av in item.items())


def write_units(size: int) -> int:
    """Write capacity units of one put of an item this size (1 WCU per started KB)."""
    return max(1, -(-size // 1024))


# --- keys --------------------------------------------------------------------------------------------------------


def check_key(item: Mapping[str, Mapping[str, Any]], key_schema: Iterable[tuple[str, str]]) -> None:
    """Raise CodecError unless every key attribute is present, of its declared type (S/N/B), non-empty and within
    DynamoDB's length limits. ``key_schema`` is ``[(name, type), ...]``, partition first."""
    for position, (name, kind) in enumerate(key_schema):
        av = item.get(name)
        if av is None:
            raise CodecError(f"key attribute {name!r} is missing")
        (actual, _value), *_ = av.items()
        if actual != kind:
            raise CodecError(f"key attribute {name!r} must be of type {kind}, not {actual}")
        size = value_size(av)
        if kind in ("S", "B") and size == 0:
            raise CodecError(f"key attribute {name!r} is empty")
        limit = MAX_PARTITION_KEY_BYTES if position == 0 else MAX_SORT_KEY_BYTES
        if size > limit:
            raise CodecError(f"key attribute {name!r} is {size} bytes (limit {limit})")


def key_signature(item: Mapping[str, Mapping[str, Any]], key_names: Iterable[str]) -> tuple[str, ...]:
    """A hashable identity of an item's key, equal for the boto3 and the wire form of one key."""
    parts: list[str] = []
    for name in key_names:
        (kind, value), *_ = item[name].items()
        if kind == "B":
            value = base64.b64encode(_as_bytes(value)).decode("ascii")
        elif kind == "N":
            value = number_text(Decimal(value))
        parts.append(f"{kind}:{value}")
    return tuple(parts)


def encode_key(item: Mapping[str, Any], key_schema: Sequence[tuple[str, str]]) -> tuple[WireItem, tuple[str, ...]]:
    """The key attributes of a plain item, encoded and checked as :func:`check_key` checks them, with their
    :func:`key_signature`. Valid string keys of string attributes (the usual case) take a direct path; anything
    else goes through :func:`encode_item` and :func:`check_key`."""
    wire: WireItem = {}
    parts: list[str] = []
    limit = MAX_PARTITION_KEY_BYTES
    for name, kind in key_schema:
        value = item.get(name)
        if kind != "S" or type(value) is not str:
            break
        size = len(value) if value.isascii() else len(value.encode("utf-8"))
        if not 0 < size <= limit:
            break  # the general path below refuses it with check_key's message
        wire[name] = {"S": value}
        parts.append("S:" + value)
        limit = MAX_SORT_KEY_BYTES
    else:
        return wire, tuple(parts)
    names = [name for name, _ in key_schema]
    wire = encode_item({name: item[name] for name in names if name in item})
    check_key(wire, key_schema)
    return wire, key_signature(wire, names)


# --- content hash ------------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: What :func:`content_hash` serializes with: the output of ``json.dumps(..., sort_keys=True, separators=(",", ":"),
#: default=_json_default)``, with the encoder built once (``json.dumps`` with options builds one per call) and no
#: check for cycles (encoded items are trees the codec built).
_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_json_default, check_circular=False)


def content_hash(item: Mapping[str, Mapping[str, Any]], ignore: Iterable[str] = ()) -> str:
    """A stable hash of an encoded item's content, without the ``ignore`` (bookkeeping) attributes: BLAKE2b-128 of
    the item's compact JSON with sorted keys (bytes as base64)."""
    skip = ignore if isinstance(ignore, set | frozenset) else set(ignore)
    content = {k: v for k, v in item.items() if k not in skip}
    return _digest(_HASH_JSON.encode(content))


def wire_json(value: Any) -> str:
    """Compact JSON of encoded (wire-form) values, bytes as base64: text for a DynamoDB request body."""
    return _WIRE_JSON.encode(value)


_WIRE_JSON = json.JSONEncoder(separators=(",", ":"), default=_json_default, check_circular=False)
#: Characters of a content hash (BLAKE2b with a 16-byte digest, in hex).
HASH_CHARS = 32


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def add_content_hash(item: WireItem, ignore: frozenset[str], attribute: str) -> tuple[str, str]:
    """Store the :func:`content_hash` of an encoded item (without ``ignore``, which must hold ``attribute``) in
    ``item[attribute]``; returns the hash and the item's compact JSON, ready for a request body. The JSON reuses
    the hashed text, so the item is serialized once."""
    content: WireItem = {}
    bookkeeping: WireItem = {}
    for name, av in item.items():
        if name in ignore:
            bookkeeping[name] = av
        else:
            content[name] = av
    text = _HASH_JSON.encode(content)
    digest = _digest(text)
    item[attribute] = bookkeeping[attribute] = {"S": digest}
    tail = _HASH_JSON.encode(bookkeeping)
    return digest, (text[:-1] + "," + tail[1:]) if content else tail


#: JSON text of a string exactly as ``_HASH_JSON`` writes it (ASCII, escaped).
_json_string = encode_basestring_ascii
_TRUE_TEXT, _FALSE_TEXT = ':{"BOOL":true}', ':{"BOOL":false}'


def plain_content_hash(item: Mapping[str, Any], ignore: frozenset[str]) -> str | None:
    """The content hash :func:`add_content_hash` stores for ``encode_item(item)`` (without ``ignore``), computed from
    the plain item without encoding it: an upsert recognises an unchanged item at a third of the cost. Strings,
    booleans, numbers and lists of strings are written here; other values through the codec, so the text hashed is
    exactly the one :func:`add_content_hash` hashes. None when the item cannot be encoded at all (the full encoding
    then says why)."""
    parts: list[str] = []
    append = parts.append
    try:
        for name in sorted(item):
            if name in ignore:
                continue
            if type(name) is not str or not name:
                return None
            value = item[name]
            kind = type(value)
            if kind is str:
                append(f'{_json_string(name)}:{{"S":{_json_string(value)}}}')
            elif kind is bool:
                append(_json_string(name) + (_TRUE_TEXT if value else _FALSE_TEXT))
            elif kind is Decimal or kind is int:
                text = _number(value)[0]
                append(f'{_json_string(name)}:{{"N":"{text}"}}')
            elif kind is list and all(type(entry) is str for entry in value):
                texts = ",".join(['{"S":' + _json_string(entry) + "}" for entry in value])
                append(f'{_json_string(name)}:{{"L":[{texts}]}}')
            else:
                av = encode_value(value)
                if av is not _DROP:
                    append(_json_string(name) + ":" + _HASH_JSON.encode(av))
    except (CodecError, TypeError, ValueError, RecursionError):
        return None
    return _digest("{" + ",".join(parts) + "}")


# --- plain JSON (dead letters, export, load) ---------------------------------------------------------------------


def dumps_plain(value: Any) -> str:
    """Plain JSON with numbers written exactly (Decimal as its digits, never through float). Sets become sorted
    lists and bytes base64 strings (JSON has neither type)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | Decimal | float):
        return number_text(value)
    if isinstance(value, bytes | bytearray):
        return json.dumps(base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, Mapping):
        return (
            "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps_plain(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, set | frozenset):
        return "[" + ",".join(dumps_plain(v) for v in sorted(value, key=_set_order)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_plain(v) for v in value) + "]"
    raise CodecError(f"values of type {type(value).__name__} cannot be written as JSON")


def _set_order(value: Any) -> Any:
    return (0, value, "") if isinstance(value, int | Decimal | float) else (1, 0, str(value))


def _reject_constant(name: str) -> Any:
    raise CodecError(f"{name} is not a number DynamoDB can store")


def loads_plain(text: str) -> Any:
    """Parse plain JSON with every non-integer number as an exact Decimal; NaN and Infinity are rejected."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
