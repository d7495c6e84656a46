"""Translation of botocore errors into pollen's errors, at the adapter edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from pollen.errors import (
    ConfigError,
    NotFound,
    PermanentError,
    PollenError,
    ServiceUnavailable,
    ThrottledError,
    TransientError,
)

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "InternalFailure", "TransactionInProgressException"}
)


class MissingResource(NotFound):
    """A table (or index) that does not exist: the job cannot run, so the CLI exits 2 (CONTRACT.md)."""

    exit_code = 2


#: How botocore and the lean transport word the two usual reasons for not reaching an endpoint.
_UNREACHABLE_REASONS = (
    ("connection refused", "connection refused"),
    ("name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("getaddrinfo failed", "unknown host"),
    ("unknown host", "unknown host"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("certificate", "TLS certificate not trusted"),
)


def unreachable_reason(exc: EndpointConnectionError) -> str:
    text = str(exc.kwargs.get("error", "")).lower()
    return next((reason for phrase, reason in _UNREACHABLE_REASONS if phrase in text), "unreachable")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def translate(exc: Exception, *, keys: Sequence[Mapping[str, Any]] = (), action: str = "") -> PollenError:
    """Map a botocore exception to a PollenError (the caller raises it ``from exc``)."""
    prefix = f"{action}: " if action else ""
    if isinstance(exc, PollenError):
        return exc
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigError(f"{prefix}no AWS credentials or region configured ({type(exc).__name__})")
    if isinstance(exc, EndpointConnectionError):
        where = exc.kwargs.get("endpoint_url", "")
        return ServiceUnavailable(
            f"{prefix}cannot reach DynamoDB at {where}: {unreachable_reason(exc)}", keys=keys, code="Unreachable"
        )
    if isinstance(exc, ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError | ConnectionError):
        return TransientError(f"{prefix}{type(exc).__name__}", keys=keys, code=type(exc).__name__)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
        text = f"{prefix}{code}: {message}" if message else f"{prefix}{code}"
        if code in THROTTLING_CODES:
            return ThrottledError(text, keys=keys, code=code)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(text, keys=keys, code=code)
        if code == "ResourceNotFoundException":
            return MissingResource(text, keys=keys, code=code)
        return PermanentError(text, keys=keys, code=code)
    return TransientError(f"{prefix}{type(exc).__name__}: {exc}"[:300], keys=keys, code=type(exc).__name__)
