"""What every AWS adapter shares: building a boto3 client, and translating botocore's errors into pollen's (at the
adapter edge), with messages that name the service actually called.

It sits below the adapters (it knows no adapter, job or port), so the stream poller may translate its errors too;
only the composition root (:mod:`pollen.wiring`) and the entry points build clients with :func:`make_client`.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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

if TYPE_CHECKING:
    from botocore.config import Config

#: Credentials for loopback endpoints (the embedded stack, moto) when the environment has none; never sent anywhere
#: else.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

#: botocore sessions are not thread-safe: clients (and credentials) are built from a shared session one at a time.
SESSION_LOCK = threading.RLock()

#: The services pollen calls, by botocore's name, as messages name them.
SERVICE_NAMES = {
    "dynamodb": "DynamoDB",
    "dynamodbstreams": "DynamoDB Streams",
    "sqs": "SQS",
    "secretsmanager": "Secrets Manager",
}

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


def is_loopback(url: str) -> bool:
    """Whether an endpoint URL points at this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(
    region: str, max_attempts: int, max_pool_connections: int, connect_timeout_s: float, read_timeout_s: float
) -> Config:
    from botocore.config import Config

    return Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        tcp_keepalive=True,
    )


def make_client(
    service: str = "dynamodb",
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    max_attempts: int = 1,
    max_pool_connections: int = 10,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 30.0,
    session: Any = None,
) -> Any:
    """A low-level client. Retries default to one attempt: pollen's own retry engine decides, by error kind.

    Without ``endpoint_url`` botocore resolves the endpoint as always (``AWS_ENDPOINT_URL*``, the config file, FIPS,
    dual-stack, partitions). Without credentials the client signs with :data:`LOCAL_CREDENTIALS` only when that
    endpoint is on loopback; elsewhere the first call fails with ``NoCredentialsError``."""
    config = _config(region, max_attempts, max_pool_connections, connect_timeout_s, read_timeout_s)
    import boto3  # here, not at import: a Lambda handler's cold import then skips boto3 (and s3transfer)

    session = session or boto3.session.Session()
    kwargs: dict[str, Any] = {"config": config, "region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    with SESSION_LOCK:
        client = session.client(service, **kwargs)
        if session.get_credentials() is None and is_loopback(client.meta.endpoint_url):
            client = session.client(service, **kwargs, **LOCAL_CREDENTIALS)
    return client


class MissingResource(NotFound):
    """A table, index or queue that does not exist: the job cannot run, so the CLI exits 2 (CONTRACT.md)."""

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


def translate(exc: Exception, *, service: str, keys: Sequence[Mapping[str, Any]] = (), action: str = "") -> PollenError:
    """Map a botocore exception from a call to ``service`` (``"sqs"`` or ``"SQS"``) to a PollenError (the caller
    raises it ``from exc``)."""
    if isinstance(exc, PollenError):
        return exc
    prefix = f"{action}: " if action else ""
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigError(f"{prefix}no AWS credentials or region configured ({type(exc).__name__})")
    if isinstance(exc, EndpointConnectionError):
        where = exc.kwargs.get("endpoint_url", "")
        name = SERVICE_NAMES.get(service, service)
        return ServiceUnavailable(
            f"{prefix}cannot reach {name} at {where}: {unreachable_reason(exc)}", keys=keys, code="Unreachable"
        )
    if isinstance(exc, ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError | ConnectionError):
        return TransientError(f"{prefix}{type(exc).__name__}", keys=keys, code=type(exc).__name__)
    if isinstance(exc, ClientError):
        return _client_error(exc, prefix, keys)
    return TransientError(f"{prefix}{type(exc).__name__}: {exc}"[:300], keys=keys, code=type(exc).__name__)


def _client_error(exc: ClientError, prefix: str, keys: Sequence[Mapping[str, Any]]) -> PollenError:
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
