"""Validation and shaping of upstream records into CONTRACT items."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollen.domain.assets import asset_item, missing_asset_attributes, parse_asset
from pollen.domain.calendar import calendar_item, parse_calendar_row
from pollen.domain.fundamentals import earnings_items, overview_item, statement_items
from pollen.domain.values import (
    canonical,
    is_valid_symbol,
    parse_date,
    parse_decimal,
    parse_text,
    same_content,
    timestamp,
    validate_symbol,
)
from pollen.errors import InvalidRecord
from tests import payloads

NOW = "2026-11-02T14:00:00Z"

# --- numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.5", Decimal("1234.5")),
        ("-0.12", Decimal("-0.12")),
        ("1.2E+3", Decimal("1200")),
        ("0", Decimal(0)),
        ("-0.0", Decimal(0)),
        (" 42 ", Decimal(42)),
        (".5", Decimal("0.5")),
        (30, Decimal(30)),
        (0.1, Decimal("0.1")),
    ],
)
def test_numbers_become_exact_decimals(text: object, expected: Decimal) -> None:
    value = parse_decimal(text)
    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize("missing", ["None", "-", "", "  ", None])
def test_missing_markers_mean_absent(missing: object) -> None:
    assert parse_decimal(missing) is None


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1,000", "12a", "1_000", "0x10", True, "1e999", "1" * 39, [1]])
def test_non_numbers_and_unstorable_numbers_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(bad)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 100))
def test_any_decimal_text_round_trips_exactly(number: Decimal) -> None:
    digits = len(number.normalize(Context(prec=200)).as_tuple().digits)
    if digits > 38:
        with pytest.raises(ValueError):
            parse_decimal(str(number))
        return
    assert parse_decimal(str(number)) == number
    assert parse_decimal(format(number, "E")) == number


@given(st.text(max_size=12))
def test_parse_decimal_either_returns_a_finite_decimal_none_or_raises_value_error(text: str) -> None:
    try:
        value = parse_decimal(text)
    except ValueError:
        return
    assert value is None or (isinstance(value, Decimal) and value.is_finite())
    if value is None:
        assert text.strip() in ("None", "-", "")


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12).filter(
        lambda f: f == 0 or abs(f) > 1e-100
    )
)
def test_floats_from_json_keep_their_shortest_decimal_form(number: float) -> None:
    value = parse_decimal(number)
    assert value is not None
    assert float(value) == number


# --- symbols and dates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["IBM", "BRK.B", "BTC/USD", "BF-B", "A", "AAPL240119C00150000", "x1"])
def test_valid_symbols(symbol: str) -> None:
    assert validate_symbol(symbol) == symbol


@pytest.mark.parametrize(
    "symbol", ["", "IBM\x00", "IB M", "IBM\n", ".IBM", "/USD", "A" * 33, "IBM;DROP", "ÄPFEL", "I$M", 42, None]
)
def test_invalid_symbols(symbol: object) -> None:
    with pytest.raises(ValueError):
        validate_symbol(symbol)


_SYMBOL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./-"


@given(st.text(alphabet=_SYMBOL_CHARS[:62], min_size=1, max_size=1), st.text(alphabet=_SYMBOL_CHARS, max_size=31))
def test_every_symbol_of_the_allowed_alphabet_is_accepted(first: str, rest: str) -> None:
    assert is_valid_symbol(first + rest)


@given(st.text(min_size=1, max_size=40))
def test_accepted_symbols_never_hold_anything_outside_the_alphabet(text: str) -> None:
    if is_valid_symbol(text):
        assert set(text) <= set(_SYMBOL_CHARS)
        assert 1 <= len(text) <= 32
        assert text[0] not in "./-"


@given(st.text(alphabet=st.characters(max_codepoint=0x9F, categories=["Cc"]), min_size=1, max_size=3))
def test_control_characters_are_never_part_of_a_symbol(control: str) -> None:
    assert not is_valid_symbol("IBM" + control)
    assert not is_valid_symbol(control + "IBM")


@pytest.mark.parametrize("bad", ["2026-02-30", "2026-13-01", "26-01-01", "2026/01/01", "2026-1-1", 20260101])
def test_invalid_dates_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_date(bad)


#: The rule for text: no C0 or C1 control character except the tab, newline and carriage return of prose.
_PROSE_WHITESPACE = "\t\n\r"


@given(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=12))
def test_text_holding_a_control_character_is_refused_and_any_other_kept(text: str) -> None:
    controls = [c for c in text if (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in _PROSE_WHITESPACE]
    if text.strip() in ("", "None", "-"):
        assert parse_text(text) is None
    elif controls:
        with pytest.raises(ValueError, match="control characters"):
            parse_text(text)
    else:
        assert parse_text(text) == text


@given(st.dates(), st.sampled_from(["", " ", "  "]), st.booleans())
def test_a_date_repeated_on_many_rows_is_checked_alike_every_time(day: object, pad: str, twice: bool) -> None:
    text = f"{pad}{day}{pad}"
    assert parse_date(text) == str(day)
    if twice:
        assert parse_date(text) == str(day)
    with pytest.raises(ValueError):
        parse_date(f"{day}x")  # an error is raised again on every call, never remembered as a value
    with pytest.raises(ValueError):
        parse_date(f"{day}x")


def test_timestamps_are_utc_seconds_with_z() -> None:
    moment = datetime(2026, 11, 2, 9, 0, 5, 999, tzinfo=timezone(timedelta(hours=-5)))
    assert timestamp(moment) == "2026-11-02T14:00:05Z"
    with pytest.raises(ValueError):
        timestamp(datetime(2026, 1, 1))


def test_content_comparison_is_by_value_but_never_confuses_booleans_and_numbers() -> None:
    assert canonical(Decimal("1.0")) == canonical(Decimal(1)) == canonical(1)
    assert canonical(True) != canonical(Decimal(1))
    a = {"x": Decimal("1200"), "y": ["a"], "lastSyncDate": "a"}
    b = {"x": Decimal("1.2E+3"), "y": ["a"], "lastSyncDate": "b"}
    assert same_content(a, b, ignore=frozenset({"lastSyncDate"}))
    assert not same_content(a, {**b, "z": 1}, ignore=frozenset({"lastSyncDate"}))


# --- assets ------------------------------------------------------------------------------------------------------


def test_asset_item_keeps_api_names_and_adds_volume_sync_date_and_sort_key() -> None:
    asset = parse_asset(payloads.alpaca_asset("IBM"))
    item = asset_item(asset, volume=1234, last_sync=NOW, last_pollenation="1970-01-01T00:00:00Z")
    assert item["symbol"] == "IBM"
    assert item["class"] == "us_equity"
    assert item["exchange"] == "NYSE"
    assert item["volume"] == Decimal(1234)
    assert item["maintenance_margin_requirement"] == Decimal(30)
    assert item["margin_requirement_long"] == Decimal(30)
    assert item["attributes"] == ["has_options"]
    assert item["lastSyncDate"] == NOW
    assert item["lastPollenationDate"] == "1970-01-01T00:00:00Z"
    assert missing_asset_attributes(item) == []
    assert not any(isinstance(v, float) for v in item.values())


def test_crypto_asset_with_null_cusip_and_string_increments() -> None:
    item = asset_item(parse_asset(payloads.crypto_asset()), volume=0, last_sync=NOW, last_pollenation=NOW)
    assert item["symbol"] == "BTC/USD"
    assert "cusip" not in item
    assert item["min_trade_increment"] == Decimal("0.000000001")
    assert item["attributes"] == []


def test_unknown_class_and_exchange_values_are_accepted_and_new_simple_fields_kept() -> None:
    raw = payloads.alpaca_asset("XYZ", **{"class": "us_future", "exchange": "NEWEX"}, new_flag=True, nested={"a": 1})
    item = parse_asset(raw).attributes_item()
    assert item["class"] == "us_future"
    assert item["exchange"] == "NEWEX"
    assert item["new_flag"] is True
    assert "nested" not in item


def test_margin_given_as_percent_text() -> None:
    item = parse_asset(payloads.alpaca_asset("IBM", margin_requirement_long="50%")).attributes_item()
    assert item["margin_requirement_long"] == Decimal(50)


@pytest.mark.parametrize("bad", ["3O", "NaN", "1e999", True, [30]])
def test_numbers_a_feed_repeats_are_validated_once_and_a_bad_one_is_refused_every_time(bad: object) -> None:
    """The asset's numbers are remembered per value (a feed repeats a handful); refusals are never remembered."""
    for symbol in ("IBM", "MSFT"):
        item = parse_asset(payloads.alpaca_asset(symbol, margin_requirement_short="30", price_increment="0.01"))
        assert item.attributes_item()["margin_requirement_short"] == Decimal(30)
        assert item.attributes_item()["price_increment"] == Decimal("0.01")
        for field in ("margin_requirement_long", "min_order_size"):
            with pytest.raises(InvalidRecord, match=field):
                parse_asset(payloads.alpaca_asset(symbol, **{field: bad}))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"symbol": "BAD SYMBOL"}, "symbol"),
        ({"id": "not-a-uuid"}, "id"),
        ({"status": "halted"}, "status"),
        ({"tradable": "yes"}, "tradable"),
        ({"class": "us equity"}, "class"),
        ({"name": "Evil\x07Corp"}, "name"),
        ({"maintenance_margin_requirement": "lots"}, "maintenance_margin_requirement"),
    ],
)
def test_bad_assets_raise_invalid_record_naming_the_field(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_asset(payloads.alpaca_asset("IBM", **overrides))
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_asset_that_is_not_an_object_is_invalid() -> None:
    with pytest.raises(InvalidRecord, match="expected an object"):
        parse_asset(["IBM"])


def test_an_invalid_asset_is_named_by_its_symbol_or_else_its_id() -> None:
    with pytest.raises(InvalidRecord, match=r"^asset IBM: exchange"):
        parse_asset(payloads.alpaca_asset("IBM", exchange=""))
    unnamed = {**payloads.alpaca_asset("IBM", exchange=""), "symbol": 7}
    with pytest.raises(InvalidRecord, match=rf"^asset {unnamed['id']}: "):
        parse_asset(unnamed)


_UUID_TEXT = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: "urn:uuid:" + str(u)),
    st.uuids().map(lambda u: str(u)[:-1] + "g"),
    st.uuids().map(lambda u: str(u) + "0"),
    st.text(alphabet="0123456789abcdefABCDEF-{}:nru", max_size=45),
    st.text(max_size=40),
)


