"""One root exception for pollen.

Whether an error is worth retrying is a property of the error (`transient`), not of the code that
catches it: retry loops ask the error. Adapters translate boto/HTTP errors into these at their edge
(``raise ... from exc``) and attach the keys involved, so a report can name them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class PollenError(Exception):
    """Root of every error pollen raises on purpose."""

    transient: bool = False
    #: Exit status the CLI uses when this error ends a command (CONTRACT.md: 1 partial failure, 2 usage/config/service).
    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        keys: Sequence[Mapping[str, Any]] = (),
        code: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.keys = list(keys)
        self.code = code
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


class TransientError(PollenError):
    """Worth retrying: throttling, 5xx, timeouts, connection resets."""

    transient = True


class DeadLettersLost(TransientError):
    """Dead letters that no durable place took: the invocation must fail, so that its source retries it. Jobs that
    report other write failures and carry on let this one through."""


class PermanentError(PollenError):
    """Retrying will not help: validation failures, missing resources, bad data."""

    transient = False


class ConfigError(PermanentError):
    """Bad configuration or usage."""

    exit_code = 2


class AuthError(PermanentError):
    """An upstream service refused our credentials."""

    exit_code = 2


class ServiceUnavailable(TransientError):
    """A service could not be reached at all (connection refused, DNS failure)."""

    exit_code = 2


class ThrottledError(TransientError):
    """The service asked us to slow down."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class QuotaExhausted(PermanentError):
    """A quota is used up for longer than a run can wait (e.g. Alpha Vantage's daily limit)."""


class InvalidRecord(PermanentError):
    """One input record failed validation; it is counted and skipped, never fatal to a job."""


class NotFound(PermanentError):
    """The requested record does not exist upstream."""


class LeaseHeld(PermanentError):
    """Another run of the same job holds the lease."""


class LeaseBlocked(TransientError):
    """A write refused because a job's lease is held: an asset's sort-key move while SyncAssets (or a repair) runs.
    Worth another try: it goes through once the lease is released or has expired. ``job``: the lease's job."""

    def __init__(self, message: str, *, job: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job


class DeadlineExceeded(PollenError):
    """The run reached its deadline before finishing; what is left is reported."""
