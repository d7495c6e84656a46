"""Turning a validation failure into :class:`pollen.errors.InvalidRecord` with one clear line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pollen.errors import InvalidRecord

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def label_of(raw: Any, *names: str) -> str:
    """A short, printable name for a record in error messages (its symbol when it has a sane one)."""
    if isinstance(raw, Mapping):
        for name in names:
            value = raw.get(name)
            if isinstance(value, str) and value.isprintable() and 0 < len(value) <= 40:
                return value
    return "?"


def validate(model: type[M], raw: Any, *, kind: str, label_names: tuple[str, ...]) -> M:
    """``model.model_validate(raw)``, raising InvalidRecord("<kind> <label>: <field>: <problem>"), the label from
    the first of ``label_names`` that names the record sanely (:func:`label_of`, worked out only for an error)."""
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise InvalidRecord(f"{kind} {label_of(raw, *label_names)}: expected an object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        label = label_of(raw, *label_names)
        raise InvalidRecord(f"{kind} {label}: {describe(exc)}", code="InvalidRecord") from None


def checked(kind: str, label: str, field: str, parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise InvalidRecord(f"{kind} {label}: {field}: {exc}", code="InvalidRecord") from None