@given(_UUID_TEXT)
def test_an_asset_id_is_accepted_exactly_when_it_is_a_uuid(text: str) -> None:
    try:
        uuid.UUID(text)
        is_uuid = True
    except ValueError:
        is_uuid = False
    raw = payloads.alpaca_asset("IBM", id=text)
    if is_uuid:
        assert parse_asset(raw).id == text
    else:
        with pytest.raises(InvalidRecord, match="is not a UUID"):
            parse_asset(raw)


# --- calendar ----------------------------------------------------------------------------------------------------


def test_calendar_item_shape() -> None:
    item = calendar_item(parse_calendar_row(payloads.calendar_row("IBM", "2026-11-20", "2026-09-30")), last_sync=NOW)
    assert item == {
        "asset_symbol": "IBM",
        "earnings_date": "2026-11-20",
        "fiscal_date_ending": "2026-09-30",
        "earnings_month": "2026-11",
        "name": "IBM Corp",
        "estimate": Decimal("1.23"),
        "currency": "USD",
        "time_of_the_day": "post-market",
        "lastSyncDate": NOW,
    }


def test_calendar_blank_estimate_and_time_are_absent_and_old_files_lack_the_column() -> None:
    row = payloads.calendar_row("IBM", "2026-11-20", estimate="", timeOfTheDay="")
    item = calendar_item(parse_calendar_row(row), last_sync=NOW)
    assert "estimate" not in item
    assert "time_of_the_day" not in item
    old = payloads.calendar_row("IBM", "2026-11-20")
    del old["timeOfTheDay"]
    assert "time_of_the_day" not in calendar_item(parse_calendar_row(old), last_sync=NOW)
    surplus = {**old, None: ["x"]}  # csv.DictReader's surplus columns
    assert calendar_item(parse_calendar_row(surplus), last_sync=NOW)["asset_symbol"] == "IBM"


