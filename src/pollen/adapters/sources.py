"""Upstream clients that follow a rotated secret (built by ``pollen.wiring.build_sources``).

With POLLEN_SECRET_ID the keys live in Secrets Manager and may be rotated while a warm Lambda container holds
clients built with the old ones. The clients are then wrapped: every call asks the credential source (Powertools'
cache, SECRET_MAX_AGE_S) and rebuilds the client when the keys changed; a call the upstream API refuses for its
credentials (AuthError: Alpaca's 401/403, Alpha Vantage's invalid-key message) reads the secret again at once
(``force_fetch``) and, when the keys did change, is retried once with the new ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, Literal, TypeVar

from pollen.adapters.alpaca import AlpacaClient
from pollen.adapters.alphavantage import AlphaVantageClient
from pollen.adapters.credentials import Credentials, CredentialSource
from pollen.errors import AuthError
from pollen.observability import MetricsRecorder, register_secrets
from pollen.ports import StatementFunction

log = logging.getLogger(__name__)

C = TypeVar("C", AlpacaClient, AlphaVantageClient)
R = TypeVar("R")


class RotatingClient(Generic[C]):
    """One upstream client, rebuilt whenever the credentials it was built with are no longer current."""

    def __init__(self, credentials: CredentialSource, build: Callable[[Credentials], C], metrics: MetricsRecorder):
        self.credentials = credentials
        self.build: Callable[[Credentials], C] = build
        self.metrics = metrics
        self._held: Credentials | None = None
        self._client: C | None = None
        self._lock = threading.Lock()  # jobs may call from worker threads; one rebuild at a time

    def client(self) -> C:
        return self._use(self.credentials.current())

    def _use(self, credentials: Credentials) -> C:
        with self._lock:
            return self._use_locked(credentials)

    def _use_locked(self, credentials: Credentials) -> C:
        if self._client is None or credentials != self._held:
            if self._client is not None:
                log.info("upstream credentials changed: client rebuilt", extra={"source": credentials.source})
                self.metrics.count("CredentialsRotated", 1)
                # The old client is not closed here: another thread may still be in a call on it; it is dropped.
            register_secrets(credentials.values())
            self._client, self._held = self.build(credentials), credentials
        return self._client

    def rotated(self) -> bool:
        """After an AuthError: read the secret again; True when it holds other keys (worth one more try)."""
        before = self._held
        fresh = self.credentials.refresh()
        self._use(fresh)
        return fresh != before

    def call(self, action: Callable[[C], R]) -> R:
        try:
            return action(self.client())
        except AuthError:
            if not self.rotated():
                raise
            log.info("credentials refused, the secret held new ones: retrying once")
            return action(self.client())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class RotatingAssetSource:
    """AssetSource over an Alpaca client that follows the secret."""

    def __init__(self, inner: RotatingClient[AlpacaClient]) -> None:
        self.inner = inner

    def active_assets(self) -> list[dict[str, Any]]:
        return self.inner.call(lambda c: c.active_assets())

    def daily_volumes(self, symbols: Sequence[str]) -> dict[str, int]:
        return self.inner.call(lambda c: c.daily_volumes(symbols))

    def close(self) -> None:
        self.inner.close()


class RotatingFundamentalsSource:
    """FundamentalsSource over an Alpha Vantage client that follows the secret."""

    def __init__(self, inner: RotatingClient[AlphaVantageClient]) -> None:
        self.inner = inner

    def earnings_calendar(self, horizon: Literal["3month", "6month", "12month"]) -> Iterator[dict[str, str]]:
        started = False
        try:
            for row in self.inner.client().earnings_calendar(horizon):
                started = True
                yield row
        except AuthError:
            if started or not self.inner.rotated():  # rows already given out are never given twice
                raise
            yield from self.inner.client().earnings_calendar(horizon)

    def overview(self, symbol: str) -> dict[str, Any] | None:
        return self.inner.call(lambda c: c.overview(symbol))

    def earnings(self, symbol: str) -> dict[str, Any] | None:
        return self.inner.call(lambda c: c.earnings(symbol))

    def statement(self, function: StatementFunction, symbol: str) -> dict[str, Any] | None:
        return self.inner.call(lambda c: c.statement(function, symbol))

    def close(self) -> None:
        self.inner.close()
