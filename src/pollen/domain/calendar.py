"""EARNINGS_CALENDAR rows (CSV: symbol,name,reportDate,fiscalDateEnding,estimate,currency,timeOfTheDay) shaped
into ``earningsCalendar`` items."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from pollen.domain.fields import Date, OptDecimal, OptShortText, Symbol
from pollen.domain.records import validate
from pollen.domain.values import month_of

#: The marker the pollenation leaves on calendar entries it has acted on (bookkeeping, not calendar content).
POLLENATED_AT = "pollenatedAt"
#: Attributes that calendar syncs do not own: carried over from the stored item when a row is re-synced.
CALENDAR_BOOKKEEPING = frozenset({"lastSyncDate", POLLENATED_AT})
REQUIRED_CALENDAR_ATTRIBUTES = ("asset_symbol", "earnings_date", "fiscal_date_ending", "earnings_month", "lastSyncDate")

_CURRENCY = re.compile(r"[A-Z]{3}")


def _currency(value: str | None) -> str | None:
    if value is not None and not _CURRENCY.fullmatch(value):
        raise ValueError(f"{value!r:.20} is not a currency code")
    return value


class CalendarRow(BaseModel):
    """One CSV row as a dict; ``timeOfTheDay`` is missing from older files."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    symbol: Symbol
    name: OptShortText = None
    reportDate: Date
    fiscalDateEnding: Date
    estimate: OptDecimal = None
    currency: Annotated[OptShortText, AfterValidator(_currency)] = None
    timeOfTheDay: OptShortText = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.reportDate)

    @property
    def fiscal_key(self) -> tuple[str, str]:
        return (self.symbol, self.fiscalDateEnding)


def parse_calendar_row(raw: Any) -> CalendarRow:
    """Validate one CSV row (a dict from csv.DictReader); raises InvalidRecord."""
    row = dict(raw) if isinstance(raw, dict) else raw
    if isinstance(row, dict):
        row.pop(None, None)  # csv.DictReader puts surplus columns under None
        row = {k: v for k, v in row.items() if v is not None}
    return validate(CalendarRow, row, kind="calendar row", label_names=("symbol",))


def calendar_item(row: CalendarRow, *, last_sync: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "asset_symbol": row.symbol,
        "earnings_date": row.reportDate,
        "fiscal_date_ending": row.fiscalDateEnding,
        "earnings_month": month_of(row.reportDate),
        "lastSyncDate": last_sync,
    }
    if row.name is not None:
        item["name"] = row.name
    if row.estimate is not None:
        item["estimate"] = row.estimate
    if row.currency is not None:
        item["currency"] = row.currency
    if row.timeOfTheDay is not None:
        item["time_of_the_day"] = row.timeOfTheDay
    return item


def missing_calendar_attributes(item: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED_CALENDAR_ATTRIBUTES if not item.get(name)]
