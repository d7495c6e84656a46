from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from pollen.adapters.alpaca import AlpacaClient
from pollen.adapters.alphavantage import AlphaVantageClient, classify_message
from pollen.adapters.http import (
    OnDemandHttp,
    RateLimiter,
    install_key_masking,
    mask_keys,
    retry_after_s,
    tls_context,
)
from pollen.errors import AuthError, NotFound, PermanentError, QuotaExhausted, ThrottledError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.day = dt.date(2025, 1, 6)
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_spaces_calls_per_minute_and_stops_at_the_daily_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 7, clock=lambda: clock.now, today=lambda: clock.day, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.slept == []
    limiter.acquire()  # the fourth waits for the window
    assert clock.slept == [60.0]
    for _ in range(3):
        limiter.acquire()
    with pytest.raises(QuotaExhausted):
        limiter.acquire()
    clock.day += dt.timedelta(days=1)  # a new UTC day brings a new budget
    clock.now += 60
    limiter.acquire()
    assert limiter.used_today == 1


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        (
            "Note",
            "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls "
            "per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call "
            "frequency.",
            ThrottledError,
        ),
        (
            "Information",
            "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more sparingly "
            "(1 request per second). You may subscribe to any of the premium plans at "
            "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day) and instantly "
            "unlock all premium endpoints",
            ThrottledError,
        ),
        (
            "Information",
            "We have detected your API key as SECRETKEY123 and our standard API rate limit is 25 requests per day. "
            "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove "
            "all daily rate limits.",
            QuotaExhausted,
        ),
        (
            "Information",
            "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium "
            "plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints",
            PermanentError,
        ),
        (
            "Error Message",
            "the parameter apikey is invalid or missing. Please claim your free API key on "
            "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds.",
            AuthError,
        ),
        (
            "Error Message",
            "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) "
            "for INCOME_STATEMENT.",
            NotFound,
        ),
    ],
)
def test_alpha_vantage_messages_are_classified(key: str, text: str, expected: type[Exception]) -> None:
    error = classify_message(key, text, api_key="SECRETKEY123", keys=[{"symbol": "IBM"}])
    assert type(error) is expected
    assert "SECRETKEY123" not in str(error)
    assert error.keys == [{"symbol": "IBM"}]
    assert error.transient == (expected is ThrottledError)


def test_retry_after_prefers_retry_after_then_rate_limit_reset() -> None:
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"X-RateLimit-Reset": "1010"}, now=1000.0) == 10.0
    assert retry_after_s({"X-RateLimit-Reset": "900"}, now=1000.0) == 0.0
    assert retry_after_s({}) is None


def test_keys_in_urls_are_masked_in_httpx_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert mask_keys("GET /query?function=OVERVIEW&apikey=abc123&symbol=IBM") == (
        "GET /query?function=OVERVIEW&apikey=***&symbol=IBM"
    )
    install_key_masking()
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "GET", "http://x/query?apikey=abc123", "200 OK")
    assert "abc123" not in caplog.text
    assert "apikey=***" in caplog.text


class CountingClient(httpx.Client):
    made: list[CountingClient] = []

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.options = options
        CountingClient.made.append(self)


@pytest.fixture
def counted_clients(monkeypatch: pytest.MonkeyPatch) -> list[CountingClient]:
    CountingClient.made = []
    monkeypatch.setattr(httpx, "Client", CountingClient)
    return CountingClient.made


def test_an_upstream_client_sets_up_http_only_when_first_used(counted_clients: list[CountingClient]) -> None:
    alpaca = AlpacaClient("id", "secret")
    alphavantage = AlphaVantageClient("key")
    assert counted_clients == []  # `pollen sync assets` never calls Alpha Vantage: no client, no CA bundle loaded
    first = alphavantage._http
    assert alphavantage._http is first and counted_clients == [first]
    alpaca._http.close()
    alphavantage.close()
    assert first.is_closed


def test_the_upstream_clients_share_one_tls_context(counted_clients: list[CountingClient]) -> None:
    tls_context.cache_clear()
    AlpacaClient("id", "secret")._http.close()
    AlphaVantageClient("key")._http.close()
    assert [client.options["verify"] for client in counted_clients] == [tls_context(), tls_context()]


def test_threads_that_first_use_a_client_together_get_the_same_one(counted_clients: list[CountingClient]) -> None:
    on_demand = OnDemandHttp(None, timeout_s=5.0)
    start = threading.Barrier(8)

    def first_use() -> httpx.Client:
        start.wait()
        return on_demand.get()

    with ThreadPoolExecutor(8) as pool:
        clients = {id(c) for c in pool.map(lambda _: first_use(), range(8))}
    on_demand.close()
    assert len(clients) == 1 and len(counted_clients) == 1


def test_a_client_handed_in_is_used_and_left_open() -> None:
    given = httpx.Client()
    on_demand = OnDemandHttp(given, timeout_s=5.0)
    assert on_demand.get() is given
    on_demand.close()
    assert not given.is_closed
    given.close()
