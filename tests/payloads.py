"""Realistic raw upstream payloads (shapes of the real APIs: Alpaca JSON, Alpha Vantage strings with "None")."""

from __future__ import annotations

import uuid
from typing import Any


def alpaca_asset(symbol: str, /, **overrides: Any) -> dict[str, Any]:
    asset: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
        "class": "us_equity",
        "exchange": "NYSE",
        "symbol": symbol,
        "name": f"{symbol} Holdings Inc. Common Stock",
        "status": "active",
        "tradable": True,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "margin_requirement_long": "30",
        "margin_requirement_short": "30",
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "attributes": ["has_options"],
        "cusip": "459200101",
    }
    asset.update(overrides)
    return asset


def crypto_asset(symbol: str = "BTC/USD") -> dict[str, Any]:
    return alpaca_asset(
        symbol,
        **{
            "class": "crypto",
            "exchange": "CRYPTO",
            "name": "Bitcoin  / US Dollar",
            "marginable": False,
            "shortable": False,
            "easy_to_borrow": False,
            "maintenance_margin_requirement": 100,
            "margin_requirement_long": "100",
            "margin_requirement_short": "100",
            "min_order_size": "0.0001",
            "min_trade_increment": "0.000000001",
            "price_increment": "1",
            "attributes": [],
            "cusip": None,
        },
    )


def calendar_row(symbol: str, report_date: str, fiscal: str = "2026-12-31", /, **overrides: str) -> dict[str, str]:
    row = {
        "symbol": symbol,
        "name": f"{symbol} Corp",
        "reportDate": report_date,
        "fiscalDateEnding": fiscal,
        "estimate": "1.23",
        "currency": "USD",
        "timeOfTheDay": "post-market",
    }
    row.update(overrides)
    return row


def overview(symbol: str, latest_quarter: str = "2026-09-30", **overrides: str) -> dict[str, str]:
    payload = {
        "Symbol": symbol,
        "AssetType": "Common Stock",
        "Name": f"{symbol} Corp",
        "Description": "Makes things.\nSells them.",
        "CIK": "51143",
        "Exchange": "NYSE",
        "Currency": "USD",
        "Country": "USA",
        "Sector": "TECHNOLOGY",
        "Industry": "COMPUTER & OFFICE EQUIPMENT",
        "FiscalYearEnd": "December",
        "LatestQuarter": latest_quarter,
        "MarketCapitalization": "217348497000",
        "EBITDA": "14619000000",
        "PERatio": "23.52",
        "PEGRatio": "4.372",
        "DividendYield": "0.0285",
        "EPS": "9.99",
        "ProfitMargin": "0.0947",
        "AnalystTargetPrice": "229.08",
        "ForwardPE": "-",
        "52WeekHigh": "239.35",
        "52WeekLow": "162.62",
        "50DayMovingAverage": "220.98",
        "SharesOutstanding": "926063000",
        "DividendDate": "2026-12-10",
        "ExDividendDate": "None",
    }
    payload.update(overrides)
    return payload


def _statement_report(ending: str, scale: int) -> dict[str, str]:
    return {
        "fiscalDateEnding": ending,
        "reportedCurrency": "USD",
        "operatingCashflow": str(13445000000 + scale),
        "paymentsForOperatingActivities": "None",
        "capitalExpenditures": "1685000000",
        "netIncome": "1.2E+3",
        "costofGoodsAndServicesSold": "-12.5",
        "totalRevenue": "61860000000",
    }


def quarters(latest: str = "2026-09-30", count: int = 8) -> list[str]:
    year, month = int(latest[:4]), int(latest[5:7])
    ends = {3: "31", 6: "30", 9: "30", 12: "31"}
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}-{ends[month]}")
        month -= 3
        if month <= 0:
            month += 12
            year -= 1
    return out


def statement(
    symbol: str, latest_quarter: str = "2026-09-30", *, annual: int = 3, quarterly: int = 8
) -> dict[str, Any]:
    year = int(latest_quarter[:4])
    return {
        "symbol": symbol,
        "annualReports": [_statement_report(f"{year - 1 - i}-12-31", i) for i in range(annual)],
        "quarterlyReports": [_statement_report(q, i) for i, q in enumerate(quarters(latest_quarter, quarterly))],
    }


def earnings(symbol: str, latest_quarter: str = "2026-09-30", *, annual: int = 3, quarterly: int = 8) -> dict[str, Any]:
    year = int(latest_quarter[:4])
    quarterly_earnings = []
    for i, q in enumerate(quarters(latest_quarter, quarterly)):
        entry = {
            "fiscalDateEnding": q,
            "reportedDate": q,
            "reportedEPS": "2.3" if i % 3 else "None",
            "estimatedEPS": "2.2",
            "surprise": "0.1",
            "surprisePercentage": "4.5455",
            "reportTime": "post-market",
        }
        if i % 4 == 3:
            del entry["reportTime"]
        quarterly_earnings.append(entry)
    return {
        "symbol": symbol,
        "annualEarnings": [
            {"fiscalDateEnding": f"{year - 1 - i}-12-31", "reportedEPS": "10.33"} for i in range(annual)
        ],
        "quarterlyEarnings": quarterly_earnings,
    }
