from __future__ import annotations

import csv
import io

import httpx
import pytest

from pollen.adapters.alphavantage import AlphaVantageClient
from pollen.adapters.http import RateLimiter
from pollen.errors import AuthError, ConfigError, NotFound, QuotaExhausted, ThrottledError, TransientError
from pollen.local.simulator import Simulator
from pollen.observability import MetricsRecorder
from tests.integration.upstream.conftest import fast_backoff

pytestmark = pytest.mark.integration


def raw_calendar(sim: Simulator, horizon: str = "12month") -> list[dict[str, str]]:
    env = sim.environment()
    text = httpx.get(
        f"{env['ALPHAVANTAGE_BASE_URL']}/query",
        params={"function": "EARNINGS_CALENDAR", "horizon": horizon, "apikey": env["ALPHAVANTAGE_API_KEY"]},
    ).text
    return list(csv.DictReader(io.StringIO(text)))


def test_fundamentals_come_back_raw_with_none_holes(alphavantage: AlphaVantageClient, sim: Simulator) -> None:
    overview = alphavantage.overview("AAPL")
    assert overview is not None and overview["Symbol"] == "AAPL" and "52WeekHigh" in overview
    earnings = alphavantage.earnings("AAPL")
    assert earnings is not None and len(earnings["quarterlyEarnings"]) == 80
    statement = alphavantage.statement("INCOME_STATEMENT", "AAPL")
    assert statement is not None and len(statement["annualReports"]) == 20
    assert "costofGoodsAndServicesSold" in statement["quarterlyReports"][0]
    holes = 0
    market = sim.simulation.market
    symbols = [a["symbol"] for a in market.assets("active") if market.has_fundamentals(a["symbol"])]
    for symbol in symbols[:40]:
        report = alphavantage.statement("BALANCE_SHEET", symbol)
        assert report is not None
        holes += sum(v == "None" for r in report["quarterlyReports"] for v in r.values())
    assert holes > 0, "None holes pass through untouched"


def test_no_data_is_none_and_unknown_symbols_are_permanent(alphavantage: AlphaVantageClient) -> None:
    assert alphavantage.overview("NOSUCHSYM") is None  # OVERVIEW answers {}
    assert alphavantage.statement("CASH_FLOW", "BTC/USD") is None  # known, no fundamentals: {}
    with pytest.raises(NotFound) as caught:
        alphavantage.statement("CASH_FLOW", "NOSUCHSYM")  # Error Message
    assert caught.value.keys == [{"symbol": "NOSUCHSYM"}]
    assert not caught.value.transient


def test_calendar_streams_every_row_as_sent(alphavantage: AlphaVantageClient, sim: Simulator) -> None:
    rows = list(alphavantage.earnings_calendar("12month"))
    assert rows == raw_calendar(sim)
    assert len(rows) > 1000
    assert any(r["estimate"] == "" for r in rows) and any(r["timeOfTheDay"] == "" for r in rows)
    assert any("," in r["name"] for r in rows), "quoted names survive"
    assert len(list(alphavantage.earnings_calendar("3month"))) < len(rows)


def test_older_calendar_files_without_time_of_the_day_work(alphavantage: AlphaVantageClient, sim: Simulator) -> None:
    sim.configure(legacy_calendar=True)
    rows = list(alphavantage.earnings_calendar("3month"))
    assert rows and all("timeOfTheDay" not in r for r in rows)
    assert {"symbol", "name", "reportDate", "fiscalDateEnding", "estimate", "currency"} == set(rows[0])


@pytest.mark.parametrize("endpoint", ["json", "csv"])
def test_frequency_notes_are_waited_out(alphavantage: AlphaVantageClient, sim: Simulator, endpoint: str) -> None:
    sim.configure(alphavantage_per_minute=1, quota_window_s=1.0)
    call = (
        (lambda: alphavantage.overview("IBM"))
        if endpoint == "json"
        else (lambda: list(alphavantage.earnings_calendar("3month")))
    )
    alphavantage.overview("MSFT")  # small and quick: the window's one request, so the next call meets a Note
    alphavantage.backoff = fast_backoff(max_attempts=200)  # waits up to ~10 s: the window is 1 s
    assert call()  # the call met a Note, backed off and retried
    assert sim.stats().get("av_minute", 0) >= 1


@pytest.mark.parametrize("endpoint", ["json", "csv"])
def test_persistent_notes_end_in_a_throttled_error(
    alphavantage: AlphaVantageClient, sim: Simulator, endpoint: str
) -> None:
    sim.configure(alphavantage_per_minute=1)
    alphavantage.overview("IBM")
    with pytest.raises(ThrottledError) as caught:
        if endpoint == "json":
            alphavantage.overview("IBM")
        else:
            list(alphavantage.earnings_calendar("3month"))
    assert caught.value.transient
    assert sim.stats()["av_minute"] == alphavantage.backoff.max_attempts


@pytest.mark.parametrize("endpoint", ["json", "csv"])
def test_daily_quota_stops_the_client(alphavantage: AlphaVantageClient, sim: Simulator, endpoint: str) -> None:
    sim.configure(alphavantage_per_day=1)
    alphavantage.overview("IBM")
    with pytest.raises(QuotaExhausted) as caught:
        if endpoint == "json":
            alphavantage.earnings("IBM")
        else:
            list(alphavantage.earnings_calendar("3month"))
    assert sim.config().alphavantage_api_key not in str(caught.value)  # the real message echoes the key
    requests = sim.stats()["requests"]
    with pytest.raises(QuotaExhausted):
        alphavantage.overview("MSFT")
    assert sim.stats()["requests"] == requests, "later calls fail fast without a request"


def test_client_side_limiter_covers_every_call(sim: Simulator, metrics: MetricsRecorder) -> None:
    env = sim.environment()
    client = AlphaVantageClient(
        env["ALPHAVANTAGE_API_KEY"], base_url=env["ALPHAVANTAGE_BASE_URL"], limiter=RateLimiter(100, 3), metrics=metrics
    )
    client.overview("IBM")
    client.earnings("IBM")
    list(client.earnings_calendar("3month"))
    with pytest.raises(QuotaExhausted):
        client.statement("CASH_FLOW", "IBM")
    assert sim.stats()["requests"] == 3


def test_bad_key_is_an_auth_error(sim: Simulator, metrics: MetricsRecorder) -> None:
    client = AlphaVantageClient("wrong-key", base_url=sim.environment()["ALPHAVANTAGE_BASE_URL"], metrics=metrics)
    with pytest.raises(AuthError) as caught:
        client.overview("IBM")
    assert caught.value.exit_code == 2
    with pytest.raises(AuthError):
        list(client.earnings_calendar("3month"))
    assert metrics.total("UpstreamAuthFailures") == 2


def test_missing_key_is_a_config_error(sim: Simulator) -> None:
    client = AlphaVantageClient(None, base_url=sim.environment()["ALPHAVANTAGE_BASE_URL"])
    with pytest.raises(ConfigError, match="ALPHAVANTAGE_API_KEY"):
        client.overview("IBM")


@pytest.mark.parametrize("fault", ["error_rate", "truncate_rate", "malformed_rate"])
def test_transient_faults_are_retried(alphavantage: AlphaVantageClient, sim: Simulator, fault: str) -> None:
    sim.configure(**{fault: 1.0, "fault_budget": 2})
    assert alphavantage.overview("IBM") is not None
    sim.configure(**{fault: 1.0, "fault_budget": 2})
    assert len(list(alphavantage.earnings_calendar("3month"))) > 100
    sim.configure(**{fault: 1.0, "fault_budget": None})
    with pytest.raises(TransientError):
        alphavantage.earnings("IBM")


def test_a_calendar_cut_mid_stream_resumes_without_duplicates(alphavantage: AlphaVantageClient, sim: Simulator) -> None:
    expected = raw_calendar(sim)
    sim.configure(truncate_rate=1.0, fault_budget=1)
    assert list(alphavantage.earnings_calendar("12month")) == expected
    assert sim.stats()["fault_truncate"] == 1


def test_random_faults_still_give_the_whole_calendar(alphavantage: AlphaVantageClient, sim: Simulator) -> None:
    expected = raw_calendar(sim, "6month")
    sim.configure(error_rate=0.1, truncate_rate=0.1, malformed_rate=0.1, latency_ms=2)
    alphavantage.backoff = fast_backoff(max_attempts=10)
    for _ in range(3):
        assert list(alphavantage.earnings_calendar("6month")) == expected
