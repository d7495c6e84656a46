"""Building boto3 clients for DynamoDB and DynamoDB Streams."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

#: Credentials for local endpoints (moto) when the environment has none; never used against AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def make_client(
    service: str = "dynamodb",
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    max_attempts: int = 1,
    max_pool_connections: int = 10,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 30.0,
) -> Any:
    """A low-level client. Retries default to one attempt: pollen's own retry engine decides, by error kind."""
    config = Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()
    kwargs: dict[str, Any] = {"config": config, "region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        if session.get_credentials() is None:
            kwargs.update(LOCAL_CREDENTIALS)
    return session.client(service, **kwargs)
