"""Building boto3 clients for DynamoDB and DynamoDB Streams, and botocore's own resolution of where (and how) a
DynamoDB client connects, which the lean transport (:mod:`.wire`) follows."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from botocore.config import Config

# boto3 and botocore's client machinery are imported when a client is built, not with this module: a Lambda
# handler's cold import then loads neither (boto3 alone brings s3transfer).

#: Credentials for loopback endpoints (the embedded stack, moto) when the environment has none; never sent anywhere
#: else.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


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
    import boto3

    config = _config(region, max_attempts, max_pool_connections, connect_timeout_s, read_timeout_s)
    session = session or boto3.session.Session()
    kwargs: dict[str, Any] = {"config": config, "region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    client = session.client(service, **kwargs)
    if session.get_credentials() is None and is_loopback(client.meta.endpoint_url):
        client = session.client(service, **kwargs, **LOCAL_CREDENTIALS)
    return client


@dataclass(frozen=True)
class Endpoint:
    """Where and how a boto3 DynamoDB client built from the same settings connects.

    ``verify`` is botocore's TLS verification: a CA bundle path (``AWS_CA_BUNDLE``, ``ca_bundle`` in the config
    file, ``REQUESTS_CA_BUNDLE``, else botocore's default bundle) or False. ``unsupported`` says why the lean
    transport cannot connect the way boto3 would (a proxy, a client certificate), or is None."""

    url: str
    region: str
    verify: str | bool
    unsupported: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.url)


def resolve_endpoint(*, region: str, endpoint_url: str | None = None, session: Any = None) -> Endpoint:
    """Ask botocore: build a DynamoDB client (no request is sent) and read its endpoint and HTTP settings."""
    import boto3
    from botocore.httpsession import get_cert_path

    client = (session or boto3.session.Session()).client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url or None
    )
    url = str(client.meta.endpoint_url)
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    # botocore keeps these on its urllib3 session; if a botocore release moves them, play safe and use boto3.
    verify = getattr(http, "_verify", None)
    proxy_config = getattr(http, "_proxy_config", None)
    unsupported: str | None = None
    if verify is None or proxy_config is None or not hasattr(http, "_cert_file"):
        unsupported = "botocore's HTTP settings could not be read"
    elif proxy_config.proxy_url_for(url):
        unsupported = "a proxy is configured for the endpoint (HTTPS_PROXY/HTTP_PROXY)"
    elif getattr(http, "_cert_file", None):
        unsupported = "a TLS client certificate is configured"
    resolved_verify: str | bool = False if verify is False else str(get_cert_path(True if verify is None else verify))
    return Endpoint(url=url, region=str(client.meta.region_name), verify=resolved_verify, unsupported=unsupported)
