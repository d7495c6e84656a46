"""Shared fixtures: one moto server per test process, reached over HTTP exactly as a user's boto3 would.

``POLLEN_TEST_STOCK_MOTO=1`` runs the same tests against moto's DynamoDB as released, without pollen's speed-ups
(:mod:`pollen.local.motopatch`): every moto server the tests start is then stock, those that ``pollen demo`` and
``pollen local`` start included. The speed-ups change no response (tests/integration/test_motopatch_differential.py),
so every test must pass either way; only the time differs (``python -m bench bench_suite`` measures it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from pollen.adapters.dynamodb.client import make_client
from pollen.local.stack import EmbeddedStack, MotoServer
from pollen.observability import forget_secrets

#: ``pytest --hypothesis-profile=nightly``: the thorough run (ten times hypothesis's default of examples per property,
#: and each test's own nightly count, see :func:`examples`); the suite's default profile keeps ``./dev test`` quick.
NIGHTLY = "nightly"
#: No property test has a per-example time limit: hypothesis's default (200 ms) is a wall-clock assertion that a
#: loaded machine breaks (a domain property failed that way with one core busy), and no test asserts a time.
SUITE = "suite"
settings.register_profile(SUITE, deadline=None)
settings.register_profile(NIGHTLY, max_examples=1_000, deadline=None)
if settings.get_current_profile_name() == "default":  # not one chosen with --hypothesis-profile
    settings.load_profile(SUITE)


def examples(suite: int, nightly: int) -> int:
    """A property test's ``max_examples``: ``suite`` in the everyday run, ``nightly`` under the nightly profile (read
    when the test module is imported, after pytest has loaded the profile)."""
    return nightly if settings.get_current_profile_name() == NIGHTLY else suite


#: Whether the tests' moto servers run stock moto (see the module's docstring).
STOCK_MOTO = os.environ.get("POLLEN_TEST_STOCK_MOTO", "") == "1"

#: Runs ``pollen`` with every moto server it starts stock (``pollen demo`` and ``pollen local`` start their own).
_STOCK_POLLEN = """
import sys
from pollen.local import stack
command = stack.MotoServer.command
stack.MotoServer.command = lambda self: [*command(self), "--stock"]
from pollen.cli.app import main
sys.argv[0] = "pollen"
main()
"""


#: Stock moto answers large tables several times slower (issue 15: Scan 4-8x, Query 9-100x): in stock mode each test
#: gets this many times its time limit, so that a comparison run measures the tests instead of ending them.
STOCK_TIMEOUT_FACTOR = 6


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not STOCK_MOTO:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0]) if marker is not None and marker.args else default
        if limit > 0:
            item.add_marker(pytest.mark.timeout(limit * STOCK_TIMEOUT_FACTOR), append=False)


def moto_server(**options: Any) -> MotoServer:
    """A moto server as the tests run it: stock under ``POLLEN_TEST_STOCK_MOTO=1``, else with pollen's speed-ups."""
    return MotoServer(stock=STOCK_MOTO, **options)


def embedded_stack(**options: Any) -> EmbeddedStack:
    """pollen's embedded stack (not yet started), its moto server stock under ``POLLEN_TEST_STOCK_MOTO=1``."""
    stack = EmbeddedStack(**options)
    stack.dynamodb.stock = STOCK_MOTO
    return stack


def pollen_command(*args: str) -> list[str]:
    """The command line that runs ``pollen *args`` in a child process, on stock moto in stock mode."""
    if STOCK_MOTO and args and args[0] in ("demo", "local"):
        return [sys.executable, "-c", _STOCK_POLLEN, *args]
    return [sys.executable, "-m", "pollen", *args]


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
def shared_moto_server() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def endpoint(shared_moto_server: MotoServer) -> str:
    return shared_moto_server.endpoint


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
        pollen_command(*args),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )
