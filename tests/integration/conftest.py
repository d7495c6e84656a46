"""Integration fixtures: the store tests run once per DynamoDB transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import store_support


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module.startswith("test_store") and "store_transport" in metafunc.fixturenames:
        metafunc.parametrize("store_transport", store_support.TRANSPORTS, indirect=True)


@pytest.fixture(autouse=True)
def store_transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport of the stores a test builds with ``store_support.make_store`` (wire outside the store tests)."""
    transport = str(getattr(request, "param", "wire"))
    store_support.current_transport = transport
    yield transport
    store_support.current_transport = "wire"