@pytest.mark.parametrize(
    "overrides",
    [
        {"reportDate": "2026-02-31"},
        {"fiscalDateEnding": ""},
        {"symbol": "IB\tM"},
        {"estimate": "n/a"},
        {"currency": "dollars"},
    ],
)
def test_bad_calendar_rows_are_invalid(overrides: dict[str, str]) -> None:
    with pytest.raises(InvalidRecord):
        parse_calendar_row(payloads.calendar_row("IBM", "2026-11-20", **overrides))


# --- fundamentals ------------------------------------------------------------------------------------------------


def test_overview_item_keeps_av_names_stores_symbol_and_drops_missing() -> None:
    raw = payloads.overview("IBM", BrandNewMetric="12.5", BrandNewText="hello")
    item = overview_item(raw, symbol="IBM", last_sync=NOW)
    assert item["symbol"] == "IBM"
    assert "Symbol" not in item
    assert item["52WeekHigh"] == Decimal("239.35")
    assert item["MarketCapitalization"] == Decimal(217348497000)
    assert item["CIK"] == "51143"
    assert item["LatestQuarter"] == "2026-09-30"
    assert "ForwardPE" not in item  # "-"
    assert "ExDividendDate" not in item  # "None"
    assert item["BrandNewMetric"] == Decimal("12.5")
    assert item["BrandNewText"] == "hello"
    assert item["lastSyncDate"] == NOW


