"""Alpha Vantage client (httpx): raw payloads for OVERVIEW, EARNINGS, the three statements and EARNINGS_CALENDAR.

Alpha Vantage answers most problems with HTTP 200 and a JSON body, on its CSV endpoint too:

- ``{"Note": ...}`` or ``{"Information": ...}`` about call frequency: back off and retry (ThrottledError);
- ``{"Information": ... per day ...}``: the daily quota is gone (QuotaExhausted; later calls fail fast);
- ``{"Error Message": ...}``: about the API key (AuthError) or about the call/symbol (NotFound, permanent);
- ``{}``: no data for that symbol (``None``).

One :class:`RateLimiter` covers every request, retries included. Transient failures (5xx, 429, timeouts, cut or
corrupt bodies, frequency notes) are retried with capped exponential backoff and full jitter; whether to retry is
the error's ``transient`` property. The key travels in the URL, so messages never quote URLs or bodies unmasked.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import httpx
from pydantic import SecretStr

from pollen.adapters.http import OnDemandHttp, RateLimiter, error_for_status, install_key_masking, mask_keys
from pollen.backoff import HTTP_BACKOFF, Backoff, floor_of
from pollen.errors import (
    AuthError,
    ConfigError,
    NotFound,
    PermanentError,
    PollenError,
    QuotaExhausted,
    ServiceUnavailable,
    ThrottledError,
    TransientError,
)
from pollen.observability import MetricsRecorder
from pollen.ports import StatementFunction

log = logging.getLogger(__name__)

Horizon = Literal["3month", "6month", "12month"]
SERVICE = "Alpha Vantage"
CALENDAR_REQUIRED = ("symbol", "reportDate", "fiscalDateEnding")
_MAX_JSON_ON_CSV = 1 << 20
_FREQUENCY_MARKERS = ("per minute", "per second", "call frequency", "spreading out", "sparingly", "burst")
_DAILY_MARKERS = ("per day", "daily")

T = TypeVar("T")


def classify_message(
    key: str, text: str, *, api_key: str = "", keys: list[dict[str, str]] | None = None
) -> PollenError:
    """The error an HTTP-200 ``Note``/``Information``/``Error Message`` body stands for."""
    keys = keys or []
    shown = mask_keys(text.replace(api_key, "***") if api_key else text)[:240]
    lowered = text.lower()
    if key == "Error Message":
        if "apikey" in lowered or "api key" in lowered:
            return AuthError(f"{SERVICE} refused the API key: {shown}", keys=keys, code="bad_api_key")
        return NotFound(f"{SERVICE} has no such record: {shown}", keys=keys, code="error_message")
    if "is a premium endpoint" in lowered:
        return PermanentError(f"{SERVICE} premium endpoint: {shown}", keys=keys, code="premium")
    if any(marker in lowered for marker in _FREQUENCY_MARKERS):
        return ThrottledError(f"{SERVICE} asked to slow down: {shown}", keys=keys, code="frequency")
    if any(marker in lowered for marker in _DAILY_MARKERS):
        return QuotaExhausted(f"{SERVICE} daily quota is used up: {shown}", keys=keys, code="daily_quota")
    return ThrottledError(f"{SERVICE} said: {shown}", keys=keys, code="information")


class AlphaVantageClient:
    """Implements :class:`pollen.ports.FundamentalsSource`."""

    def __init__(
        self,
        api_key: SecretStr | str | None,
        *,
        base_url: str = "https://www.alphavantage.co",
        limiter: RateLimiter | None = None,
        metrics: MetricsRecorder | None = None,
        http: httpx.Client | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._api_key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or RateLimiter(75, 25_000)
        self.metrics = metrics or MetricsRecorder()
        backoff = backoff or HTTP_BACKOFF
        self.backoff = backoff if sleep is None else backoff.waiting_with(sleep)
        self._on_demand = OnDemandHttp(http, timeout_s=timeout_s)
        self._quota_gone: QuotaExhausted | None = None
        install_key_masking()

    @property
    def _http(self) -> httpx.Client:
        return self._on_demand.get()

    def close(self) -> None:
        self._on_demand.close()

    # ---- the port ---------------------------------------------------------------------------------------------

    def overview(self, symbol: str) -> dict[str, Any] | None:
        return self._json("OVERVIEW", symbol)

    def earnings(self, symbol: str) -> dict[str, Any] | None:
        return self._json("EARNINGS", symbol)

    def statement(self, function: StatementFunction, symbol: str) -> dict[str, Any] | None:
        if function not in ("CASH_FLOW", "BALANCE_SHEET", "INCOME_STATEMENT"):
            raise ConfigError(f"not a statement function: {function!r}")
        return self._json(function, symbol)

    def earnings_calendar(self, horizon: Horizon) -> Iterator[dict[str, str]]:
        """Calendar rows as dicts keyed by the CSV header, streamed (memory flat in the number of rows).

        A connection cut mid-stream is resumed with a new request that skips the rows already yielded, after
        checking (by a running hash) that they are the same rows.
        """
        if horizon not in ("3month", "6month", "12month"):
            raise ConfigError(f"horizon must be 3month, 6month or 12month, not {horizon!r}")
        state = _StreamState()
        yield from self._with_retries(
            "EARNINGS_CALENDAR", None, lambda: self._calendar_attempt(horizon, state), progress=lambda: state.yielded
        )

    # ---- requests ---------------------------------------------------------------------------------------------

    def _params(self, function: str, **extra: str) -> dict[str, str]:
        if self._api_key is None or not self._api_key.get_secret_value():
            raise ConfigError("ALPHAVANTAGE_API_KEY is not set (nor in the secret named by POLLEN_SECRET_ID)")
        return {"function": function, **extra, "apikey": self._api_key.get_secret_value()}

    def _key(self) -> str:
        return self._api_key.get_secret_value() if self._api_key is not None else ""

    def _json(self, function: str, symbol: str) -> dict[str, Any] | None:
        def attempt() -> Iterator[dict[str, Any] | None]:
            yield self._json_attempt(function, symbol)

        (result,) = self._with_retries(function, symbol, attempt)  # runs the generator to its end
        return result

    def _with_retries(
        self,
        function: str,
        symbol: str | None,
        attempt: Callable[[], Iterator[T]],
        progress: Callable[[], int] = lambda: 0,
    ) -> Iterator[T]:
        """Run ``attempt`` (a generator) until it finishes; retry transient errors (a stream that made progress
        earns fresh attempts, up to four times the usual number in all)."""
        failures = 0
        total = 0
        last_progress = progress()
        while True:
            if self._quota_gone is not None:
                raise self._quota_gone
            started = time.perf_counter()
            try:
                self.limiter.acquire()
                self.metrics.count("UpstreamRequests", api="alphavantage", function=function)
                yield from attempt()
                self.metrics.timing_ms(
                    "UpstreamLatency", (time.perf_counter() - started) * 1000, api="alphavantage", function=function
                )
                return
            except PollenError as err:
                self._count_error(err, function)
                if isinstance(err, QuotaExhausted):
                    self._quota_gone = err
                if progress() > last_progress:
                    failures, last_progress = 0, progress()
                failures += 1
                total += 1
                if self.backoff.gives_up(err, failures) or total >= 4 * self.backoff.max_attempts:
                    raise
                wait = self.backoff.delay_s(failures, floor_of(err))
                log.info(
                    "retrying Alpha Vantage call",
                    extra={"function": function, "symbol": symbol, "error": str(err), "wait_s": round(wait, 3)},
                )
                self.backoff.sleeper(wait)

    def _count_error(self, err: PollenError, function: str) -> None:
        kind = type(err).__name__
        self.metrics.count("UpstreamErrors", api="alphavantage", function=function, kind=kind)
        if isinstance(err, ThrottledError):
            self.metrics.count("UpstreamThrottled", api="alphavantage")
        if isinstance(err, AuthError):
            self.metrics.count("UpstreamAuthFailures", api="alphavantage")

    def _transport_error(self, exc: httpx.HTTPError, keys: list[dict[str, str]]) -> PollenError:
        if isinstance(exc, httpx.ConnectError):
            return ServiceUnavailable(f"{SERVICE} is unreachable at {self.base_url}", keys=keys, code="connect")
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(f"{SERVICE} timed out", keys=keys, code="timeout")
        if isinstance(exc, httpx.RemoteProtocolError):
            return TransientError(f"{SERVICE} response was cut off", keys=keys, code="truncated")
        return TransientError(f"{SERVICE} request failed: {type(exc).__name__}", keys=keys, code="transport")

    def _json_attempt(self, function: str, symbol: str) -> dict[str, Any] | None:
        keys = [{"symbol": symbol}]
        params = self._params(function, symbol=symbol)
        try:
            response = self._http.get(f"{self.base_url}/query", params=params)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, keys) from None  # the request (and its URL) holds the key
        if response.status_code != 200:
            raise error_for_status(response.status_code, SERVICE, response.headers, keys=keys)
        try:
            body = response.json()
        except ValueError:
            raise TransientError(
                f"{SERVICE} sent a corrupt {function} body for {symbol}", keys=keys, code="malformed"
            ) from None
        return self._payload(body, function, keys)

    def _payload(self, body: Any, function: str, keys: list[dict[str, str]]) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            raise TransientError(
                f"{SERVICE} sent a {type(body).__name__} for {function}, not an object", keys=keys, code="malformed"
            )
        if not body:
            return None
        for key in ("Error Message", "Information", "Note"):
            if key in body and len(body) <= 2:
                raise classify_message(key, str(body[key]), api_key=self._key(), keys=keys)
        return body

    def _calendar_attempt(self, horizon: Horizon, state: _StreamState) -> Iterator[dict[str, str]]:
        params = self._params("EARNINGS_CALENDAR", horizon=horizon)
        keys: list[dict[str, str]] = []
        try:
            with self._http.stream("GET", f"{self.base_url}/query", params=params) as response:
                if response.status_code != 200:
                    raise error_for_status(response.status_code, SERVICE, response.headers)
                # Line endings kept: csv needs them to keep a newline inside a quoted field.
                lines = _lines_with_endings(response.iter_text())
                first = next((line for line in lines if line.strip()), None)
                if first is None:
                    raise TransientError(f"{SERVICE} sent an empty calendar", code="malformed")
                if first.lstrip().startswith("{"):
                    # A JSON body on the CSV endpoint: a limit or an error (or {}: no rows).
                    text = first + "".join(_bounded(lines, _MAX_JSON_ON_CSV))
                    try:
                        body = json.loads(text)
                    except ValueError:
                        raise TransientError(f"{SERVICE} sent a corrupt calendar body", code="malformed") from None
                    if self._payload(body, "EARNINGS_CALENDAR", keys) is not None:
                        raise TransientError(f"{SERVICE} sent JSON instead of the calendar CSV", code="malformed")
                    return
                yield from state.rows(first, lines, self.metrics)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, keys) from None


def _lines_with_endings(chunks: Iterator[str]) -> Iterator[str]:
    """Lines of a streamed text body with their line endings (httpx's ``iter_lines`` strips them)."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        lines = pending.splitlines(keepends=True)
        # The last piece may be a line still arriving, or a "\r" whose "\n" is in the next chunk.
        pending = lines.pop() if lines and (not lines[-1].endswith(("\n", "\r")) or lines[-1].endswith("\r")) else ""
        yield from lines
    if pending:
        yield pending


def _bounded(lines: Iterator[str], limit: int) -> Iterator[str]:
    size = 0
    for line in lines:
        size += len(line)
        if size > limit:
            raise TransientError(f"{SERVICE} sent an oversized JSON body on the calendar endpoint", code="malformed")
        yield line


class _StreamState:
    """How far a calendar stream got: rows yielded so far and a running hash of them, so a resumed stream can
    skip exactly those rows (and notice when the file changed in between)."""

    def __init__(self) -> None:
        self.yielded = 0
        self.digest = hashlib.sha256()
        self.header: list[str] | None = None

    def rows(self, header_line: str, lines: Iterator[str], metrics: MetricsRecorder) -> Iterator[dict[str, str]]:
        header = next(csv.reader([header_line]))
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in CALENDAR_REQUIRED if c not in header]
        if missing:
            raise TransientError(f"{SERVICE} calendar lacks the columns {', '.join(missing)}", code="malformed")
        if self.header is not None and header != self.header:
            raise PermanentError(f"{SERVICE} calendar changed its columns between attempts; run again", code="changed")
        self.header = header
        replay = hashlib.sha256()
        index = 0
        for row in csv.reader(lines):
            if not row:
                continue
            encoded = "\x1f".join(row).encode()
            if index < self.yielded:
                replay.update(encoded)
                index += 1
                if index == self.yielded and replay.digest() != self.digest.digest():
                    raise PermanentError(f"{SERVICE} calendar changed while resuming; run again", code="changed")
                continue
            if len(row) != len(header):
                metrics.count("UpstreamMalformedRows", api="alphavantage", function="EARNINGS_CALENDAR")
                log.warning("calendar row has %d fields, header has %d", len(row), len(header))
            self.digest.update(encoded)
            self.yielded += 1
            index += 1
            yield dict(zip(header, row, strict=False))
        if index < self.yielded:
            raise PermanentError(f"{SERVICE} calendar shrank while resuming; run again", code="changed")
