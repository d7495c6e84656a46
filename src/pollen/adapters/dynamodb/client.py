"""botocore's own resolution of where (and how) a DynamoDB client connects, which the lean transport (:mod:`.wire`)
follows. Clients are built by :func:`pollen.aws.make_client` (re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The shared AWS helpers, under the names the DynamoDB adapter has always used.
from pollen.aws import LOCAL_CREDENTIALS, SESSION_LOCK, is_loopback, make_client

__all__ = ["LOCAL_CREDENTIALS", "SESSION_LOCK", "Endpoint", "is_loopback", "make_client", "resolve_endpoint"]


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

    with SESSION_LOCK:
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
