from __future__ import annotations

import json
from collections import Counter

from pollen.local.simulator.app import Simulation, SimulatorConfig
from pollen.local.simulator.market import START_DATE, Market


def test_default_market_is_big_mixed_and_realistic() -> None:
    market = Market(seed=7)
    assets = market.assets()
    assert len(assets) == 12_000
    exchanges = Counter(a["exchange"] for a in assets)
    for exchange in ("NYSE", "NASDAQ", "ARCA", "AMEX", "OTC", "CRYPTO"):
        assert exchanges[exchange] > 0, exchange
    symbols = {a["symbol"] for a in assets}
    assert {"BRK.B", "BTC/USD", "AAPL"} <= symbols
    assert len(symbols) == len(assets)
    statuses = Counter(a["status"] for a in assets)
    assert 0.03 < statuses["inactive"] / len(assets) < 0.15
    crypto = next(a for a in assets if a["symbol"] == "BTC/USD")
    assert crypto["class"] == "crypto" and crypto["price_increment"] and crypto["min_order_size"]
    # values alpaca-py's enums do not know, and older records without some fields
    assert any(a["exchange"] in ("IEXG", "MEMX") for a in assets)
    assert any(a["class"] == "us_fund" for a in assets)
    assert any("margin_requirement_long" not in a for a in assets)
    assert any(isinstance(a.get("margin_requirement_long"), int) for a in assets)


def test_same_seed_and_day_give_the_same_market_and_another_seed_does_not() -> None:
    a = json.dumps(Market(seed=3, asset_count=800, day=5).assets())
    b = json.dumps(Market(seed=3, asset_count=800, day=5).assets())
    c = json.dumps(Market(seed=4, asset_count=800, day=5).assets())
    assert a == b
    assert a != c


def test_days_drift_with_listings_delistings_and_changed_fields() -> None:
    day0 = {a["symbol"]: a for a in Market(seed=7, asset_count=5000, day=0).assets()}
    day30 = {a["symbol"]: a for a in Market(seed=7, asset_count=5000, day=30).assets()}
    listed = set(day30) - set(day0)
    assert listed, "new listings appear"
    assert all("ipo" in day30[s]["attributes"] for s in listed if day30[s]["class"] != "crypto")
    delisted = [s for s in day0 if day0[s]["status"] == "active" and day30[s]["status"] == "inactive"]
    assert delisted, "some active assets are delisted"
    changed = [s for s in day0 if day0[s] != day30[s] and s not in delisted]
    assert 20 < len(changed) < 2500


def test_fundamentals_have_real_shapes_and_none_holes() -> None:
    market = Market(seed=7, asset_count=2000)
    statement = market.statement("INCOME_STATEMENT", "AAPL")
    assert len(statement["annualReports"]) == 20
    assert len(statement["quarterlyReports"]) == 80
    report = statement["quarterlyReports"][0]
    assert {"fiscalDateEnding", "reportedCurrency", "costofGoodsAndServicesSold", "totalRevenue"} <= set(report)
    assert all(isinstance(v, str) for v in report.values())
    for function, low, high in (("BALANCE_SHEET", 25, 40), ("CASH_FLOW", 25, 40), ("INCOME_STATEMENT", 25, 40)):
        fields = market.statement(function, "MSFT")["annualReports"][0]
        assert low <= len(fields) <= high, function
    holes = sum(
        v == "None"
        for s in [a["symbol"] for a in market.assets()[:100] if market.has_fundamentals(a["symbol"])]
        for v in market.statement("BALANCE_SHEET", s)["quarterlyReports"][0].values()
    )
    assert holes > 0
    earnings = market.earnings("AAPL")
    assert len(earnings["annualEarnings"]) == 20 and len(earnings["quarterlyEarnings"]) == 80
    quarter = earnings["quarterlyEarnings"][0]
    assert {"fiscalDateEnding", "reportedDate", "reportedEPS", "estimatedEPS", "surprise", "surprisePercentage"} <= set(
        quarter
    )
    assert any("reportTime" not in q for q in earnings["quarterlyEarnings"])
    overview = market.overview("AAPL")
    assert {"Symbol", "AssetType", "Name", "52WeekHigh", "LatestQuarter", "MarketCapitalization", "CIK"} <= set(
        overview
    )


def test_overview_gains_keys_and_reports_appear_as_days_pass() -> None:
    early, late = Market(seed=7, asset_count=800, day=0), Market(seed=7, asset_count=800, day=120)
    assert "SharesFloat" not in early.overview("AAPL") and "SharesFloat" in late.overview("AAPL")
    before = early.statement("CASH_FLOW", "AAPL")["quarterlyReports"][0]["fiscalDateEnding"]
    after = late.statement("CASH_FLOW", "AAPL")["quarterlyReports"][0]["fiscalDateEnding"]
    assert after > before


def test_calendar_covers_twelve_months_and_reschedules_some_reports() -> None:
    market = Market(seed=7, asset_count=3000)
    rows = list(market.calendar_rows("12month"))
    dates = sorted(r[2] for r in rows)
    assert dates[0] >= START_DATE.isoformat()
    assert dates[-1] >= "2025-12-01"
    assert len(list(market.calendar_rows("3month"))) < len(rows)
    first = {(r[0], r[3]): r[2] for r in rows}
    later = {(r[0], r[3]): r[2] for r in Market(seed=7, asset_count=3000, day=20).calendar_rows("12month")}
    moved = [key for key, date in first.items() if key in later and later[key] != date]
    assert moved, "some reports are rescheduled"


def test_snapshot_bodies_are_built_once_a_day_and_are_the_snapshots_json() -> None:
    sim = Simulation(SimulatorConfig(asset_count=500))
    symbols = [*[a.symbol for a in sim.market.listed()][:150], "AAPL", "AAPL", "NOT-LISTED"]

    def expected() -> bytes:
        market = sim.market
        snapshots = {s: market.snapshot(s) for s in symbols}
        return json.dumps({s: v for s, v in snapshots.items() if v is not None}, separators=(",", ":")).encode()

    first = sim.snapshots_body(symbols)
    assert first == expected() == sim.snapshots_body(symbols)
    assert set(json.loads(first)) < set(symbols)  # some have no daily bar
    sim.configure(day=1)
    assert sim.snapshots_body(symbols) == expected() != first
