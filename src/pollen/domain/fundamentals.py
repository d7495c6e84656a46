"""Alpha Vantage fundamentals (OVERVIEW, EARNINGS, CASH_FLOW, BALANCE_SHEET, INCOME_STATEMENT) shaped into the
items of ``companyOverview``, ``earnings``, ``cashFlow``, ``balanceSheet`` and ``incomeStatement``.

Every number arrives as a string; ``"None"`` (OVERVIEW also ``"-"``) means missing and the attribute is left out.
Field names stay Alpha Vantage's own (including its ``costofGoodsAndServicesSold``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pollen.domain.records import checked
from pollen.domain.values import is_missing, parse_date, parse_decimal, parse_text, require_date, validate_symbol
from pollen.errors import InvalidRecord

Period = Literal["annual", "quarterly"]

OVERVIEW_TEXT_KEYS = frozenset(
    {
        "AssetType",
        "Name",
        "Description",
        "CIK",
        "Exchange",
        "Currency",
        "Country",
        "Sector",
        "Industry",
        "Address",
        "OfficialSite",
        "FiscalYearEnd",
    }
)
OVERVIEW_DATE_KEYS = frozenset({"LatestQuarter", "DividendDate", "ExDividendDate"})
OVERVIEW_NUMBER_KEYS = frozenset(
    {
        "MarketCapitalization",
        "EBITDA",
        "PERatio",
        "PEGRatio",
        "BookValue",
        "DividendPerShare",
        "DividendYield",
        "EPS",
        "RevenuePerShareTTM",
        "ProfitMargin",
        "OperatingMarginTTM",
        "ReturnOnAssetsTTM",
        "ReturnOnEquityTTM",
        "RevenueTTM",
        "GrossProfitTTM",
        "DilutedEPSTTM",
        "QuarterlyEarningsGrowthYOY",
        "QuarterlyRevenueGrowthYOY",
        "AnalystTargetPrice",
        "TrailingPE",
        "ForwardPE",
        "PriceToSalesRatioTTM",
        "PriceToBookRatio",
        "EVToRevenue",
        "EVToEBITDA",
        "Beta",
        "52WeekHigh",
        "52WeekLow",
        "50DayMovingAverage",
        "200DayMovingAverage",
        "SharesOutstanding",
        "SharesFloat",
        "PercentInsiders",
        "PercentInstitutions",
    }
)
#: Report fields that are text or dates; every other report field is a number.
REPORT_TEXT_KEYS = frozenset({"reportedCurrency", "reportTime"})
REPORT_DATE_KEYS = frozenset({"fiscalDateEnding", "reportedDate"})

STATEMENT_SECTIONS: dict[Period, str] = {"annual": "annualReports", "quarterly": "quarterlyReports"}
EARNINGS_SECTIONS: dict[Period, str] = {"annual": "annualEarnings", "quarterly": "quarterlyEarnings"}


def fiscal_period(period: Period, fiscal_date_ending: str) -> str:
    return f"{period.upper()}#{fiscal_date_ending}"


#: How each known OVERVIEW key is parsed; other keys are guessed (:func:`_guess`).
_OVERVIEW_PARSERS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(OVERVIEW_TEXT_KEYS, parse_text),
    **dict.fromkeys(OVERVIEW_DATE_KEYS, parse_date),
    **dict.fromkeys(OVERVIEW_NUMBER_KEYS, parse_decimal),
}


def overview_item(payload: Mapping[str, Any], *, symbol: str, last_sync: str) -> dict[str, Any]:
    """The ``companyOverview`` item: Alpha Vantage's keys (unknown ones kept), ``Symbol`` stored as ``symbol``."""
    if not isinstance(payload, Mapping):
        raise InvalidRecord(f"overview {symbol}: expected an object")
    reported = payload.get("Symbol")
    if reported is not None and reported != symbol:
        raise InvalidRecord(f"overview {symbol}: Symbol is {reported!r:.40}, not the requested symbol")
    item: dict[str, Any] = {"symbol": validate_symbol(symbol)}
    for key, value in payload.items():
        if key == "Symbol":
            continue
        _require_attribute_name(key, f"overview {symbol}")
        if key in ("symbol", "lastSyncDate"):
            continue  # our own attribute names win
        parsed = _overview_value(symbol, key, value)
        if parsed is not None:
            item[key] = parsed
    item["lastSyncDate"] = last_sync
    return item


