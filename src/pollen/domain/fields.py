"""Annotated pydantic field types built on the value rules (numbers, text, dates, symbols)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from pollen.domain.values import parse_date, parse_decimal, parse_text, require_date, validate_symbol

_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _code(value: Any) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError(f"{value!r:.40} is not a valid code (letters, digits, _ . -)")
    return value


def _text(value: Any) -> str | None:
    return parse_text(value)


def _short_text(value: Any) -> str | None:
    return parse_text(value, max_length=512)


#: A number from a source, as an exact Decimal; None when missing ("None", "-", "").
OptDecimal = Annotated[Decimal | None, BeforeValidator(parse_decimal)]
#: Text; None when missing; control characters rejected.
OptText = Annotated[str | None, BeforeValidator(_text)]
OptShortText = Annotated[str | None, BeforeValidator(_short_text)]
OptDate = Annotated[str | None, BeforeValidator(parse_date)]
Date = Annotated[str, BeforeValidator(require_date)]
Symbol = Annotated[str, BeforeValidator(validate_symbol)]
#: An enumeration value from an API we do not control (Alpaca's class, exchange): new values are accepted.
Code = Annotated[str, AfterValidator(_code)]
