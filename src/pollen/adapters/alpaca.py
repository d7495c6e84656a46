"""Alpaca client: active assets through alpaca-py's REST client (raw JSON), daily volumes from stock snapshots.

alpaca-py's typed ``Asset`` rejects enum values it does not know (Alpaca adds exchanges and classes), so the assets
are read with ``raw_data=True`` and come back exactly as the API sent them; validation is the domain's job. The
call is ``TradingClient.get_all_assets``'s own (``GET /v2/assets`` on alpaca-py's ``RESTClient``, which
``TradingClient`` extends) without ``TradingClient`` itself: importing that module loads pandas and numpy (about
1.5 s of CPU per process) for request models a raw read does not use. alpaca-py's own 429 handling (fixed sleeps,
headers ignored) is switched off: this client retries 429s after the ``Retry-After``/``X-RateLimit-Reset`` the
server gave, and other transient failures with capped exponential backoff and full jitter (:mod:`pollen.backoff`).

The snapshot batches are fetched by a few threads at once (:data:`SNAPSHOT_CONCURRENCY`): one request per 200
symbols, about 60 for the whole market, well inside Alpaca's 200 requests a minute. A 429 to any of them pauses
them all until the time the server gave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from pollen.adapters.http import OnDemandHttp, error_for_status
from pollen.backoff import HTTP_BACKOFF, Backoff
from pollen.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    PollenError,
    ServiceUnavailable,
    ThrottledError,
    TransientError,
)
from pollen.observability import MetricsRecorder

log = logging.getLogger(__name__)

SERVICE = "Alpaca"
#: Snapshot requests in flight at once: enough to overlap the server's work with ours, few enough to stay polite.
SNAPSHOT_CONCURRENCY = 4
_STOCK_SYMBOL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
T = TypeVar("T")


def _timeout_session(timeout_s: float) -> Any:
    """A requests session that gives every request a timeout (alpaca-py sends its requests without one).

    requests is imported here, with alpaca-py: only the function that calls Alpaca carries them.
    """
    import requests

    class TimeoutSession(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override,unused-ignore]
            kwargs.setdefault("timeout", timeout_s)
            return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type,unused-ignore]

    return TimeoutSession()


class _ThrottlePause:
    """A 429 to one request holds back every request of the client until the time the server gave (each request
    waits here before it is sent; the throttled request itself waits in its backoff, at least as long)."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float | None) -> None:
        if seconds:
            with self._lock:
                self._until = max(self._until, self._clock() + seconds)

    def wait(self) -> None:
        with self._lock:
            remaining = self._until - self._clock()
        if remaining > 0:
            self._sleep(remaining)


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    return value if isinstance(value, SecretStr) or value is None else SecretStr(value)


