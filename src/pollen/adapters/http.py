"""What the HTTP clients share: a client-side rate limiter, status translation, key masking (the backoff is
:mod:`pollen.backoff`)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING

from pollen.errors import (
    AuthError,
    PermanentError,
    PollenError,
    QuotaExhausted,
    ThrottledError,
    TransientError,
)

if TYPE_CHECKING:
    import ssl

    import httpx

log = logging.getLogger(__name__)

#: Query parameters that carry credentials (Alpha Vantage sends its key in the URL).
_KEY_IN_URL = re.compile(r"(apikey=)[^&\s'\"]+", re.IGNORECASE)


def mask_keys(text: str) -> str:
    """Mask credentials carried in URLs (``apikey=...``)."""
    return _KEY_IN_URL.sub(r"\1***", text)


class _MaskKeysFilter(logging.Filter):
    """httpx logs every request URL at INFO; Alpha Vantage URLs carry the key. Mask it before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = mask_keys(str(record.msg))
        return True


def install_key_masking() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskKeysFilter) for f in logger.filters):
            logger.addFilter(_MaskKeysFilter())


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every upstream client shares, made once per process: httpx's default (the CA bundle of
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's). Loading a CA bundle takes about 45 ms; each
    ``httpx.Client`` made with its default loads its own."""
    import httpx

    return httpx.create_ssl_context()


class OnDemandHttp:
    """An ``httpx.Client`` made on first use, with the shared :func:`tls_context`: a command that never calls an
    API (``pollen sync assets`` never calls Alpha Vantage) never sets up its client. Thread-safe; a client handed
    in is used as it is and left open by :meth:`close`."""

    def __init__(self, client: httpx.Client | None, *, timeout_s: float) -> None:
        self._client = client
        self._owned = client is None
        self._timeout_s = timeout_s
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        client = self._client
        if client is None:
            import httpx

            with self._lock:
                if self._client is None:
                    timeout = httpx.Timeout(self._timeout_s, connect=5.0)
                    self._client = httpx.Client(timeout=timeout, verify=tls_context())
                client = self._client
        return client

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()


class RateLimiter:
    """Requests per minute (sliding window) and per UTC day, shared by every call of one client (thread-safe).

    ``acquire()`` waits for a free slot in the minute and raises QuotaExhausted when the day's budget is spent.
    """

    def __init__(
        self,
        per_minute: int,
        per_day: int,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1 or per_day < 1:
            raise ValueError("rate limits must be at least 1")
        self.per_minute = per_minute
        self.per_day = per_day
        self.window_s = window_s
        self._clock = clock
        self._today = today
        self._sleep = sleep
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._day = today()
        self._used_today = 0
        self.waited_s = 0.0

    @property
    def used_today(self) -> int:
        return self._used_today

    def acquire(self) -> None:
        while True:
            with self._lock:
                today = self._today()
                if today != self._day:
                    self._day, self._used_today = today, 0
                if self._used_today >= self.per_day:
                    raise QuotaExhausted(f"Alpha Vantage daily budget of {self.per_day} requests is used up")
                now = self._clock()
                while self._recent and now - self._recent[0] >= self.window_s:
                    self._recent.popleft()
                if len(self._recent) < self.per_minute:
                    self._recent.append(now)
                    self._used_today += 1
                    return
                wait = self.window_s - (now - self._recent[0])
            self.waited_s += wait
            self._sleep(max(wait, 0.001))


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After``, else ``X-RateLimit-Reset`` (epoch seconds)."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
    reset = headers.get("X-RateLimit-Reset") or headers.get("X-Ratelimit-Reset")
    if reset:
        try:
            return min(max(float(reset) - (now if now is not None else time.time()), 0.0), 120.0)
        except ValueError:
            pass
    return None


def error_for_status(
    status: int, service: str, headers: Mapping[str, str], *, keys: list[dict[str, str]] | None = None
) -> PollenError:
    """The pollen error for an HTTP error status (transient: 408, 425, 429, 5xx)."""
    keys = keys or []
    if status in (401, 403):
        return AuthError(f"{service} refused the credentials (HTTP {status})", keys=keys, code=str(status))
    if status == 429:
        wait = retry_after_s(headers)
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("X-Ratelimit-Remaining")
        detail = f", remaining {remaining}" if remaining is not None else ""
        return ThrottledError(f"{service} rate limit hit (HTTP 429{detail})", retry_after_s=wait, keys=keys, code="429")
    if status in (408, 425) or status >= 500:
        return TransientError(f"{service} answered HTTP {status}", keys=keys, code=str(status))
    return PermanentError(f"{service} answered HTTP {status}", keys=keys, code=str(status))
