"""GetRecords answers: stream records serialized directly instead of through botocore's model.

What moto does: a GetRecords answer goes through the same ``JSONSerializer`` walk as every DynamoDB answer. The
``serializer`` part already encodes the images (attribute maps) directly, but each record is still a ``Record``
structure of seven members holding a ``StreamRecord`` structure of seven more, and for each of those fourteen members
the attribute picker builds its alias providers and tries up to six candidate keys (aliases and their ``xform_name``).
Draining 1,000 records of six attributes, that walk was about 95% of the answer's time (cProfile of moto's
application in process, the ``serializer`` part applied).

What the patch does: a subclass of the ``serializer`` part's serializer, registered for DynamoDB Streams only, that
encodes a ``Record`` (and the ``StreamRecord`` in it) in one pass when the value has the form moto's
``StreamRecord.to_json`` produces: a ``dict`` whose keys are member names only, strings as ``str``, ``SizeBytes`` as
an ``int``, ``ApproximateCreationDateTime`` as a naive ``datetime`` (moto's ``utcnow()``), the images as attribute
maps the ``serializer`` part encodes directly. Members come out in the model's order and a member whose value is
``None`` or missing is left out. Any other value (another key, another type, ``userIdentity`` present, an image the
direct encoder gives up on) makes moto's own walk serialize the whole record.

Why it is equivalent: the plan for each structure is derived at registration from moto's own model and picker: for
every member, the candidate keys moto's ``XFormedAttributePicker`` would try for a ``dict`` include no other member's
name, so with the record's keys limited to member names the picker finds exactly ``record.get(member)``; a plan is
only made for members without a serialized-name override or a timestamp format of their own. For such values moto's
walk then writes a ``str`` as itself, an ``int`` long as itself, a naive datetime as
``calendar.timegm(value.timetuple())`` plus its milliseconds as a fraction when it has microseconds (botocore reads a
naive datetime as UTC; the JSON protocol's default format is ``unixtimestamp``), a nested structure as a dict in member
order even when empty, and skips ``None``: the same as the direct pass. The direct pass runs only when the picker is
moto's ``XFormedAttributePicker`` with no response transformers (DynamoDB Streams registers none), the only other thing
the walk consults.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core import serialize as moto_serialize
from moto.core.serialize import AttributePickerContext, XFormedAttributePicker
from moto.core.utils import get_service_model

from pollen.local.motopatch import serializer
from pollen.local.motopatch.serializer import DynamoDBJSONSerializer, encode_attribute_map

SERVICE = "dynamodbstreams"
#: The structures encoded directly: a stream record and its ``dynamodb`` body.
DIRECT_STRUCTURES = ("Record", "StreamRecord")

#: Returned when a value is outside the form the plan handles (the ``serializer`` part's marker, which its attribute
#: map encoder returns too); moto's walk serializes the whole record instead.
_GIVE_UP: Any = serializer._GIVE_UP


def _string(value: object) -> Any:
    return value if type(value) is str else _GIVE_UP


def _long(value: object) -> Any:
    return value if type(value) is int else _GIVE_UP


def _timestamp(value: object) -> Any:
    """moto's ``unixtimestamp`` of a naive datetime (botocore reads it as UTC): whole seconds, or with milliseconds."""
    if type(value) is not datetime or value.tzinfo is not None:
        return _GIVE_UP
    seconds = calendar.timegm(value.timetuple())
    if value.microsecond:
        return seconds + (value.microsecond // 1000) / 1000.0
    return seconds


#: How a member of each shape type is encoded (structures get a plan of their own).
_LEAF_ENCODERS: dict[str, Callable[[object], Any]] = {"string": _string, "long": _long, "timestamp": _timestamp}


@dataclass(frozen=True)
class StructurePlan:
    """How one structure is encoded: its members in model order, each with its encoder."""

    name: str
    members: tuple[tuple[str, Callable[[object], Any]], ...]
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(name for name, _ in self.members))

    def encode(self, value: object) -> Any:
        if type(value) is not dict or not self.names.issuperset(value):
            return _GIVE_UP
        encoded: dict[str, Any] = {}
        for name, encoder in self.members:
            member = value.get(name)
            if member is None:
                continue
            result = encoder(member)
            if result is _GIVE_UP:
                return _GIVE_UP
            encoded[name] = result
        return encoded


def _refuse(value: object) -> Any:
    """A member the plan does not encode: moto's walk serializes the record when it is present."""
    return _GIVE_UP


def _candidate_keys(member: str, shape: Any, parent: Any) -> list[str]:
    """The keys moto's picker tries, in order, for ``member`` of ``parent`` on a ``dict``."""
    shape.parent = parent  # as moto's walk sets it before picking
    context = AttributePickerContext(obj={}, key=member, shape=shape)
    return list(XFormedAttributePicker().get_possible_keys(context))


def _member_encoder(shape: Any, plans: dict[str, StructurePlan]) -> Callable[[object], Any]:
    if shape.serialization.get("name") or shape.serialization.get("timestampFormat"):
        return _refuse
    if shape.type_name == "structure":
        plan = plans.get(shape.name) or _plan(shape, plans)
        return plan.encode if plan is not None else _refuse
    if shape.type_name == "map" and shape.name == "AttributeMap":
        return encode_attribute_map
    return _LEAF_ENCODERS.get(shape.type_name, _refuse)


def _plan(shape: Any, plans: dict[str, StructurePlan]) -> StructurePlan | None:
    """The plan for a structure named in DIRECT_STRUCTURES, or None when moto's picker could find one member's value
    under another member's name (then the walk is the only safe way)."""
    if shape.name not in DIRECT_STRUCTURES or shape.type_name != "structure" or shape.serialization:
        return None
    names = set(shape.members)
    for member, member_shape in shape.members.items():
        if set(_candidate_keys(member, member_shape, shape)) & names != {member}:
            return None
    members = tuple((member, _member_encoder(member_shape, plans)) for member, member_shape in shape.members.items())
    plans[shape.name] = StructurePlan(shape.name, members)
    return plans[shape.name]


@functools.cache
def structure_plans() -> dict[str, StructurePlan]:
    """The plans for DynamoDB Streams' ``Record`` and ``StreamRecord`` from moto's model of the service (built once)."""
    model = get_service_model(SERVICE)
    plans: dict[str, StructurePlan] = {}
    for name in DIRECT_STRUCTURES:
        if name not in plans:
            _plan(model.shape_for(name), plans)
    return plans


class StreamsJSONSerializer(DynamoDBJSONSerializer):
    """The ``serializer`` part's serializer with a direct path for stream records."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        picker = self._value_picker
        self._direct = type(picker) is XFormedAttributePicker and not picker.response_transformers
        self._plans = structure_plans()

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and self._direct and shape.type_name == "structure":
            plan = self._plans.get(shape.name)
            if plan is not None:
                encoded = plan.encode(value)
                if encoded is not _GIVE_UP:
                    serialized[key] = encoded
                    return
        super()._serialize(serialized, value, shape, key)


def apply() -> None:
    """Register the serializer for DynamoDB Streams (after the ``serializer`` part, whose registration it replaces
    for this service only)."""
    structure_plans()
    moto_serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault(SERVICE, {})["json"] = StreamsJSONSerializer