def _require_attribute_name(key: Any, where: str) -> None:
    """A source key becomes an attribute name: non-empty printable text of at most 255 characters."""
    if not isinstance(key, str) or not key or len(key) > 255 or not key.isprintable():
        raise InvalidRecord(f"{where}: bad attribute name {key!r:.40}")


def _overview_value(symbol: str, key: str, value: Any) -> Any:
    parse = _OVERVIEW_PARSERS.get(key)
    if parse is None:
        return _guess(symbol, key, value)
    return checked("overview", symbol, key, parse, value)


def _guess(symbol: str, key: str, value: Any) -> Any:
    """An OVERVIEW key we do not know yet: a number when it reads as one, else text."""
    if is_missing(value):
        return None
    try:
        return parse_decimal(value)
    except ValueError:
        pass
    return checked("overview", symbol, key, parse_text, value if isinstance(value, str) else str(value))


@dataclass
class ParsedReports:
    """Items from one statement or earnings payload, and the reports that failed validation."""

    items: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    duplicates: int = 0

    def quarters(self) -> set[str]:
        return {i["fiscalDateEnding"] for i in self.items if i["period"] == "quarterly"}


def report_item(report: Any, *, kind: str, symbol: str, period: Period, last_sync: str) -> dict[str, Any]:
    """One annual or quarterly report as an item keyed by ``symbol`` and ``fiscalPeriod``."""
    if not isinstance(report, Mapping):
        raise InvalidRecord(f"{kind} {symbol}: a {period} report is not an object")
    ending = checked(kind, symbol, "fiscalDateEnding", require_date, report.get("fiscalDateEnding"))
    label = f"{symbol} {period} {ending}"
    item: dict[str, Any] = {
        "symbol": symbol,
        "fiscalPeriod": fiscal_period(period, ending),
        "period": period,
        "fiscalDateEnding": ending,
    }
    for key, value in report.items():
        if key == "fiscalDateEnding":
            continue
        _require_attribute_name(key, f"{kind} {label}")
        if key in ("symbol", "fiscalPeriod", "period", "lastSyncDate"):
            continue
        if key in REPORT_TEXT_KEYS:
            parsed = checked(kind, label, key, lambda v: parse_text(v, max_length=100), value)
        elif key in REPORT_DATE_KEYS:
            parsed = checked(kind, label, key, parse_date, value)
        else:
            parsed = checked(kind, label, key, parse_decimal, value)
        if parsed is not None:
            item[key] = parsed
    item["lastSyncDate"] = last_sync
    return item


def _reports(payload: Any, sections: Mapping[Period, str], *, kind: str, symbol: str, last_sync: str) -> ParsedReports:
    if not isinstance(payload, Mapping):
        raise InvalidRecord(f"{kind} {symbol}: expected an object")
    reported = payload.get("symbol")
    if reported is not None and reported != symbol:
        raise InvalidRecord(f"{kind} {symbol}: payload is for {reported!r:.40}")
    parsed = ParsedReports()
    seen: set[str] = set()
    for period, section in sections.items():
        reports = payload.get(section, [])
        if reports is None:
            continue
        if not isinstance(reports, list):
            raise InvalidRecord(f"{kind} {symbol}: {section} is not a list")
        for report in reports:
            try:
                item = report_item(report, kind=kind, symbol=symbol, period=period, last_sync=last_sync)
            except InvalidRecord as exc:
                parsed.invalid.append(str(exc))
                continue
            if item["fiscalPeriod"] in seen:
                parsed.duplicates += 1  # the API lists newest first: the first one wins
                continue
            seen.add(item["fiscalPeriod"])
            parsed.items.append(item)
    return parsed


def statement_items(payload: Any, *, kind: str, symbol: str, last_sync: str) -> ParsedReports:
    """CASH_FLOW, BALANCE_SHEET or INCOME_STATEMENT: ``annualReports`` and ``quarterlyReports``."""
    return _reports(payload, STATEMENT_SECTIONS, kind=kind, symbol=symbol, last_sync=last_sync)


def earnings_items(payload: Any, *, symbol: str, last_sync: str) -> ParsedReports:
    """EARNINGS: ``annualEarnings`` and ``quarterlyEarnings``."""
    return _reports(payload, EARNINGS_SECTIONS, kind="earnings", symbol=symbol, last_sync=last_sync)
