"""The simulator's WSGI application: Alpaca's trading and data APIs and Alpha Vantage's ``/query`` on one port.

Routes (``<root>`` is the server's URL):

- ``<root>/alpaca/v2/assets`` (ALPACA_BASE_URL is ``<root>/alpaca``), checked with the ``APCA-API-KEY-ID`` and
  ``APCA-API-SECRET-KEY`` headers, rate limited with 429 and ``X-RateLimit-*`` headers;
- ``<root>/alpaca-data/v2/stocks/snapshots`` (ALPACA_DATA_URL is ``<root>/alpaca-data``), same checks;
- ``<root>/alphavantage/query`` (ALPHAVANTAGE_BASE_URL is ``<root>/alphavantage``), checked with ``apikey``; limits
  and errors are HTTP 200 with ``Note``/``Information``/``Error Message`` bodies, on the CSV endpoint too;
- ``GET/POST <root>/_sim/config`` reads or changes the knobs (:class:`SimulatorConfig`) at runtime;
  ``GET <root>/_sim/stats`` counts requests, faults and throttles.

The same seed and day give byte-identical bodies. Faults are drawn from an RNG seeded by the seed, so a fault
sequence is reproducible for a given order of requests.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Request, Response

from pollen.local.simulator.market import CALENDAR_COLUMNS, CALENDAR_HORIZON_DAYS, STATEMENT_FIELDS, Market

ALPACA_PREFIX = "/alpaca"
ALPACA_DATA_PREFIX = "/alpaca-data"
ALPHAVANTAGE_PREFIX = "/alphavantage"
CHUNK_BYTES = 64 * 1024
#: What the stocks data API accepts as a symbol (it refuses the whole request otherwise, as Alpaca does).
STOCK_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,9}([.-][A-Z0-9]{1,4})?$")

AV_BAD_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)


def av_invalid_call(function: str) -> str:
    return (
        "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) "
        f"for {function}."
    )


def av_minute_note(per_minute: int, per_day: int) -> str:
    return (
        f"Thank you for using Alpha Vantage! Our standard API call frequency is {per_minute} calls per minute and "
        f"{per_day} calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a "
        "higher API call frequency."
    )


def av_daily_information(api_key: str, per_day: int) -> str:
    # The real message echoes the key: clients must never repeat it as is.
    return (
        f"We have detected your API key as {api_key} and our standard API rate limit is {per_day} requests per day. "
        "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove "
        "all daily rate limits."
    )


class SimulatorConfig(BaseModel):
    """The simulator's knobs; every one can be changed at runtime."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 7
    asset_count: int = Field(12_000, ge=100, le=500_000)
    day: int = Field(0, ge=0, le=100_000)
    alpaca_key_id: str = "sim-alpaca-key-id"
    alpaca_secret_key: str = "sim-alpaca-secret-key"  # noqa: S105 - the simulator's own
    alphavantage_api_key: str = "sim-alphavantage-key"
    #: Requests per quota window before Alpaca answers 429 (the real limit is 200 per minute).
    alpaca_per_minute: int = Field(100_000, ge=1)
    #: Requests per quota window before Alpha Vantage answers with a ``Note``.
    alphavantage_per_minute: int = Field(100_000, ge=1)
    #: Requests in all before Alpha Vantage answers with the daily ``Information``.
    alphavantage_per_day: int = Field(10_000_000, ge=1)
    #: Length of a "minute" quota window in seconds (tests shorten it).
    quota_window_s: float = Field(60.0, gt=0)
    #: Fraction of API requests answered with HTTP 500/502/503.
    error_rate: float = Field(0.0, ge=0, le=1)
    #: Fraction of API responses cut off mid-body (Content-Length promised, connection closed early).
    truncate_rate: float = Field(0.0, ge=0, le=1)
    #: Fraction of API responses with a complete but corrupt body (HTTP 200).
    malformed_rate: float = Field(0.0, ge=0, le=1)
    #: Most faults injected in all (None: no limit); with a rate of 1, "the next N requests fail".
    fault_budget: int | None = Field(None, ge=0)
    #: Delay added to every API response.
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    #: Serve the older EARNINGS_CALENDAR layout without the timeOfTheDay column.
    legacy_calendar: bool = False


