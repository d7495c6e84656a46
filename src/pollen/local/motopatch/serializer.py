"""DynamoDB attribute values serialized directly instead of through botocore's model.

What moto does: since 5.2.0 every DynamoDB (and DynamoDB Streams) response goes through
``moto.core.serialize.JSONSerializer``, which walks the botocore output shape. Each attribute value is an
``AttributeValue`` structure of ten members, and for each member the serializer asks an attribute picker that tries
the member name, its ``xform_name`` and several alias providers. A 20,000-item Scan thus makes millions of Python
calls: 73% of a full Scan and 83% of a BatchGetItem.

What the patch does: a ``JSONSerializer`` subclass, registered through moto's own per-service hook
(``SERVICE_SPECIFIC_SERIALIZERS``), that encodes an attribute map or an attribute value in one direct pass when the
value has the form moto's ``dynamo_to_dict`` produces (one type tag per value, ``str`` strings and numbers, ``bytes``
or ``str`` binaries, ``bool`` for NULL and BOOL). Everything else, and every other shape, goes to moto's own code.

A list of attribute maps (a page of items) is encoded in one pass as well, and a string or number value (``{"S":
str}``, ``{"N": str}``) is its own JSON form, so the dict ``dynamo_to_dict`` made for it is kept rather than rebuilt
(the serialized body is only written out as JSON).

Why it is equivalent: for such a value moto's walk picks exactly the one member present (the other nine are absent
under both names it tries), serializes a string as itself, a blob as ``base64(value)`` (``str`` encoded as UTF-8
first), a boolean as itself, a list element by element and a map key by key in insertion order (and a list of maps
element by element under the member's name): the same as the direct pass. ``AttributeValue`` and the maps of it
carry no serialized-name override, and DynamoDB's handler registers no response transformers, which is what the
skipped picker would consult. Any value outside that form (``None``, numbers as Python ints, an unknown tag, an
empty map key, which moto's walk mistakes for the top level) makes the direct pass give up and moto's walk
serialize it.

Before that walk, moto turns the response's model objects into plain values (``utilities.dynamo_to_dict``, called by
``DynamoResult``). Its replacement converts an attribute value (``DynamoType``) holding a ``str`` under any tag but
``B``/``BS``, or a ``bool`` under ``BOOL``/``NULL``, to ``{tag: value}`` directly, which is what moto's function returns
for them (for such a value its recursion returns the value itself: not a datetime, a model, a dict nor a list); plain
dicts, item attribute dicts (``LimitedSizeDict``, which moto's function walks as a ``dict``) and lists are walked the
same way; everything else goes to moto's function, whose own recursion comes back here (it looks itself up by
module name).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from moto.core import serialize as moto_serialize
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import utilities as dynamodb_utilities
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

#: Returned by the direct encoder when a value is outside the form it handles; moto's walk serializes it instead.
_GIVE_UP: Any = object()


def _string(value: object) -> Any:
    return value if type(value) is str else _GIVE_UP


def _boolean(value: object) -> Any:
    return value if type(value) is bool else _GIVE_UP


def _blob(value: object) -> Any:
    if type(value) is bytes:
        return base64.b64encode(value).decode("utf-8")
    if type(value) is str:
        return base64.b64encode(value.encode("utf-8")).decode("utf-8")
    return _GIVE_UP


def _each(value: object, encode: Callable[[object], Any]) -> Any:
    """``encode`` applied to every element of a list, or ``_GIVE_UP`` when it is no list or one element gives up."""
    if type(value) is not list:
        return _GIVE_UP
    encoded_list = []
    for element in value:
        encoded = encode(element)
        if encoded is _GIVE_UP:
            return _GIVE_UP
        encoded_list.append(encoded)
    return encoded_list


def _list(value: object) -> Any:
    return _each(value, encode_attribute_value)


def _string_set(value: object) -> Any:
    if type(value) is not list or any(type(member) is not str for member in value):
        return _GIVE_UP
    return list(value)


def _blob_set(value: object) -> Any:
    if type(value) is not list:
        return _GIVE_UP
    blobs = [_blob(member) for member in value]
    return _GIVE_UP if any(blob is _GIVE_UP for blob in blobs) else blobs


def encode_attribute_value(value: object) -> Any:
    """The JSON form moto's serializer gives ``value`` (a ``{tag: value}`` dict), or ``_GIVE_UP``."""
    if type(value) is not dict or len(value) != 1:
        return _GIVE_UP
    ((tag, inner),) = value.items()
    encoder = _ENCODERS.get(tag)
    if encoder is None:
        return _GIVE_UP
    encoded = encoder(inner)
    return _GIVE_UP if encoded is _GIVE_UP else {tag: encoded}