class AlpacaClient:
    """Implements :class:`pollen.ports.AssetSource`."""

    def __init__(
        self,
        key_id: SecretStr | str | None,
        secret_key: SecretStr | str | None,
        *,
        base_url: str = "https://paper-api.alpaca.markets",
        data_url: str = "https://data.alpaca.markets",
        feed: str | None = "iex",
        metrics: MetricsRecorder | None = None,
        trading: Any | None = None,
        http: httpx.Client | None = None,
        backoff: Backoff | None = None,
        snapshot_batch: int = 200,
        snapshot_concurrency: int = SNAPSHOT_CONCURRENCY,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key_id = _secret(key_id)
        self._secret_key = _secret(secret_key)
        self.base_url = base_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.feed = feed
        self.metrics = metrics or MetricsRecorder()
        backoff = backoff or HTTP_BACKOFF
        self.backoff = backoff if sleep is None else backoff.waiting_with(sleep)
        self.snapshot_batch = max(1, snapshot_batch)
        self.snapshot_concurrency = max(1, snapshot_concurrency)
        self._pause = _ThrottlePause(clock, sleep or time.sleep)
        self.timeout_s = timeout_s
        self._trading = trading
        self._on_demand = OnDemandHttp(http, timeout_s=timeout_s)

    @property
    def _http(self) -> httpx.Client:
        return self._on_demand.get()

    def close(self) -> None:
        self._on_demand.close()

    def _credentials(self) -> tuple[str, str]:
        key_id = self._key_id.get_secret_value() if self._key_id else ""
        secret = self._secret_key.get_secret_value() if self._secret_key else ""
        if not key_id or not secret:
            raise ConfigError(
                "ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY are not set (nor in the secret named by POLLEN_SECRET_ID)"
            )
        return key_id, secret

    def _trading_client(self) -> Any:
        """alpaca-py's REST client for the trading API, as ``TradingClient`` sets it up (``api_version="v2"``, the
        base URL, raw data)."""
        if self._trading is None:
            from alpaca.common.rest import RESTClient

            key_id, secret = self._credentials()
            client = RESTClient(base_url=self.base_url, api_key=key_id, secret_key=secret, raw_data=True)
            client._retry = 0  # no blind 3-second sleeps on 429: we honour the server's headers ourselves
            client._session = _timeout_session(self.timeout_s)
            self._trading = client
        return self._trading

    # ---- the port ---------------------------------------------------------------------------------------------

    def active_assets(self) -> list[dict[str, Any]]:
        """Every active asset, raw, as the API sent it (one response: /v2/assets has no pagination)."""

        def call() -> list[dict[str, Any]]:
            client = self._trading_client()
            try:
                raw = client.get("/assets", {"status": "active"})
            except Exception as exc:
                raise self._translate(exc) from None
            if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
                raise TransientError(f"{SERVICE} sent an asset list that is not a list of objects", code="malformed")
            return raw

        assets = self._with_retries("assets", call)
        self.metrics.count("AssetsFetched", len(assets), api="alpaca")
        return assets

    def daily_volumes(self, symbols: Sequence[str]) -> dict[str, int]:
        """Latest daily-bar volume per symbol, from the stock snapshots API, many symbols per request and a few
        requests at once.

        Symbols the stocks API cannot take (crypto pairs like ``BTC/USD``) are left out, as are symbols without a
        daily bar; a batch refused for one bad symbol is split until the symbol is isolated and dropped. Any other
        failure of a batch (after its retries) ends the call: no batch starts once it is seen (the ones in flight
        finish), and the error is raised.
        """
        wanted = list(dict.fromkeys(s for s in symbols if s and set(s) <= _STOCK_SYMBOL_CHARS))
        waiting = deque(wanted[i : i + self.snapshot_batch] for i in range(0, len(wanted), self.snapshot_batch))
        volumes: dict[str, int] = {}
        if waiting:
            workers = min(self.snapshot_concurrency, len(waiting))
            with ThreadPoolExecutor(workers, thread_name_prefix="pollen-alpaca") as pool:
                running: set[Future[tuple[dict[str, int], list[list[str]]]]] = set()
                while waiting or running:
                    while waiting and len(running) < workers:  # no batch starts once a failure is seen
                        running.add(pool.submit(self._batch_volumes, waiting.popleft()))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        found, halves = future.result()
                        volumes.update(found)
                        waiting.extend(halves)
        self.metrics.count("VolumesFetched", len(volumes), api="alpaca")
        return volumes

    def _batch_volumes(self, batch: list[str]) -> tuple[dict[str, int], list[list[str]]]:
        """One batch's volumes; or, when Alpaca refused the batch for a bad symbol, its halves to try instead."""
        try:
            snapshots = self._with_retries("snapshots", lambda: self._snapshots(batch))
        except PermanentError as err:
            if err.code != "400" or isinstance(err, AuthError):
                raise
            if len(batch) == 1:
                log.warning("Alpaca refused a symbol for snapshots", extra={"symbol": batch[0]})
                self.metrics.count("SnapshotSymbolsRefused", api="alpaca")
                return {}, []
            middle = len(batch) // 2
            return {}, [batch[:middle], batch[middle:]]
        found: dict[str, int] = {}
        for symbol, snapshot in snapshots.items():
            volume = _daily_volume(snapshot)
            if volume is not None:
                found[symbol] = volume
        return found, []

    # ---- internals --------------------------------------------------------------------------------------------

    def _snapshots(self, batch: list[str]) -> dict[str, Any]:
        key_id, secret = self._credentials()
        params = {"symbols": ",".join(batch)}
        if self.feed:
            params["feed"] = self.feed
        headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}
        self._pause.wait()
        try:
            response = self._http.get(f"{self.data_url}/v2/stocks/snapshots", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.data_url) from None
        if response.status_code != 200:
            raise error_for_status(response.status_code, SERVICE, response.headers)
        try:
            body = response.json()
        except ValueError:
            raise TransientError(f"{SERVICE} sent a corrupt snapshots body", code="malformed") from None
        if not isinstance(body, dict):
            raise TransientError(f"{SERVICE} sent snapshots that are not an object", code="malformed")
        # Older responses wrap the map in {"snapshots": {...}}.
        inner = body.get("snapshots")
        return inner if isinstance(inner, dict) and len(body) == 1 else body

    def _with_retries(self, call_name: str, call: Callable[[], T]) -> T:
        def attempt() -> T:
            started = time.perf_counter()
            self.metrics.count("UpstreamRequests", api="alpaca", call=call_name)
            try:
                result = call()
            except PollenError as err:
                self._count_error(err, call_name)
                raise
            self.metrics.timing_ms(
                "UpstreamLatency", (time.perf_counter() - started) * 1000, api="alpaca", call=call_name
            )
            return result

        def retrying(err: PollenError, _failures: int, wait_s: float) -> None:
            log.info("retrying Alpaca call", extra={"call": call_name, "error": str(err), "wait_s": round(wait_s, 3)})

        return self.backoff.call(attempt, on_retry=retrying)

    def _count_error(self, err: PollenError, call_name: str) -> None:
        self.metrics.count("UpstreamErrors", api="alpaca", call=call_name, kind=type(err).__name__)
        if isinstance(err, ThrottledError):
            self._pause.hold(err.retry_after_s)
            self.metrics.count("UpstreamThrottled", api="alpaca")
        if isinstance(err, AuthError):
            self.metrics.count("UpstreamAuthFailures", api="alpaca")

    def _translate(self, exc: Exception) -> PollenError:
        import requests
        from alpaca.common.exceptions import APIError

        if isinstance(exc, APIError):
            response = exc.response
            status = exc.status_code
            if response is not None and status is not None:
                return error_for_status(int(status), SERVICE, response.headers)
            return TransientError(f"{SERVICE} API error without a status", code="api_error")
        if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
            exc, requests.exceptions.ChunkedEncodingError
        ):
            if isinstance(exc.__context__, Exception) and "IncompleteRead" in repr(exc):
                return TransientError(f"{SERVICE} response was cut off", code="truncated")
            return ServiceUnavailable(f"{SERVICE} is unreachable at {self.base_url}", code="connect")
        if isinstance(exc, requests.exceptions.Timeout):
            return TransientError(f"{SERVICE} timed out", code="timeout")
        if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
            return TransientError(f"{SERVICE} response was cut off", code="truncated")
        if isinstance(exc, ValueError):  # requests' JSONDecodeError is a ValueError
            return TransientError(f"{SERVICE} sent a corrupt body", code="malformed")
        if isinstance(exc, requests.exceptions.RequestException):
            return TransientError(f"{SERVICE} request failed: {type(exc).__name__}", code="transport")
        return PermanentError(f"{SERVICE} call failed: {type(exc).__name__}", code="unexpected")


def _transport_error(exc: httpx.HTTPError, url: str) -> PollenError:
    if isinstance(exc, httpx.ConnectError):
        return ServiceUnavailable(f"{SERVICE} is unreachable at {url}", code="connect")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{SERVICE} timed out", code="timeout")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientError(f"{SERVICE} response was cut off", code="truncated")
    return TransientError(f"{SERVICE} request failed: {type(exc).__name__}", code="transport")


def _daily_volume(snapshot: Any) -> int | None:
    if not isinstance(snapshot, dict):
        return None
    bar = snapshot.get("dailyBar")
    if not isinstance(bar, dict):
        return None
    volume = bar.get("v")
    if isinstance(volume, bool) or not isinstance(volume, int | float) or volume < 0:
        return None
    return int(volume)
