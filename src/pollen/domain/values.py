"""Value rules shared by every upstream record: exact numbers, missing markers, dates, symbols, timestamps.

Alpha Vantage sends every number as a string and ``"None"`` (OVERVIEW also ``"-"``) for missing; Alpaca sends
JSON numbers or numeric strings. Items hold exact :class:`~decimal.Decimal` values, never floats, and a missing
value is an absent attribute (CONTRACT.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

#: Source values that mean "unknown": the attribute is left out of the item.
MISSING_MARKERS = frozenset({"None", "-", ""})

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
#: Letters, digits and ``.`` ``/`` ``-`` (BRK.B, BTC/USD, option symbols); starts with a letter or digit.
SYMBOL_MAX_LENGTH = 32
_SYMBOL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9./-]{{0,{SYMBOL_MAX_LENGTH - 1}}}")
#: Control characters other than the tab, newline and carriage return that prose may hold.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# DynamoDB numbers: up to 38 significant digits, magnitude between 1E-130 and 9.99E+125.
_MAX_DIGITS = 38
_MAX_EXPONENT = 125
_MIN_EXPONENT = -130
#: normalize() rounds to the context's precision; this one is wide enough never to round a storable number.
_WIDE = Context(prec=80)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in MISSING_MARKERS)


def parse_decimal(value: Any) -> Decimal | None:
    """An exact Decimal from a source number (``"1234.5"``, ``"-0.12"``, ``"1.2E+3"``, 42, 0.5); None when missing.

    Raises ValueError for anything that is not a finite number DynamoDB can store exactly.
    """
    if is_missing(value):
        return None
    number = _as_decimal(value)
    if not number.is_finite():
        raise ValueError(f"{_show(value)} is not a finite number")
    if number.is_zero():
        return Decimal(0)
    _require_storable(number, value)
    return number


def _as_decimal(value: Any) -> Decimal:
    """The exact Decimal a source value spells, whatever its Python type; ValueError for non-numbers."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest decimal that round-trips, not the binary expansion
    if isinstance(value, str):
        return _decimal_from_text(value)
    raise ValueError(f"{type(value).__name__} is not a number")


def _decimal_from_text(value: str) -> Decimal:
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{_show(value)} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid literals
        raise ValueError(f"{_show(value)} is not a number") from exc


def _require_storable(number: Decimal, value: Any) -> None:
    """DynamoDB's limits on a non-zero finite number: 38 significant digits, magnitude 1E-130 to 9.99E+125."""
    normal = number.normalize(_WIDE)
    _sign, digits, exponent = normal.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"{_show(value)} has more than {_MAX_DIGITS} significant digits")
    magnitude = exponent + len(digits) - 1
    if magnitude > _MAX_EXPONENT or magnitude < _MIN_EXPONENT:
        raise ValueError(f"{_show(value)} is out of DynamoDB's number range")


def parse_text(value: Any, *, max_length: int = 4096) -> str | None:
    """A text value: None when missing; control characters rejected (tabs and newlines allowed in prose)."""
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} is not text")
    if len(value) > max_length:
        raise ValueError(f"text longer than {max_length} characters")
    # A printable string has no control character at all: most values skip the search.
    if not value.isprintable() and _CONTROL.search(value):
        raise ValueError("text holds control characters")
    return value


def parse_date(value: Any) -> str | None:
    """A ``YYYY-MM-DD`` calendar date, returned as given; None when missing."""
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a date (YYYY-MM-DD)")
    return _date_text(value)


@lru_cache(maxsize=4096)
def _date_text(value: str) -> str:
    """A feed repeats a few dozen dates on thousands of rows: each is checked once (errors are never cached)."""
    text = value.strip()
    if not _DATE.fullmatch(text):
        raise ValueError(f"{_show(value)} is not a date (YYYY-MM-DD)")
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{_show(value)} is not a valid date") from exc
    return text


def require_date(value: Any) -> str:
    parsed = parse_date(value)
    if parsed is None:
        raise ValueError("date is missing")
    return parsed


def validate_symbol(value: Any) -> str:
    """A ticker symbol: 1-32 letters, digits, ``.``, ``/`` or ``-``, starting with a letter or digit."""
    if not isinstance(value, str):
        raise ValueError(f"symbol must be text, not {type(value).__name__}")
    if not _SYMBOL.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a valid symbol")
    return value


def is_valid_symbol(value: Any) -> bool:
    try:
        validate_symbol(value)
    except ValueError:
        return False
    return True


def timestamp(moment: datetime) -> str:
    """CONTRACT timestamp: ISO-8601 UTC to the second, ``YYYY-MM-DDTHH:MM:SSZ``."""
    if moment.tzinfo is None:
        raise ValueError("timestamps need an aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime:
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a timestamp (YYYY-MM-DDTHH:MM:SSZ)")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def month_of(day: str) -> str:
    """The ``YYYY-MM`` bucket of a ``YYYY-MM-DD`` date."""
    return day[:7]


def _show(value: Any, limit: int = 40) -> str:
    """A value for an error message: repr, shortened (records are upstream data, never secrets)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical(value: Any) -> Any:
    """A comparable form of an item value: numbers compare by value (Decimal('1.0') == 1), but never equal
    to booleans; lists, sets and maps recursively."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, Decimal)):
        return ("num", Decimal(value).normalize(_WIDE) if not Decimal(value).is_zero() else Decimal(0))
    if isinstance(value, float):
        return ("num", Decimal(repr(value)).normalize(_WIDE))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(canonical(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(canonical(v)) for v in value)))
    return (type(value).__name__, value)


def same_content(a: Mapping[str, Any], b: Mapping[str, Any], *, ignore: frozenset[str] = frozenset()) -> bool:
    """Whether two items hold the same attributes and values, bookkeeping attributes aside."""
    keys_a = {k for k in a if k not in ignore}
    keys_b = {k for k in b if k not in ignore}
    return keys_a == keys_b and all(canonical(a[k]) == canonical(b[k]) for k in keys_a)
