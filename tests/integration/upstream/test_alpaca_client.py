from __future__ import annotations

import json

import httpx
import pytest

from pollen.adapters.alpaca import AlpacaClient
from pollen.errors import AuthError, ConfigError, ThrottledError, TransientError
from pollen.local.simulator import Simulator
from pollen.observability import MetricsRecorder
from tests.integration.upstream.conftest import fast_backoff

pytestmark = pytest.mark.integration


def raw_assets(sim: Simulator) -> list[dict[str, object]]:
    env = sim.environment()
    headers = {"APCA-API-KEY-ID": env["ALPACA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["ALPACA_API_SECRET_KEY"]}
    body = httpx.get(f"{env['ALPACA_BASE_URL']}/v2/assets", params={"status": "active"}, headers=headers).content
    result: list[dict[str, object]] = json.loads(body)
    return result


def test_active_assets_come_back_raw_with_unknown_enum_values(alpaca: AlpacaClient, sim: Simulator) -> None:
    assets = alpaca.active_assets()
    assert assets == raw_assets(sim)
    assert all(a["status"] == "active" for a in assets)
    assert any(a["exchange"] in ("IEXG", "MEMX") for a in assets), "exchanges alpaca-py does not know pass through"
    assert any(a["class"] == "us_fund" for a in assets), "classes alpaca-py does not know pass through"
    assert any("margin_requirement_long" not in a for a in assets), "records missing fields pass through"
    assert {"BRK.B", "BTC/USD"} <= {a["symbol"] for a in assets}


def test_daily_volumes_batch_many_symbols_per_request(alpaca: AlpacaClient, sim: Simulator) -> None:
    symbols = [str(a["symbol"]) for a in alpaca.active_assets()]
    volumes = alpaca.daily_volumes(symbols)
    stocks = [s for s in symbols if "/" not in s]
    assert sim.stats()["alpaca_snapshots"] == -(-len(stocks) // alpaca.snapshot_batch)
    assert "BTC/USD" not in volumes
    assert len(volumes) > 0.9 * len(stocks)
    market = sim.simulation.market
    assert all(volumes[s] == market.volume(s) for s in list(volumes)[:50])


def test_a_symbol_the_data_api_refuses_is_isolated(alpaca: AlpacaClient) -> None:
    volumes = alpaca.daily_volumes(["AAPL", "MSFT", "BAD..SYMBOL", "IBM"])
    assert set(volumes) == {"AAPL", "MSFT", "IBM"}


def test_429_is_waited_out_using_the_rate_limit_headers(alpaca: AlpacaClient, sim: Simulator) -> None:
    sim.configure(alpaca_per_minute=1, quota_window_s=0.3)
    alpaca.active_assets()
    assert alpaca.daily_volumes(["AAPL"])  # met a 429, waited for X-RateLimit-Reset, retried
    assert sim.stats()["alpaca_429"] >= 1


def test_persistent_429_ends_in_a_throttled_error(sim: Simulator, metrics: MetricsRecorder) -> None:
    env = sim.environment()
    slept: list[float] = []
    client = AlpacaClient(
        env["ALPACA_API_KEY_ID"],
        env["ALPACA_API_SECRET_KEY"],
        base_url=env["ALPACA_BASE_URL"],
        data_url=env["ALPACA_DATA_URL"],
        metrics=metrics,
        backoff=fast_backoff(max_attempts=3),
        sleep=slept.append,
    )
    sim.configure(alpaca_per_minute=1)
    client.active_assets()
    with pytest.raises(ThrottledError):
        client.active_assets()
    assert len(slept) == 2 and all(s > 1 for s in slept), "waits follow the server's reset time, not the backoff"
    assert metrics.total("UpstreamThrottled", api="alpaca") == 3


@pytest.mark.parametrize("call", ["assets", "volumes"])
def test_bad_credentials_are_an_auth_error(sim: Simulator, metrics: MetricsRecorder, call: str) -> None:
    env = sim.environment()
    client = AlpacaClient(
        "wrong", "wrong", base_url=env["ALPACA_BASE_URL"], data_url=env["ALPACA_DATA_URL"], metrics=metrics
    )
    with pytest.raises(AuthError) as caught:
        client.active_assets() if call == "assets" else client.daily_volumes(["AAPL"])
    assert caught.value.exit_code == 2
    assert metrics.total("UpstreamAuthFailures", api="alpaca") == 1
    assert sim.stats()["alpaca_unauthorized"] == 1, "no retry on bad credentials"


def test_missing_credentials_are_a_config_error(sim: Simulator) -> None:
    client = AlpacaClient(None, None, base_url=sim.environment()["ALPACA_BASE_URL"])
    with pytest.raises(ConfigError, match="ALPACA_API_KEY_ID"):
        client.active_assets()


@pytest.mark.parametrize("fault", ["error_rate", "truncate_rate", "malformed_rate"])
def test_transient_faults_are_retried(alpaca: AlpacaClient, sim: Simulator, fault: str) -> None:
    expected = raw_assets(sim)
    sim.configure(**{fault: 1.0, "fault_budget": 2})
    assert alpaca.active_assets() == expected
    sim.configure(**{fault: 1.0, "fault_budget": 2})
    assert alpaca.daily_volumes(["AAPL", "IBM"])
    sim.configure(**{fault: 1.0, "fault_budget": None})
    with pytest.raises(TransientError):
        alpaca.active_assets()
