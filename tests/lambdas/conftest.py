"""Fixtures of the Lambda harness tier (marker ``aws_lambda``): built artifacts, the runtime, the stack on moto and
the simulator, and warm containers. See harness.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pollen.local.simulator.server import SimulatorProcess
from tests.conftest import moto_server
from tests.lambdas import harness
from tests.standins.opensearch import OpenSearchStandIn


@pytest.fixture(scope="session")
def lambda_tools() -> tuple[str, str]:
    return harness.require_tools()


@pytest.fixture(scope="session")
def build_dir(lambda_tools: tuple[str, str]) -> Path:
    python313, sam = lambda_tools
    return harness.build_artifacts(sam, python313)


@pytest.fixture(scope="session")
def lambda_runtime(lambda_tools: tuple[str, str]) -> Path:
    return harness.runtime_venv(lambda_tools[0])


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=150) as server:
        yield server


@pytest.fixture(scope="module")
def secret_value(simulator: SimulatorProcess) -> dict[str, str]:
    """The API keys, as a user puts them in the stack's secret (the simulator accepts exactly these)."""
    env = simulator.environment()
    return {key: env[key] for key in ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "ALPHAVANTAGE_API_KEY")}


@pytest.fixture(scope="module")
def opensearch() -> Iterator[OpenSearchStandIn]:
    """An IAM-protected OpenSearch domain's stand-in: it accepts only requests signed (SigV4, service ``es``) with
    the credentials the harness gives the functions."""
    with OpenSearchStandIn(
        region=harness.REGION, access_key=harness.ACCESS_KEY_ID, secret_key=harness.SECRET_ACCESS_KEY
    ) as domain:
        yield domain


@pytest.fixture(scope="module")
def search_endpoint(opensearch: OpenSearchStandIn) -> str | None:
    """The stack's OpenSearchEndpoint parameter: the signature-checking stand-in (None: the template's default, an
    empty endpoint, which leaves stream sync out of the stack)."""
    return opensearch.url


@pytest.fixture(scope="module")
def aws(secret_value: dict[str, str], search_endpoint: str | None) -> Iterator[harness.StackResources]:
    """moto's server (DynamoDB, Streams, SQS, Secrets Manager) with the stack's resources from template.yaml."""
    with moto_server() as server:
        parameters: dict[str, Any] = {"OpenSearchEndpoint": search_endpoint} if search_endpoint else {}
        stack = harness.StackResources(harness.load_template(), server.endpoint, secret_value, parameters)
        yield stack.create()


@pytest.fixture
def container(
    build_dir: Path,
    lambda_runtime: Path,
    aws: harness.StackResources,
    simulator: SimulatorProcess,
    tmp_path: Path,
) -> Iterator[Callable[..., harness.LambdaContainer]]:
    """Starts warm containers of the template's functions (``env`` overrides variables, e.g. an endpoint through a
    fault proxy); stops them (and checks they wrote only to /tmp)."""
    started: list[harness.LambdaContainer] = []
    upstream = simulator.environment()

    def start(logical: str, env: Mapping[str, str] | None = None) -> harness.LambdaContainer:
        endpoints = {
            f"AWS_ENDPOINT_URL_{service}": aws.endpoint
            for service in ("DYNAMODB", "DYNAMODB_STREAMS", "SQS", "SECRETS_MANAGER")
        }
        extra = {
            **endpoints,
            # Only the API base URLs: the keys come from the secret, as in AWS.
            **{key: upstream[key] for key in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPHAVANTAGE_BASE_URL")},
            "POLLEN_LOG_LEVEL": "DEBUG",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            **(env or {}),
        }
        box = harness.LambdaContainer(
            logical=logical,
            build_dir=build_dir,
            runtime=lambda_runtime,
            stack=aws,
            tmp=tmp_path / f"{logical}-{len(started)}",
            extra_env=extra,
        )
        started.append(box.start())
        return box

    yield start
    for box in started:
        box.stop()
    for box in started:
        assert box.writes_outside_tmp() == [], f"{box.logical} wrote outside /tmp"