def encode_attribute_map(value: object) -> Any:
    """The JSON form of a map of attribute values (an item, a key), or ``_GIVE_UP``. A string or number value
    (``{"S": str}``, ``{"N": str}``) is its own JSON form: the dict is kept as it is rather than rebuilt."""
    if type(value) is not dict:
        return _GIVE_UP
    encoded_map = {}
    for name, attribute in value.items():
        if not name:
            return _GIVE_UP  # moto's walk treats an empty name as "no key" and merges the value into the map
        if type(attribute) is dict and len(attribute) == 1:
            inner = attribute.get("S", _GIVE_UP)
            if inner is _GIVE_UP:
                inner = attribute.get("N", _GIVE_UP)
            if type(inner) is str:
                encoded_map[name] = attribute
                continue
        encoded = encode_attribute_value(attribute)
        if encoded is _GIVE_UP:
            return _GIVE_UP
        encoded_map[name] = encoded
    return encoded_map


def encode_attribute_maps(value: object) -> Any:
    """The JSON form of a list of attribute maps (a page of items), or ``_GIVE_UP``."""
    return _each(value, encode_attribute_map)


#: How the value under each type tag is encoded; an unknown tag gives up.
_ENCODERS: dict[str, Callable[[object], Any]] = {
    "S": _string,
    "N": _string,
    "M": encode_attribute_map,
    "L": _list,
    "B": _blob,
    "NULL": _boolean,
    "BOOL": _boolean,
    "SS": _string_set,
    "NS": _string_set,
    "BS": _blob_set,
}


def _is_attribute_value(shape: Any) -> bool:
    return bool(shape.name == "AttributeValue" and shape.type_name == "structure" and not shape.serialization)


def _is_attribute_map(shape: Any) -> bool:
    return bool(shape.type_name == "map" and not shape.serialization and _is_attribute_value(shape.value))


def _is_list_of_attribute_maps(shape: Any) -> bool:
    member = getattr(shape, "member", None)
    return bool(
        shape.type_name == "list"
        and not shape.serialization
        and member is not None
        and member.name
        and _is_attribute_map(member)
    )


class DynamoDBJSONSerializer(moto_serialize.JSONSerializer):
    """moto's JSON serializer with a direct path for attribute maps and attribute values."""

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key:
            if _is_attribute_map(shape):
                encoded = encode_attribute_map(value)
            elif _is_attribute_value(shape):
                encoded = encode_attribute_value(value)
            elif _is_list_of_attribute_maps(shape):
                encoded = encode_attribute_maps(value)
            else:
                encoded = _GIVE_UP
            if encoded is not _GIVE_UP:
                serialized[key] = encoded
                return
        super()._serialize(serialized, value, shape, key)


#: The services whose JSON responses carry DynamoDB attribute values.
SERVICES = ("dynamodb", "dynamodbstreams")


_original_dynamo_to_dict: Any = dynamodb_utilities.dynamo_to_dict
_BINARY_TAGS = frozenset({"B", "BS"})
_BOOLEAN_TAGS = frozenset({"NULL", "BOOL"})


def dynamo_to_dict(obj: Any) -> Any:
    """moto's ``dynamo_to_dict``, direct for strings, booleans, plain and item attribute dicts and lists."""
    kind = type(obj)
    if kind is DynamoType:
        tag, value = obj.type, obj.value
        if type(value) is str and tag not in _BINARY_TAGS:
            return {tag: value}
        if type(value) is bool and tag in _BOOLEAN_TAGS:
            return {tag: value}
    elif kind is dict or kind is LimitedSizeDict:
        converted = {}
        for key, value in obj.items():
            if type(value) is DynamoType:
                tag, raw = value.type, value.value
                if type(raw) is str and tag not in _BINARY_TAGS:
                    converted[key] = {tag: raw}
                    continue
            converted[key] = dynamo_to_dict(value)
        return converted
    elif kind is list:
        return [dynamo_to_dict(element) for element in obj]
    return _original_dynamo_to_dict(obj)


def apply() -> None:
    """Register the serializer for DynamoDB and DynamoDB Streams in moto's per-service table."""
    for service in SERVICES:
        moto_serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault(service, {})["json"] = DynamoDBJSONSerializer
    dynamodb_utilities.dynamo_to_dict = dynamo_to_dict
    dynamodb_responses.dynamo_to_dict = dynamo_to_dict  # type: ignore[attr-defined]