class Simulation:
    """The state behind the WSGI app: config, the current market, quota windows, fault RNG and counters."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.config = config or SimulatorConfig()
        self._market = Market(self.config.seed, self.config.asset_count, self.config.day)
        self._body_cache: dict[tuple[Any, ...], bytes] = {}
        #: Each symbol's snapshot as JSON text for the current market (None: no daily bar), built once a day.
        self._snapshot_json: dict[str, str | None] = {}
        self._reset_counters()
        self.stats: Counter[str] = Counter()

    def _reset_counters(self) -> None:
        self._fault_rng = random.Random(f"{self.config.seed}:faults")
        self._faults_injected = 0
        self._windows: dict[str, tuple[float, int]] = {}
        self._av_day_count = 0

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change knobs (validated); quota windows and the fault sequence restart."""
        with self._lock:
            config = SimulatorConfig(**{**self.config.model_dump(), **changes})
            self.config = config
            key = (config.seed, config.asset_count, config.day)
            if (self._market.seed, self._market.asset_count, self._market.day) != key:
                self._market = Market(*key)
                self._body_cache.clear()
                self._snapshot_json = {}
            self._reset_counters()
            return config

    @property
    def market(self) -> Market:
        return self._market

    # ---- quotas and faults -----------------------------------------------------------------------------------

    def take_quota(self, name: str, limit: int) -> tuple[bool, int, float]:
        """Count one request in ``name``'s window: (allowed, remaining, window reset time as epoch seconds)."""
        now = time.time()
        window = self.config.quota_window_s
        with self._lock:
            start, used = self._windows.get(name, (now, 0))
            if now - start >= window:
                start, used = now, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._windows[name] = (start, used)
        return allowed, max(limit - used, 0), start + window

    def take_daily(self, limit: int) -> bool:
        with self._lock:
            if self._av_day_count >= limit:
                return False
            self._av_day_count += 1
            return True

    def draw_fault(self) -> str | None:
        config = self.config
        with self._lock:
            if config.fault_budget is not None and self._faults_injected >= config.fault_budget:
                return None
            draw = self._fault_rng.random()
            fault = None
            for kind, rate in (
                ("error", config.error_rate),
                ("truncate", config.truncate_rate),
                ("malformed", config.malformed_rate),
            ):
                if draw < rate:
                    fault = kind
                    break
                draw -= rate
            if fault is not None:
                self._faults_injected += 1
            return fault

    def snapshots_body(self, symbols: Iterable[str]) -> bytes:
        """The snapshots of ``symbols`` (each once; those without a daily bar left out) as the JSON object the API
        sends, from each symbol's JSON text built once per market day."""
        with self._lock:
            market, texts = self._market, self._snapshot_json
        parts = []
        for symbol in dict.fromkeys(symbols):
            if symbol not in texts:
                snapshot = market.snapshot(symbol)
                texts[symbol] = None if snapshot is None else json.dumps(snapshot, separators=(",", ":"))
            text = texts[symbol]
            if text is not None:
                parts.append(f"{json.dumps(symbol)}:{text}")
        return ("{" + ",".join(parts) + "}").encode()

    def cached_body(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            return self._body_cache.get(key)

    def cached(self, key: tuple[Any, ...], build: Any) -> bytes:
        with self._lock:
            body = self._body_cache.get(key)
        if body is None:
            body = build()
            with self._lock:
                if len(self._body_cache) > 32:
                    self._body_cache.clear()
                self._body_cache[key] = body
        return body


def _json(
    payload: Any, status: int = 200, indent: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, indent=indent, separators=None if indent else (",", ":")).encode()
    return Response(body, status=status, headers=headers, content_type="application/json")


class SimulatorApp:
    """WSGI callable."""

    def __init__(self, simulation: Simulation) -> None:
        self.sim = simulation

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sim/"):
            return self.admin(request)
        config = self.sim.config
        self.sim.stats["requests"] += 1
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        fault = self.sim.draw_fault()
        if fault == "error":
            self.sim.stats["fault_error"] += 1
            status = (500, 502, 503)[self.sim.stats["fault_error"] % 3]
            return Response(b"<html><body>upstream error</body></html>", status=status, content_type="text/html")
        if path == f"{ALPACA_PREFIX}/v2/assets":
            response = self.alpaca(request, self.assets)
        elif path == f"{ALPACA_DATA_PREFIX}/v2/stocks/snapshots":
            response = self.alpaca(request, self.snapshots)
        elif path == f"{ALPHAVANTAGE_PREFIX}/query":
            response = self.alphavantage(request)
        else:
            response = _json({"message": "Not Found"}, status=404)
        if fault == "truncate":
            self.sim.stats["fault_truncate"] += 1
            return truncated(response)
        if fault == "malformed":
            self.sim.stats["fault_malformed"] += 1
            return malformed(response)
        return response

    # ---- admin ------------------------------------------------------------------------------------------------

    def admin(self, request: Request) -> Response:
        if request.path == "/_sim/config" and request.method == "GET":
            return _json({**self.sim.config.model_dump(), "today": self.sim.market.today.isoformat()})
        if request.path == "/_sim/config" and request.method == "POST":
            try:
                changes = json.loads(request.get_data() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                config = self.sim.configure(**changes)
            except (ValueError, ValidationError) as exc:
                return _json({"message": str(exc).splitlines()[0]}, status=400)
            return _json({**config.model_dump(), "today": self.sim.market.today.isoformat()})
        if request.path == "/_sim/stats" and request.method == "GET":
            return _json(dict(self.sim.stats))
        return _json({"message": "Not Found"}, status=404)

    # ---- Alpaca -----------------------------------------------------------------------------------------------

    def alpaca(self, request: Request, handler: Any) -> Response:
        config = self.sim.config
        key_id = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if key_id != config.alpaca_key_id or secret != config.alpaca_secret_key:
            self.sim.stats["alpaca_unauthorized"] += 1
            return _json({"code": 40110000, "message": "request is not authorized"}, status=401)
        allowed, remaining, reset = self.sim.take_quota("alpaca", config.alpaca_per_minute)
        headers = {
            "X-RateLimit-Limit": str(config.alpaca_per_minute),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
        if not allowed:
            self.sim.stats["alpaca_429"] += 1
            return _json({"code": 42910000, "message": "rate limit exceeded"}, status=429, headers=headers)
        response: Response = handler(request)
        response.headers.update(headers)
        return response

    def assets(self, request: Request) -> Response:
        status = request.args.get("status")
        if status not in (None, "active", "inactive"):
            return _json({"code": 42210000, "message": f"invalid status: {status}"}, status=422)
        market = self.sim.market
        key = ("assets", market.seed, market.asset_count, market.day, status)
        body = self.sim.cached(key, lambda: json.dumps(market.assets(status), separators=(",", ":")).encode())
        self.sim.stats["alpaca_assets"] += 1
        return Response(body, content_type="application/json")

    def snapshots(self, request: Request) -> Response:
        raw = request.args.get("symbols", "")
        symbols = [s for s in raw.split(",") if s]
        if not symbols:
            return _json({"message": "missing symbols"}, status=400)
        for symbol in symbols:
            if not STOCK_SYMBOL.match(symbol):
                return _json({"message": f"invalid symbol: {symbol}"}, status=400)
        body = self.sim.snapshots_body(symbols)
        self.sim.stats["alpaca_snapshots"] += 1
        return Response(body, content_type="application/json")

    # ---- Alpha Vantage ----------------------------------------------------------------------------------------

    def alphavantage(self, request: Request) -> Response:
        args = request.args
        refusal = self._alphavantage_refusal(args.get("apikey", ""))
        if refusal is not None:
            return refusal
        function = args.get("function", "")
        self.sim.stats[f"av_{function}"] += 1
        if function == "EARNINGS_CALENDAR":
            return self.calendar(request)
        if function not in ("OVERVIEW", "EARNINGS", *STATEMENT_FIELDS):
            return _json({"Error Message": f"This API function ({function}) does not exist."}, indent=4)
        return self.fundamentals(function, args.get("symbol", ""))

    def _alphavantage_refusal(self, api_key: str) -> Response | None:
        """What Alpha Vantage answers (HTTP 200) to a wrong key, a spent daily quota or too many calls a minute;
        None when the call may go on. Each check counts against the quota only when the ones before passed."""
        config = self.sim.config
        if api_key != config.alphavantage_api_key:
            self.sim.stats["av_bad_key"] += 1
            return _json({"Error Message": AV_BAD_KEY}, indent=4)
        if not self.sim.take_daily(config.alphavantage_per_day):
            self.sim.stats["av_daily"] += 1
            return _json({"Information": av_daily_information(api_key, config.alphavantage_per_day)}, indent=4)
        allowed, _, _ = self.sim.take_quota("alphavantage", config.alphavantage_per_minute)
        if not allowed:
            self.sim.stats["av_minute"] += 1
            return _json(
                {"Note": av_minute_note(config.alphavantage_per_minute, config.alphavantage_per_day)}, indent=4
            )
        return None

    def fundamentals(self, function: str, symbol: str) -> Response:
        """OVERVIEW, EARNINGS or a statement of one symbol, with Alpha Vantage's answers for unknown symbols."""
        market = self.sim.market
        if not symbol:
            return _json({"Error Message": av_invalid_call(function)}, indent=4)
        if not market.is_known(symbol):
            # OVERVIEW answers {} for symbols it does not know; the others call it an invalid call.
            if function == "OVERVIEW":
                return _json({}, indent=4)
            return _json({"Error Message": av_invalid_call(function)}, indent=4)
        if not market.has_fundamentals(symbol):
            return _json({}, indent=4)
        if function == "OVERVIEW":
            return _json(market.overview(symbol), indent=4)
        if function == "EARNINGS":
            return _json(market.earnings(symbol), indent=4)
        return _json(market.statement(function, symbol), indent=4)

    def calendar(self, request: Request) -> Response:
        horizon = request.args.get("horizon", "3month")
        if horizon not in CALENDAR_HORIZON_DAYS:
            return _json({"Error Message": av_invalid_call("EARNINGS_CALENDAR")}, indent=4)
        only = request.args.get("symbol")
        columns = CALENDAR_COLUMNS[:-1] if self.sim.config.legacy_calendar else CALENDAR_COLUMNS
        market = self.sim.market

        key = ("calendar", market.seed, market.asset_count, market.day, horizon, len(columns), only)
        body = self.sim.cached_body(key)
        if body is not None:
            return Response(body, content_type="application/x-download")

        def rows() -> Iterator[bytes]:
            # The first request of a market day streams the rows as they are generated and keeps the whole body.
            chunks = []
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow(columns)
            for row in market.calendar_rows(horizon):
                if only and row[0] != only:
                    continue
                writer.writerow(row[: len(columns)])
                if buffer.tell() >= CHUNK_BYTES:
                    chunks.append(buffer.getvalue().encode())
                    yield chunks[-1]
                    buffer.seek(0)
                    buffer.truncate()
            chunks.append(buffer.getvalue().encode())
            yield chunks[-1]
            self.sim.cached(key, lambda: b"".join(chunks))

        return Response(rows(), content_type="application/x-download", direct_passthrough=True)


def _materialize(response: Response) -> bytes:
    return b"".join(response.iter_encoded())


def truncated(response: Response) -> Response:
    """The response with its full Content-Length but only part of its body: the client sees the connection end."""
    body = _materialize(response)
    cut = body[: max(len(body) // 2, 1)] if body else b""

    def once() -> Iterator[bytes]:
        yield cut

    out = Response(once(), status=response.status_code, direct_passthrough=True)
    for key, value in response.headers.items():
        if key.lower() != "content-length":
            out.headers[key] = value
    out.headers["Content-Length"] = str(len(body) + (0 if body else 10))
    return out


def malformed(response: Response) -> Response:
    """A complete HTTP 200 response whose body is corrupt (broken JSON, or an HTML page instead of CSV)."""
    body = _materialize(response)
    if response.mimetype == "application/json":
        corrupt = body[: len(body) // 2] + b"\x00<!-- upstream hiccup -->"
    else:
        corrupt = b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"
    out = Response(corrupt, status=200, content_type=response.content_type)
    for key, value in response.headers.items():
        if key.lower().startswith("x-ratelimit"):
            out.headers[key] = value
    return out
