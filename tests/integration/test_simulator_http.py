from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pollen.local.simulator import Simulator, SimulatorProcess
from pollen.local.simulator.market import Market
from tests.conftest import embedded_stack

pytestmark = pytest.mark.integration


def fetch_all(sim: Simulator | SimulatorProcess) -> dict[str, bytes]:
    env = sim.environment()
    headers = {"APCA-API-KEY-ID": env["ALPACA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["ALPACA_API_SECRET_KEY"]}
    key = env["ALPHAVANTAGE_API_KEY"]
    bodies = {}
    with httpx.Client() as client:
        for status in ("active", "inactive"):
            bodies[f"assets-{status}"] = client.get(
                f"{env['ALPACA_BASE_URL']}/v2/assets", params={"status": status}, headers=headers
            ).content
        bodies["snapshots"] = client.get(
            f"{env['ALPACA_DATA_URL']}/v2/stocks/snapshots", params={"symbols": "AAPL,IBM,BRK.B"}, headers=headers
        ).content
        for function in ("OVERVIEW", "EARNINGS", "CASH_FLOW", "BALANCE_SHEET", "INCOME_STATEMENT"):
            bodies[function] = client.get(
                f"{env['ALPHAVANTAGE_BASE_URL']}/query", params={"function": function, "symbol": "IBM", "apikey": key}
            ).content
        bodies["calendar"] = client.get(
            f"{env['ALPHAVANTAGE_BASE_URL']}/query",
            params={"function": "EARNINGS_CALENDAR", "horizon": "12month", "apikey": key},
        ).content
    return bodies


def test_same_seed_and_day_give_byte_identical_responses() -> None:
    with Simulator(asset_count=1200, seed=11, day=3) as first, Simulator(asset_count=1200, seed=11, day=3) as second:
        a, b = fetch_all(first), fetch_all(second)
        assert all(len(body) > 2 for body in a.values())
        assert {k: hashlib.sha256(v).hexdigest() for k, v in a.items()} == {
            k: hashlib.sha256(v).hexdigest() for k, v in b.items()
        }
        second.configure(day=4)
        c = fetch_all(second)
        assert c["assets-active"] != a["assets-active"] or c["calendar"] != a["calendar"]
        assert c["OVERVIEW"] != a["OVERVIEW"], "price-based OVERVIEW fields change every day"


def test_a_days_calendar_is_generated_once_and_served_alike_again(monkeypatch: pytest.MonkeyPatch) -> None:
    generated: list[str] = []
    original = Market.calendar_rows

    def counted(self: Market, horizon: str) -> Iterator[tuple[str, ...]]:
        generated.append(horizon)
        return original(self, horizon)

    monkeypatch.setattr(Market, "calendar_rows", counted)
    with Simulator(asset_count=1200, seed=11, day=3) as sim:
        first, again = fetch_all(sim)["calendar"], fetch_all(sim)["calendar"]
        assert first == again and first.count(b"\r\n") > 100
        assert generated == ["12month"]
        sim.configure(day=4)
        assert fetch_all(sim)["calendar"] != first
        assert generated == ["12month", "12month"]


def test_admin_endpoint_changes_knobs_at_runtime() -> None:
    with SimulatorProcess(asset_count=1000) as sim:
        url = sim.url
        assert httpx.get(f"{url}/_sim/config").json()["today"] == "2025-01-06"
        changed = httpx.post(f"{url}/_sim/config", json={"day": 10, "latency_ms": 1})
        assert changed.status_code == 200 and changed.json()["today"] == "2025-01-16"
        assert httpx.post(f"{url}/_sim/config", json={"no_such_knob": 1}).status_code == 400
        assert httpx.post(f"{url}/_sim/config", json={"error_rate": 2}).status_code == 400
        assert sim.configure(day=12).day == 12
        assert fetch_all(sim)["calendar"].startswith(b"symbol,name,reportDate")
        assert sim.stats()["requests"] == 9


def test_authentication_is_checked() -> None:
    with Simulator(asset_count=500) as sim:
        env = sim.environment()
        denied = httpx.get(f"{env['ALPACA_BASE_URL']}/v2/assets", headers={"APCA-API-KEY-ID": "x"})
        assert denied.status_code == 401
        av = httpx.get(f"{env['ALPHAVANTAGE_BASE_URL']}/query", params={"function": "OVERVIEW", "symbol": "IBM"})
        assert av.status_code == 200 and "Error Message" in av.json()


def test_embedded_stack_serves_the_simulator_too(tmp_path: Path) -> None:
    with embedded_stack(home=tmp_path, simulator=True, simulator_options={"asset_count": 800}) as stack:
        env = stack.environment()
        for name in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPHAVANTAGE_BASE_URL", "ALPACA_API_KEY_ID"):
            assert env[name]
        response = httpx.get(
            f"{env['ALPACA_BASE_URL']}/v2/assets",
            headers={"APCA-API-KEY-ID": env["ALPACA_API_KEY_ID"], "APCA-API-SECRET-KEY": env["ALPACA_API_SECRET_KEY"]},
        )
        assert response.status_code == 200 and len(response.json()) == 800
        assert stack.simulator is not None and stack.simulator.configure(day=2).day == 2