@pytest.mark.parametrize(
    "overrides",
    [{"Symbol": "MSFT"}, {"PERatio": "high"}, {"LatestQuarter": "last quarter"}, {"Name": "A\x00B"}],
)
def test_bad_overviews_are_invalid(overrides: dict[str, str]) -> None:
    with pytest.raises(InvalidRecord):
        overview_item(payloads.overview("IBM", **overrides), symbol="IBM", last_sync=NOW)


def test_statement_items_have_fiscal_period_and_period_and_exact_numbers() -> None:
    parsed = statement_items(payloads.statement("IBM"), kind="cashFlow", symbol="IBM", last_sync=NOW)
    assert parsed.invalid == []
    assert len(parsed.items) == 3 + 8
    quarterly = next(i for i in parsed.items if i["fiscalPeriod"] == "QUARTERLY#2026-09-30")
    assert quarterly["period"] == "quarterly"
    assert quarterly["fiscalDateEnding"] == "2026-09-30"
    assert quarterly["reportedCurrency"] == "USD"
    assert quarterly["netIncome"] == Decimal(1200)
    assert quarterly["costofGoodsAndServicesSold"] == Decimal("-12.5")
    assert "paymentsForOperatingActivities" not in quarterly
    annual = next(i for i in parsed.items if i["period"] == "annual")
    assert annual["fiscalPeriod"] == f"ANNUAL#{annual['fiscalDateEnding']}"
    assert "2026-09-30" in parsed.quarters()


def test_a_bad_report_is_skipped_and_named_while_the_others_are_kept() -> None:
    payload = payloads.statement("IBM")
    payload["quarterlyReports"][2]["totalRevenue"] = "lots"
    payload["quarterlyReports"][3]["fiscalDateEnding"] = "None"
    parsed = statement_items(payload, kind="balanceSheet", symbol="IBM", last_sync=NOW)
    assert len(parsed.items) == 3 + 6
    assert len(parsed.invalid) == 2
    assert "totalRevenue" in parsed.invalid[0]


def test_earnings_items_quarterly_fields() -> None:
    parsed = earnings_items(payloads.earnings("IBM"), symbol="IBM", last_sync=NOW)
    q = {i["fiscalPeriod"]: i for i in parsed.items}
    first = q["QUARTERLY#2026-09-30"]
    assert "reportedEPS" not in first  # "None"
    assert first["estimatedEPS"] == Decimal("2.2")
    assert first["surprisePercentage"] == Decimal("4.5455")
    assert first["reportTime"] == "post-market"
    assert q["ANNUAL#2025-12-31"]["reportedEPS"] == Decimal("10.33")
    assert "reportTime" not in q["QUARTERLY#2025-12-31"]  # absent in the payload


def test_a_payload_for_another_symbol_is_invalid() -> None:
    with pytest.raises(InvalidRecord):
        earnings_items(payloads.earnings("MSFT"), symbol="IBM", last_sync=NOW)


def test_duplicate_reports_keep_the_first() -> None:
    payload = payloads.statement("IBM")
    payload["quarterlyReports"].append(dict(payload["quarterlyReports"][0], totalRevenue="1"))
    parsed = statement_items(payload, kind="cashFlow", symbol="IBM", last_sync=NOW)
    assert parsed.duplicates == 1
    item = next(i for i in parsed.items if i["fiscalPeriod"] == "QUARTERLY#2026-09-30")
    assert item["totalRevenue"] == Decimal(61860000000)


def test_now_is_timezone_aware() -> None:
    assert timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
