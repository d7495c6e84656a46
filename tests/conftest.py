"""Shared fixtures: one moto server per test process, reached over HTTP exactly as a user's boto3 would."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.local.stack import MotoServer
from pollen.observability import forget_secrets

# Tests never reach AWS: dummy credentials, a fixed region, and streams through explicit endpoints.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
for _var in (
    "POLLEN_SECRET_ID",
    "POLLEN_TABLE_PREFIX",
    "POLLEN_SEARCH_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
):
    os.environ.pop(_var, None)


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Iterator[None]:
    """Redaction values are process-wide (a warm Lambda container keeps them); tests start without any."""
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def endpoint(moto_server: MotoServer) -> str:
    return moto_server.endpoint


@pytest.fixture
def dynamodb(endpoint: str) -> Any:
    return make_client("dynamodb", endpoint_url=endpoint)


@pytest.fixture
def streams(endpoint: str) -> Any:
    return make_client("dynamodbstreams", endpoint_url=endpoint)


@pytest.fixture
def table_prefix() -> str:
    """A fresh prefix per test, so tests share one server without seeing each other's tables."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def pollen_env(endpoint: str, table_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `pollen` command against the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "ALPACA_", "ALPHAVANTAGE_"))}
    env.update(
        {
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint,
            "AWS_REGION": "us-east-1",
            "POLLEN_TABLE_PREFIX": table_prefix,
            "POLLEN_HOME": str(tmp_path / "home"),
        }
    )
    return env


def run_pollen(
    *args: str, env: Mapping[str, str], timeout: float = 120, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command line in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pollen", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )
