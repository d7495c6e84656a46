"""A deterministic synthetic market: assets, volumes, fundamentals and an earnings calendar.

Everything is a pure function of ``(seed, asset_count, day)``: the same inputs give the same bytes. The asset
universe is built once per ``(seed, asset_count)`` (fast: one RNG pass); fundamentals are built lazily per symbol
from ``seed + symbol``, so a market of any size starts in a fraction of a second.

Drift: ``day`` moves the market. Assets list and delist on their own days, flags (shortable, easy_to_borrow, ...)
change in per-asset epochs, quarterly reports appear once their date has passed, some report dates are rescheduled a
few weeks ahead, and OVERVIEW's price-based fields change every day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

START_DATE = dt.date(2025, 1, 6)
#: Days over which listings and delistings are spread (after that the universe stops changing).
DRIFT_HORIZON_DAYS = 1000
LISTINGS_PER_DAY = 0.0005  # fraction of the universe
DELISTINGS_PER_DAY = 0.0004
BASE_INACTIVE = 0.07

CRYPTO_BASES = (
    ("BTC", "Bitcoin"),
    ("ETH", "Ethereum"),
    ("SOL", "Solana"),
    ("DOGE", "Dogecoin"),
    ("LTC", "Litecoin"),
    ("AVAX", "Avalanche"),
    ("LINK", "Chainlink"),
    ("UNI", "Uniswap"),
    ("AAVE", "Aave"),
    ("BCH", "Bitcoin Cash"),
    ("DOT", "Polkadot"),
    ("XTZ", "Tezos"),
    ("SHIB", "Shiba Inu"),
    ("GRT", "The Graph"),
    ("SUSHI", "Sushi"),
    ("YFI", "Yearn.Finance"),
    ("CRV", "Curve"),
    ("MKR", "Maker"),
    ("BAT", "Basic Attention Token"),
    ("XRP", "XRP"),
)
CRYPTO_QUOTES = (("USD", "US Dollar"), ("USDT", "Tether"), ("USDC", "USD Coin"))

#: Symbols always present (tests and demos can rely on them).
FIXED_EQUITIES = (
    ("AAPL", "Apple Inc. Common Stock", "NASDAQ"),
    ("MSFT", "Microsoft Corporation Common Stock", "NASDAQ"),
    ("IBM", "International Business Machines Corporation Common Stock", "NYSE"),
    ("BRK.B", "Berkshire Hathaway Inc. Class B", "NYSE"),
    ("BF.B", "Brown-Forman Corporation Class B Common Stock", "NYSE"),
    ("SPY", "SPDR S&P 500 ETF Trust", "ARCA"),
)

# Exchanges by share of the non-crypto universe; the last two are values alpaca-py's enums do not know.
EXCHANGES = (
    ("NASDAQ", 0.34),
    ("NYSE", 0.24),
    ("OTC", 0.20),
    ("ARCA", 0.11),
    ("AMEX", 0.05),
    ("BATS", 0.035),
    ("NYSEARCA", 0.01),
    ("IEXG", 0.0035),
    ("MEMX", 0.0015),
)
NAME_WORDS = [
    "Acme",
    "Apex",
    "Atlas",
    "Aurora",
    "Beacon",
    "Blue",
    "Bright",
    "Cascade",
    "Cedar",
    "Centric",
    "Clear",
    "Coastal",
    "Crest",
    "Delta",
    "Summit",
    "Eagle",
    "Echo",
    "Ember",
    "Evergreen",
    "Falcon",
    "First",
    "Frontier",
    "Global",
    "Golden",
    "Granite",
    "Harbor",
    "Helix",
    "Horizon",
    "Iron",
    "Keystone",
    "Liberty",
    "Lumen",
    "Meridian",
    "Nova",
    "Oak",
    "Omega",
    "Orion",
    "Pacific",
    "Peak",
    "Pioneer",
    "Prime",
    "Quantum",
    "Redwood",
    "River",
    "Sage",
    "Sierra",
    "Silver",
    "Solar",
    "Sterling",
    "Stone",
    "Strata",
    "Titan",
    "Trinity",
    "Unity",
    "Vector",
    "Vertex",
    "Vista",
    "Western",
    "Zenith",
]
NAME_NOUNS = [
    "Therapeutics",
    "Biosciences",
    "Energy",
    "Holdings",
    "Financial",
    "Bancorp",
    "Technologies",
    "Systems",
    "Networks",
    "Semiconductor",
    "Pharmaceuticals",
    "Industries",
    "Minerals",
    "Resources",
    "Logistics",
    "Brands",
    "Foods",
    "Realty",
    "Capital",
    "Insurance",
    "Software",
    "Robotics",
    "Materials",
    "Aerospace",
    "Communications",
    "Devices",
    "Health",
    "Retail",
    "Motors",
    "Utilities",
    "Labs",
]
SUFFIXES = ("Inc.", "Inc. Common Stock", "Corp.", "Corporation", "Ltd.", "Holdings, Inc.", "Group Inc.", "Co.", "plc")
SECTORS = {
    "TECHNOLOGY": ("SERVICES-PREPACKAGED SOFTWARE", "SEMICONDUCTORS & RELATED DEVICES", "ELECTRONIC COMPUTERS"),
    "LIFE SCIENCES": ("PHARMACEUTICAL PREPARATIONS", "BIOLOGICAL PRODUCTS", "SURGICAL & MEDICAL INSTRUMENTS"),
    "FINANCE": ("NATIONAL COMMERCIAL BANKS", "STATE COMMERCIAL BANKS", "FIRE, MARINE & CASUALTY INSURANCE"),
    "ENERGY & TRANSPORTATION": ("CRUDE PETROLEUM & NATURAL GAS", "ELECTRIC SERVICES", "TRUCKING (NO LOCAL)"),
    "MANUFACTURING": ("MOTOR VEHICLE PARTS & ACCESSORIES", "INDUSTRIAL INSTRUMENTS", "CHEMICALS & ALLIED PRODUCTS"),
    "TRADE & SERVICES": ("RETAIL-EATING PLACES", "SERVICES-BUSINESS SERVICES, NEC", "RETAIL-VARIETY STORES"),
    "REAL ESTATE & CONSTRUCTION": ("REAL ESTATE INVESTMENT TRUSTS", "OPERATIVE BUILDERS", "REAL ESTATE"),
}
EQUITY_ATTRIBUTES = (
    "has_options",
    "fractional_eh_enabled",
    "options_late_close",
    "overnight_tradable",
    "ptp_no_exception",
    "ipo",
)

INCOME_FIELDS = [
    "grossProfit",
    "totalRevenue",
    "costOfRevenue",
    "costofGoodsAndServicesSold",
    "operatingIncome",
    "sellingGeneralAndAdministrative",
    "researchAndDevelopment",
    "operatingExpenses",
    "investmentIncomeNet",
    "netInterestIncome",
    "interestIncome",
    "interestExpense",
    "nonInterestIncome",
    "otherNonOperatingIncome",
    "depreciation",
    "depreciationAndAmortization",
    "incomeBeforeTax",
    "incomeTaxExpense",
    "interestAndDebtExpense",
    "netIncomeFromContinuingOperations",
    "comprehensiveIncomeNetOfTax",
    "ebit",
    "ebitda",
    "netIncome",
]
BALANCE_FIELDS = [
    "totalAssets",
    "totalCurrentAssets",
    "cashAndCashEquivalentsAtCarryingValue",
    "cashAndShortTermInvestments",
    "inventory",
    "currentNetReceivables",
    "totalNonCurrentAssets",
    "propertyPlantEquipment",
    "accumulatedDepreciationAmortizationPPE",
    "intangibleAssets",
    "intangibleAssetsExcludingGoodwill",
    "goodwill",
    "investments",
    "longTermInvestments",
    "shortTermInvestments",
    "otherCurrentAssets",
    "otherNonCurrentAssets",
    "totalLiabilities",
    "totalCurrentLiabilities",
    "currentAccountsPayable",
    "deferredRevenue",
    "currentDebt",
    "shortTermDebt",
    "totalNonCurrentLiabilities",
    "capitalLeaseObligations",
    "longTermDebt",
    "currentLongTermDebt",
    "longTermDebtNoncurrent",
    "shortLongTermDebtTotal",
    "otherCurrentLiabilities",
    "otherNonCurrentLiabilities",
    "totalShareholderEquity",
    "treasuryStock",
    "retainedEarnings",
    "commonStock",
    "commonStockSharesOutstanding",
]
CASH_FLOW_FIELDS = [
    "operatingCashflow",
    "paymentsForOperatingActivities",
    "proceedsFromOperatingActivities",
    "changeInOperatingLiabilities",
    "changeInOperatingAssets",
    "depreciationDepletionAndAmortization",
    "capitalExpenditures",
    "changeInReceivables",
    "changeInInventory",
    "profitLoss",
    "cashflowFromInvestment",
    "cashflowFromFinancing",
    "proceedsFromRepaymentsOfShortTermDebt",
    "paymentsForRepurchaseOfCommonStock",
    "paymentsForRepurchaseOfEquity",
    "paymentsForRepurchaseOfPreferredStock",
    "dividendPayout",
    "dividendPayoutCommonStock",
    "dividendPayoutPreferredStock",
    "proceedsFromIssuanceOfCommonStock",
    "proceedsFromIssuanceOfLongTermDebtAndCapitalSecuritiesNet",
    "proceedsFromIssuanceOfPreferredStock",
    "proceedsFromRepurchaseOfEquity",
    "proceedsFromSaleOfTreasuryStock",
    "changeInCashAndCashEquivalents",
    "changeInExchangeRate",
    "netIncome",
]
STATEMENT_FIELDS = {"INCOME_STATEMENT": INCOME_FIELDS, "BALANCE_SHEET": BALANCE_FIELDS, "CASH_FLOW": CASH_FLOW_FIELDS}
#: OVERVIEW keys that Alpha Vantage "adds later": present from day OVERVIEW_NEW_KEYS_DAY on.
OVERVIEW_NEW_KEYS = ("SharesFloat", "PercentInsiders", "PercentInstitutions")
OVERVIEW_NEW_KEYS_DAY = 30
CALENDAR_HORIZON_DAYS = {"3month": 92, "6month": 183, "12month": 366}
CALENDAR_COLUMNS = ("symbol", "name", "reportDate", "fiscalDateEnding", "estimate", "currency", "timeOfTheDay")


def unit(seed: int, *parts: object) -> float:
    """A stable number in [0, 1) from the seed and the parts (blake2b: no dependence on PYTHONHASHSEED)."""
    text = ":".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2**64


def rng_for(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *parts))))


@dataclass(frozen=True, slots=True)
class AssetSeed:
    """The day-independent facts of one asset of the universe."""

    symbol: str
    name: str
    asset_class: str
    exchange: str
    listed_day: int
    delisted_day: int | None
    inactive: bool
    has_fundamentals: bool
    kind: str  # stock, etf, otc, crypto


class Universe:
    """Every asset that ever exists in this market (listed on day 0 or later), built once per seed and size."""

    def __init__(self, seed: int, asset_count: int) -> None:
        self.seed = seed
        self.asset_count = asset_count
        self.assets: list[AssetSeed] = []
        self.by_symbol: dict[str, AssetSeed] = {}
        self._build()

    def _add(self, asset: AssetSeed) -> None:
        self.assets.append(asset)
        self.by_symbol[asset.symbol] = asset

    def _build(self) -> None:
        rng = rng_for(self.seed, "universe", self.asset_count)
        for base, base_name in CRYPTO_BASES:
            for quote, quote_name in CRYPTO_QUOTES:
                symbol = f"{base}/{quote}"
                self._add(self._seed(rng, symbol, f"{base_name} / {quote_name}", "crypto", "CRYPTO", "crypto", 0))
        for symbol, name, exchange in FIXED_EQUITIES:
            kind = "etf" if exchange == "ARCA" else "stock"
            self._add(self._seed(rng, symbol, name, "us_equity", exchange, kind, 0))
        base_count = max(self.asset_count - len(self.assets), 0)
        later = int(self.asset_count * LISTINGS_PER_DAY * DRIFT_HORIZON_DAYS)
        weights = [w for _, w in EXCHANGES]
        names = [e for e, _ in EXCHANGES]
        for i in range(base_count + later):
            listed_day = 0 if i < base_count else 1 + rng.randrange(DRIFT_HORIZON_DAYS)
            exchange = rng.choices(names, weights)[0]
            symbol = self._new_symbol(rng, exchange)
            kind = "otc" if exchange == "OTC" else ("etf" if exchange in ("ARCA", "NYSEARCA") else "stock")
            asset_class = "us_equity" if rng.random() > 0.002 else "us_fund"  # a class alpaca-py does not know
            self._add(self._seed(rng, symbol, self._new_name(rng, kind), asset_class, exchange, kind, listed_day))

    def _seed(
        self, rng: random.Random, symbol: str, name: str, asset_class: str, exchange: str, kind: str, listed_day: int
    ) -> AssetSeed:
        inactive = listed_day == 0 and kind != "crypto" and rng.random() < BASE_INACTIVE
        delisted_day = None
        fixed = symbol in {s for s, _, _ in FIXED_EQUITIES}
        if kind != "crypto" and not fixed and rng.random() < DELISTINGS_PER_DAY * DRIFT_HORIZON_DAYS:
            delisted_day = listed_day + 1 + rng.randrange(DRIFT_HORIZON_DAYS)
        has_fundamentals = kind == "stock" or (kind == "etf" and rng.random() < 0.3) or symbol == "SPY"
        return AssetSeed(
            symbol, name, asset_class, exchange, listed_day, delisted_day, inactive, has_fundamentals, kind
        )

    def _new_symbol(self, rng: random.Random, exchange: str) -> str:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        while True:
            if exchange == "OTC":
                length = rng.choice((4, 5, 5))
                symbol = "".join(rng.choice(letters) for _ in range(length - 1)) + rng.choice("FYFYAB")
            elif exchange == "NASDAQ":
                symbol = "".join(rng.choice(letters) for _ in range(rng.choice((3, 4, 4, 4))))
                if rng.random() < 0.02:
                    symbol += rng.choice("WUR")  # warrants, units, rights
            else:
                symbol = "".join(rng.choice(letters) for _ in range(rng.choice((1, 2, 3, 3, 3, 4))))
                if exchange == "NYSE" and rng.random() < 0.015:
                    symbol += "." + rng.choice("AB")  # class shares, like BRK.B
            if symbol not in self.by_symbol:
                return symbol

    @staticmethod
    def _new_name(rng: random.Random, kind: str) -> str:
        first = rng.choice(NAME_WORDS)
        if kind == "etf":
            theme = rng.choice(("Dividend", "Growth", "Value", "Treasury", "Momentum", "Small Cap", "Bond"))
            return f"{first} {theme} ETF"
        name = f"{first} {rng.choice(NAME_NOUNS)} {rng.choice(SUFFIXES)}"
        if rng.random() < 0.03:
            name = name.replace(" Inc.", ", Inc.")  # commas need CSV quoting
        if rng.random() < 0.01:
            name = f'{first} "{rng.choice(NAME_NOUNS)}" Trust'  # so do quotes
        return name


@lru_cache(maxsize=4)
def universe(seed: int, asset_count: int) -> Universe:
    return Universe(seed, asset_count)


def _epoch_flag(seed: int, symbol: str, field: str, day: int, period: int, p_true: float) -> bool:
    """A flag that is redrawn once per per-asset epoch of ``period`` days (so a few assets change each day)."""
    phase = int(unit(seed, symbol, field, "phase") * period)
    epoch = (day + phase) // period
    return unit(seed, symbol, field, epoch) < p_true


def quarter_ends(year_end_month: int, until: dt.date, count: int) -> list[dt.date]:
    """The last ``count`` fiscal quarter ends on or before ``until``, newest first."""
    ends: list[dt.date] = []
    year, month = until.year, until.month
    while len(ends) < count:
        if (month - year_end_month) % 3 == 0:
            end = _month_end(year, month)
            if end <= until:
                ends.append(end)
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return ends


def _month_end(year: int, month: int) -> dt.date:
    first_next = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def _weekday(date: dt.date) -> dt.date:
    while date.weekday() >= 5:
        date += dt.timedelta(days=1)
    return date


class Company:
    """Fundamentals of one symbol, generated lazily and deterministically from ``seed + symbol``."""

    def __init__(self, seed: int, asset: AssetSeed) -> None:
        self.seed = seed
        self.asset = asset
        self.symbol = asset.symbol
        rng = rng_for(seed, "company", asset.symbol)
        self.year_end_month = rng.choice((12,) * 7 + (3, 6, 9, 1))
        self.report_lag = rng.randrange(20, 45)
        self.revenue = rng.lognormvariate(19.5, 1.6)  # quarterly revenue, dollars
        self.growth = rng.uniform(-0.02, 0.05)
        self.margin = rng.uniform(-0.15, 0.3)
        self.shares = int(rng.lognormvariate(18.0, 1.2))
        self.price = rng.lognormvariate(3.3, 1.0)
        self.eps_noise = rng.uniform(0.02, 0.2)
        self.sector = rng.choice(sorted(SECTORS))
        self.industry = rng.choice(SECTORS[self.sector])
        self.cik = str(rng.randrange(1000, 2_000_000))
        self.pays_dividend = rng.random() < 0.4
        self.none_rate = rng.choice((0.0, 0.02, 0.05, 0.12))
        self.time_of_day = rng.choice(("pre-market", "post-market", "post-market", ""))

    def report_date(self, quarter_end: dt.date, day: int) -> dt.date:
        """When the report for ``quarter_end`` is (or was) due, as the market knows it on ``day``."""
        jitter = int(unit(self.seed, self.symbol, "lag", quarter_end) * 10) - 5
        base = _weekday(quarter_end + dt.timedelta(days=self.report_lag + jitter))
        # Some reports are rescheduled once, between 1 and 60 days before their original date.
        if unit(self.seed, self.symbol, "resched", quarter_end) < 0.25:
            announced = (base - START_DATE).days - 1 - int(unit(self.seed, self.symbol, "rday", quarter_end) * 60)
            if day >= announced:
                shift = 1 + int(unit(self.seed, self.symbol, "shift", quarter_end) * 12)
                sign = 1 if unit(self.seed, self.symbol, "sign", quarter_end) < 0.7 else -1
                return _weekday(base + dt.timedelta(days=sign * shift))
        return base

    def _value(self, rng: random.Random, scale: float, signed: bool = False) -> str:
        u, sign = rng.random(), rng.random()
        if u < self.none_rate:
            return "None"
        value = scale * (0.5 + u)
        return str(int(-value if signed and sign < 0.2 else value))

    def _revenue_at(self, end: dt.date) -> float:
        quarters_back = (START_DATE - end).days / 91.3
        return float(self.revenue / (1 + self.growth) ** quarters_back)

    def statement_report(self, function: str, end: dt.date, annual: bool) -> dict[str, str]:
        revenue = self._revenue_at(end) * (4 if annual else 1)
        rng = rng_for(self.seed, self.symbol, function, end, annual)
        report = {"fiscalDateEnding": end.isoformat(), "reportedCurrency": "USD"}
        for i, field in enumerate(STATEMENT_FIELDS[function]):
            if field == "commonStockSharesOutstanding":
                report[field] = str(self.shares)
                continue
            signed = field.startswith(("change", "net", "cashflow", "profit", "other"))
            scale = revenue if field == "totalRevenue" else revenue * (0.05 + (i % 7) * 0.11)
            report[field] = self._value(rng, scale, signed=signed)
        return report

    def eps(self, end: dt.date) -> float:
        base = self._revenue_at(end) * self.margin / max(self.shares, 1)
        return float(round(base * (1 + (unit(self.seed, self.symbol, "eps", end) - 0.5) * self.eps_noise * 4), 2))


class Market:
    """One day of the market (``day`` 0 is START_DATE)."""

    def __init__(self, seed: int = 7, asset_count: int = 12_000, day: int = 0) -> None:
        self.seed = seed
        self.asset_count = asset_count
        self.day = day
        self.universe = universe(seed, asset_count)
        self._companies: dict[str, Company] = {}

    @cached_property
    def today(self) -> dt.date:
        return START_DATE + dt.timedelta(days=self.day)

    # ---- assets (Alpaca) -------------------------------------------------------------------------------------

    def listed(self) -> Iterator[AssetSeed]:
        return (a for a in self.universe.assets if a.listed_day <= self.day)

    def status(self, asset: AssetSeed) -> str:
        delisted = asset.delisted_day is not None and asset.delisted_day <= self.day
        return "inactive" if asset.inactive or delisted else "active"

    def assets(self, status: str | None = None) -> list[dict[str, Any]]:
        out = []
        for asset in self.listed():
            current = self.status(asset)
            if status is None or current == status:
                out.append(self.asset_payload(asset, current))
        return out

    def asset_payload(self, asset: AssetSeed, status: str) -> dict[str, Any]:
        seed, symbol, day = self.seed, asset.symbol, self.day
        asset_id = uuid.UUID(bytes=hashlib.blake2b(f"{seed}:id:{symbol}".encode(), digest_size=16).digest(), version=4)
        if asset.kind == "crypto":
            return {
                "id": str(asset_id),
                "class": "crypto",
                "exchange": "CRYPTO",
                "symbol": symbol,
                "name": asset.name,
                "status": status,
                "tradable": True,
                "marginable": False,
                "maintenance_margin_requirement": 100,
                "margin_requirement_long": "100",
                "margin_requirement_short": "100",
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": True,
                "attributes": [],
                "min_order_size": "0.000000002",
                "min_trade_increment": "0.000000001",
                "price_increment": "1" if symbol.startswith("BTC") else "0.001",
            }
        tradable = status == "active" and _epoch_flag(seed, symbol, "tradable", day, 400, 0.93)
        marginable = tradable and _epoch_flag(seed, symbol, "marginable", day, 300, 0.8)
        shortable = tradable and _epoch_flag(seed, symbol, "shortable", day, 250, 0.75)
        easy_to_borrow = shortable and _epoch_flag(seed, symbol, "etb", day, 120, 0.8)
        margin = 30 if marginable else 100
        if marginable and unit(seed, symbol, "margin") < 0.2:
            margin = 50
        attributes = [
            a
            for i, a in enumerate(EQUITY_ATTRIBUTES)
            if _epoch_flag(seed, symbol, a, day, 500 + 37 * i, 0.35 - 0.05 * i)
        ]
        if asset.listed_day > 0 and day - asset.listed_day < 30:
            attributes.append("ipo")
            attributes = sorted(set(attributes))
        payload: dict[str, Any] = {
            "id": str(asset_id),
            "class": asset.asset_class,
            "exchange": asset.exchange,
            "symbol": symbol,
            "name": asset.name,
            "status": status,
            "tradable": tradable,
            "marginable": marginable,
            "maintenance_margin_requirement": margin,
            # The API sends these as strings, and (rarely) as numbers.
            "margin_requirement_long": str(margin) if unit(seed, symbol, "mrl") > 0.02 else margin,
            "margin_requirement_short": str(margin) if unit(seed, symbol, "mrs") > 0.02 else margin,
            "shortable": shortable,
            "easy_to_borrow": easy_to_borrow,
            "fractionable": _epoch_flag(seed, symbol, "fractionable", day, 700, 0.6),
            "attributes": attributes,
        }
        if asset.exchange != "OTC" or unit(seed, symbol, "cusip") < 0.5:
            payload["cusip"] = _cusip(seed, symbol)
        elif unit(seed, symbol, "cusipnull") < 0.5:
            payload["cusip"] = None
        if shortable and unit(seed, symbol, "borrow") < 0.3:
            payload["borrow_status"] = "htb" if not easy_to_borrow else "etb"
        if unit(seed, symbol, "nomargin") < 0.01:  # an older record without these fields
            for key in ("margin_requirement_long", "margin_requirement_short"):
                payload.pop(key, None)
        return payload

    def volume(self, symbol: str) -> int | None:
        """Daily volume of a listed, active equity on this day; None when there was no trading."""
        asset = self.universe.by_symbol.get(symbol)
        if asset is None or asset.kind == "crypto" or asset.listed_day > self.day:
            return None
        if self.status(asset) != "active" or unit(self.seed, symbol, "halted", self.day) < 0.01:
            return None
        level = 10 ** (2 + 5 * unit(self.seed, symbol, "volume-level"))
        return int(level * (0.3 + 1.4 * unit(self.seed, symbol, "volume", self.day)))

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        volume = self.volume(symbol)
        if volume is None:
            return None
        price = round(self.company(symbol).price * (0.9 + 0.2 * unit(self.seed, symbol, "px", self.day)), 2)
        prev = round(self.company(symbol).price * (0.9 + 0.2 * unit(self.seed, symbol, "px", self.day - 1)), 2)
        stamp = f"{self.today.isoformat()}T20:00:00Z"
        prev_stamp = f"{(self.today - dt.timedelta(days=1)).isoformat()}T05:00:00Z"

        def bar(close: float, v: int, t: str) -> dict[str, Any]:
            return {"t": t, "o": close, "h": round(close * 1.01, 2), "l": round(close * 0.99, 2), "c": close, "v": v}

        return {
            "latestTrade": {"t": stamp, "x": "V", "p": price, "s": 100, "c": ["@"], "i": 52983525029461, "z": "C"},
            "latestQuote": {"t": stamp, "ax": "V", "ap": price, "as": 1, "bx": "V", "bp": price, "bs": 2, "c": ["R"]},
            "minuteBar": bar(price, max(volume // 390, 1), stamp),
            "dailyBar": {**bar(price, volume, stamp), "n": max(volume // 150, 1), "vw": price},
            "prevDailyBar": bar(prev, int(volume * 0.9), prev_stamp),
        }

    # ---- fundamentals (Alpha Vantage) ------------------------------------------------------------------------

    def company(self, symbol: str) -> Company:
        company = self._companies.get(symbol)
        if company is None:
            company = self._companies[symbol] = Company(self.seed, self.universe.by_symbol[symbol])
        return company

    def has_fundamentals(self, symbol: str) -> bool:
        asset = self.universe.by_symbol.get(symbol)
        return asset is not None and asset.has_fundamentals and asset.listed_day <= self.day

    def is_known(self, symbol: str) -> bool:
        asset = self.universe.by_symbol.get(symbol)
        return asset is not None and asset.listed_day <= self.day

    def _reported_quarters(self, company: Company, count: int) -> list[dt.date]:
        ends = quarter_ends(company.year_end_month, self.today, count + 2)
        return [e for e in ends if company.report_date(e, self.day) <= self.today][:count]

    def statement(self, function: str, symbol: str) -> dict[str, Any]:
        company = self.company(symbol)
        quarters = self._reported_quarters(company, 80)
        annual_ends = [e for e in quarters if e.month == company.year_end_month][:20]
        return {
            "symbol": symbol,
            "annualReports": [company.statement_report(function, e, True) for e in annual_ends],
            "quarterlyReports": [company.statement_report(function, e, False) for e in quarters],
        }

    def earnings(self, symbol: str) -> dict[str, Any]:
        company = self.company(symbol)
        quarters = self._reported_quarters(company, 80)
        annual = []
        for end in quarters:
            if end.month == company.year_end_month:
                year_eps = sum(company.eps(e) for e in quarters if end - dt.timedelta(days=360) < e <= end)
                annual.append({"fiscalDateEnding": end.isoformat(), "reportedEPS": f"{year_eps:.2f}"})
        quarterly = []
        for end in quarters:
            reported = company.eps(end)
            estimated = round(reported * (1 + (unit(self.seed, symbol, "est", end) - 0.55) * 0.2), 2)
            entry: dict[str, str] = {
                "fiscalDateEnding": end.isoformat(),
                "reportedDate": company.report_date(end, self.day).isoformat(),
                "reportedEPS": f"{reported:.2f}",
                "estimatedEPS": f"{estimated:.2f}",
                "surprise": f"{reported - estimated:.2f}",
                "surprisePercentage": f"{(reported - estimated) / abs(estimated) * 100:.4f}" if estimated else "None",
            }
            if unit(self.seed, symbol, "est-none", end) < company.none_rate:
                entry.update(estimatedEPS="None", surprise="None", surprisePercentage="None")
            if end.year >= 2010 and company.time_of_day:  # older quarters have no reportTime
                entry["reportTime"] = company.time_of_day
            quarterly.append(entry)
        return {"symbol": symbol, "annualEarnings": annual[:20], "quarterlyEarnings": quarterly}

    def overview(self, symbol: str) -> dict[str, Any]:
        company = self.company(symbol)
        asset = company.asset
        seed, day = self.seed, self.day
        quarters = self._reported_quarters(company, 5)
        latest = quarters[0] if quarters else self.today
        price = company.price * (0.9 + 0.2 * unit(seed, symbol, "px", day))
        cap = int(price * company.shares)
        ttm_revenue = int(sum(company._revenue_at(e) for e in quarters[:4]))
        eps = sum(company.eps(e) for e in quarters[:4])

        def maybe(value: str, *parts: object) -> str:
            u = unit(seed, symbol, "ov-none", *parts)
            if u < company.none_rate:
                return "None"
            return "-" if u < company.none_rate * 1.3 else value

        overview: dict[str, Any] = {
            "Symbol": symbol,
            "AssetType": "ETF" if asset.kind == "etf" else "Common Stock",
            "Name": asset.name,
            "Description": f"{asset.name} operates in {company.industry.lower()}.",
            "CIK": company.cik,
            "Exchange": "NYSE ARCA" if asset.exchange == "ARCA" else asset.exchange,
            "Currency": "USD",
            "Country": "USA",
            "Sector": company.sector,
            "Industry": company.industry,
            "Address": "1 MAIN STREET, ANYTOWN, NY, US",
            "OfficialSite": f"https://www.{symbol.lower().replace('.', '')}.example.com",
            "FiscalYearEnd": dt.date(2000, company.year_end_month, 1).strftime("%B"),
            "LatestQuarter": latest.isoformat(),
            "MarketCapitalization": str(cap),
            "EBITDA": maybe(str(int(ttm_revenue * max(company.margin, 0.01) * 1.3)), "ebitda"),
            "PERatio": maybe(f"{price / eps:.2f}" if eps > 0 else "None", "pe", day),
            "PEGRatio": maybe(f"{unit(seed, symbol, 'peg', day) * 3:.3f}", "peg"),
            "BookValue": maybe(f"{price * 0.3:.2f}", "book"),
            "DividendPerShare": f"{price * 0.03:.2f}" if company.pays_dividend else "None",
            "DividendYield": f"{0.03:.4f}" if company.pays_dividend else "None",
            "EPS": f"{eps:.2f}",
            "RevenuePerShareTTM": f"{ttm_revenue / max(company.shares, 1):.2f}",
            "ProfitMargin": f"{company.margin:.3f}",
            "OperatingMarginTTM": f"{company.margin * 1.2:.3f}",
            "ReturnOnAssetsTTM": maybe(f"{company.margin * 0.4:.3f}", "roa"),
            "ReturnOnEquityTTM": maybe(f"{company.margin * 0.9:.3f}", "roe"),
            "RevenueTTM": str(ttm_revenue),
            "GrossProfitTTM": str(int(ttm_revenue * 0.4)),
            "DilutedEPSTTM": f"{eps:.2f}",
            "QuarterlyEarningsGrowthYOY": f"{company.growth * 4:.3f}",
            "QuarterlyRevenueGrowthYOY": f"{company.growth * 4:.3f}",
            "AnalystTargetPrice": maybe(f"{price * 1.1:.2f}", "target", day // 7),
            "AnalystRatingStrongBuy": str(int(unit(seed, symbol, "sb") * 10)),
            "AnalystRatingBuy": str(int(unit(seed, symbol, "b") * 15)),
            "AnalystRatingHold": str(int(unit(seed, symbol, "h") * 12)),
            "AnalystRatingSell": str(int(unit(seed, symbol, "s") * 3)),
            "AnalystRatingStrongSell": str(int(unit(seed, symbol, "ss") * 2)),
            "TrailingPE": maybe(f"{price / eps:.2f}" if eps > 0 else "-", "tpe", day),
            "ForwardPE": maybe(f"{price / max(eps * 1.1, 0.01):.2f}", "fpe", day),
            "PriceToSalesRatioTTM": f"{cap / max(ttm_revenue, 1):.3f}",
            "PriceToBookRatio": maybe(f"{1 / 0.3:.3f}", "ptb"),
            "EVToRevenue": maybe(f"{cap / max(ttm_revenue, 1) * 1.1:.3f}", "evr"),
            "EVToEBITDA": maybe(f"{unit(seed, symbol, 'eve') * 30:.2f}", "eve"),
            "Beta": f"{0.3 + unit(seed, symbol, 'beta') * 1.7:.3f}",
            "52WeekHigh": f"{company.price * 1.1:.2f}",
            "52WeekLow": f"{company.price * 0.9:.2f}",
            "50DayMovingAverage": f"{company.price * (0.95 + 0.1 * unit(seed, symbol, 'ma50', day)):.2f}",
            "200DayMovingAverage": f"{company.price * (0.97 + 0.06 * unit(seed, symbol, 'ma200', day // 5)):.2f}",
            "SharesOutstanding": str(company.shares),
            "DividendDate": (latest + dt.timedelta(days=45)).isoformat() if company.pays_dividend else "None",
            "ExDividendDate": (latest + dt.timedelta(days=30)).isoformat() if company.pays_dividend else "None",
        }
        if day >= OVERVIEW_NEW_KEYS_DAY:
            overview["SharesFloat"] = str(int(company.shares * 0.93))
            overview["PercentInsiders"] = f"{unit(seed, symbol, 'ins') * 10:.3f}"
            overview["PercentInstitutions"] = f"{40 + unit(seed, symbol, 'inst') * 50:.3f}"
        return overview

    def calendar_rows(self, horizon: str) -> Iterator[tuple[str, ...]]:
        """EARNINGS_CALENDAR rows (symbol order, then date), generated one company at a time."""
        end = self.today + dt.timedelta(days=CALENDAR_HORIZON_DAYS[horizon])
        for asset in sorted(self.listed(), key=lambda a: a.symbol):
            if not asset.has_fundamentals or self.status(asset) != "active" or asset.kind != "stock":
                continue
            company = self.company(asset.symbol)
            rows = []
            for quarter_end in quarter_ends(company.year_end_month, end, 6):
                date = company.report_date(quarter_end, self.day)
                if self.today <= date <= end:
                    estimate = company.eps(quarter_end)
                    blank = unit(self.seed, asset.symbol, "cal-est", quarter_end) < 0.15
                    rows.append(
                        (
                            asset.symbol,
                            asset.name,
                            date.isoformat(),
                            quarter_end.isoformat(),
                            "" if blank else f"{estimate:.2f}",
                            "USD",
                            company.time_of_day,
                        )
                    )
            rows.sort(key=lambda r: r[2])
            yield from rows
        self._companies.clear()  # a full calendar touches every company: do not keep them all


def _cusip(seed: int, symbol: str) -> str:
    digest = hashlib.blake2b(f"{seed}:cusip:{symbol}".encode(), digest_size=8).hexdigest().upper()
    return digest[:9]
