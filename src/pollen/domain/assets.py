"""Alpaca assets: the raw API object validated and shaped into an ``assets`` item (CONTRACT.md).

alpaca-py's typed ``Asset`` rejects enum values it does not know; new classes and exchanges appear, so the raw
dict is validated here and unknown ``class``/``exchange`` values are kept as strings.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from pollen.domain.fields import Code, OptShortText, OptText, Symbol
from pollen.domain.records import checked, validate
from pollen.domain.values import is_missing, parse_decimal, parse_text

#: Attributes an ``assets`` item must hold (the consistency check looks for them).
REQUIRED_ASSET_ATTRIBUTES = (
    "symbol",
    "lastPollenationDate",
    "id",
    "class",
    "exchange",
    "status",
    "volume",
    "lastSyncDate",
)
#: Attributes the sync owns; anything else on an item (pollenation bookkeeping) is not the sync's business.
ASSET_BOOKKEEPING = frozenset({"lastSyncDate", "lastPollenationDate"})

_NUMBER_FIELDS = (
    "maintenance_margin_requirement",
    "margin_requirement_long",
    "margin_requirement_short",
    "min_order_size",
    "min_trade_increment",
    "price_increment",
)
_FLAG_FIELDS = ("tradable", "marginable", "shortable", "easy_to_borrow", "fractionable")


#: A UUID as Alpaca writes it (every form it takes is accepted: this is the fast path of the check).
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("id must be text")
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"{value!r:.40} is not a UUID") from exc
    return value


def _remembered(parse: Callable[[Any], Decimal | None]) -> Callable[[Any], Decimal | None]:
    """``parse`` remembering its answers for plain values: a feed repeats a few numbers on every listing (``"30"``,
    ``"100"``, ``"0.01"``), validated once per process instead of once per listing. Other values, and values
    ``parse`` refuses (an error is never remembered), go through ``parse`` every time."""
    remembered = lru_cache(maxsize=1024, typed=True)(parse)

    def parse_plain(value: Any) -> Decimal | None:
        return remembered(value) if type(value) in (str, int, float) else parse(value)

    return parse_plain


def _parse_percent(value: Any) -> Decimal | None:
    """Margin requirements come as ``"30"``, ``"30%"`` or 30."""
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    return parse_decimal(value)


_percent = _remembered(_parse_percent)
_decimal = _remembered(parse_decimal)
Percent = Annotated[Decimal | None, BeforeValidator(_percent)]
Number = Annotated[Decimal | None, BeforeValidator(_decimal)]


def _attributes(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("attributes must be a list of strings")
    for entry in value:
        parse_text(entry, max_length=100)
    return list(value)


class AlpacaAsset(BaseModel):
    """One object of Alpaca's ``/v2/assets`` as sent."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: Annotated[str, BeforeValidator(_uuid)]
    asset_class: Code = Field(alias="class")
    exchange: Code
    symbol: Symbol
    name: OptShortText = None
    status: Literal["active", "inactive"]
    tradable: StrictBool | None = None
    marginable: StrictBool | None = None
    shortable: StrictBool | None = None
    easy_to_borrow: StrictBool | None = None
    fractionable: StrictBool | None = None
    borrow_status: OptText = None
    cusip: OptShortText = None
    maintenance_margin_requirement: Percent = None
    margin_requirement_long: Percent = None
    margin_requirement_short: Percent = None
    min_order_size: Number = None
    min_trade_increment: Number = None
    price_increment: Number = None
    attributes: Annotated[list[str] | None, BeforeValidator(_attributes)] = None

    def attributes_item(self) -> dict[str, Any]:
        """The asset's own attributes under the API's names (missing values left out)."""
        item: dict[str, Any] = {
            "symbol": self.symbol,
            "id": self.id,
            "class": self.asset_class,
            "exchange": self.exchange,
            "status": self.status,
        }
        for name in ("name", "borrow_status", "cusip", *_FLAG_FIELDS, *_NUMBER_FIELDS, "attributes"):
            value = getattr(self, name)
            if value is not None:
                item[name] = value
        for name, value in (self.model_extra or {}).items():
            kept = _extra_value(self.symbol, name, value)
            if kept is not None:
                item[name] = kept
        return item


def _extra_value(symbol: str, name: str, value: Any) -> Any:
    """A field Alpaca added later: kept when it is a simple value (text, flag, number)."""
    if is_missing(value) or not name.isidentifier():
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return checked("asset", symbol, name, parse_decimal, value)
    if isinstance(value, str):
        return checked("asset", symbol, name, parse_text, value)
    return None  # nested structures are not part of the item shape


def parse_asset(raw: Any) -> AlpacaAsset:
    """Validate one raw Alpaca asset; raises InvalidRecord with the symbol and the first problem."""
    return validate(AlpacaAsset, raw, kind="asset", label_names=("symbol", "id"))


def listing_rank(asset: AlpacaAsset) -> tuple[bool, bool, str, str]:
    """Which of two listings of one symbol in a feed is kept: the greater rank. Content only, never feed order
    (Alpaca promises none): active over inactive, tradable over not, then the greater ``id``, then (the same
    asset listed twice with different details) the greater canonical form of its attributes."""
    canonical = json.dumps(asset.attributes_item(), sort_keys=True, default=str)
    return (asset.status == "active", asset.tradable is True, asset.id, canonical)


def asset_item(asset: AlpacaAsset, *, volume: int | Decimal, last_sync: str, last_pollenation: str) -> dict[str, Any]:
    """The ``assets`` item: API attributes plus ``volume``, ``lastSyncDate`` and the sort key."""
    item = asset.attributes_item()
    item["volume"] = Decimal(volume)
    item["lastSyncDate"] = last_sync
    item["lastPollenationDate"] = last_pollenation
    return item


def missing_asset_attributes(item: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED_ASSET_ATTRIBUTES if name not in item or item[name] in (None, "")]
