"""What sam build put in each function's artifact (and its layers): no test tool or stand-in anywhere, alpaca-py
and its data stack only where Alpaca is called, every other function lean, and no heavy import at cold start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lambdas import harness
from tests.lambdas.harness import LambdaContainer

pytestmark = [pytest.mark.aws_lambda, pytest.mark.timeout(1800)]

FUNCTIONS = (
    "SyncAssetsFunction",
    "SyncEarningsFunction",
    "SchedulePollenationFunction",
    "PollenateFunction",
    "StreamSyncFunction",
)
#: Test tools and local stand-ins: never deployed.
TEST_TOOLS = {"moto", "werkzeug", "waitress", "flask", "pytest", "_pytest", "hypothesis", "responses"}
#: alpaca-py's stack: only SyncAssets carries it.
ALPACA_STACK = {"alpaca", "numpy", "pandas"}
LEAN_LIMIT_BYTES = 40 * 1024 * 1024


def layer_dirs(build_dir: Path, logical: str) -> list[Path]:
    props = harness.load_template()["Resources"][logical]["Properties"]
    return [build_dir / layer["Ref"] for layer in props.get("Layers", [])]


def top_level(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for root in (path, path / "python"):
            if root.is_dir():
                names |= {entry.name.removesuffix(".py") for entry in root.iterdir()}
    return names


def test_the_template_functions_are_the_ones_checked() -> None:
    resources = harness.load_template()["Resources"]
    assert {k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"} == set(FUNCTIONS)


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_artifacts_hold_no_test_tool_and_only_sync_assets_holds_alpaca(build_dir: Path, logical: str) -> None:
    names = top_level([build_dir / logical, *layer_dirs(build_dir, logical)])
    assert "pollen" in names
    assert not names & TEST_TOOLS, f"{logical}: {sorted(names & TEST_TOOLS)}"
    assert not {"grpc", "google"} & names, f"{logical} carries gRPC/protobuf"
    assert not {"boto3", "botocore"} & names, f"{logical}: boto3 comes with the runtime"
    if logical == "SyncAssetsFunction":
        assert names >= ALPACA_STACK
    else:
        assert not names & ALPACA_STACK, f"{logical}: {sorted(names & ALPACA_STACK)}"
        size = sum(harness.artifact_size(p) for p in [build_dir / logical, *layer_dirs(build_dir, logical)])
        assert size <= LEAN_LIMIT_BYTES, f"{logical}: {size / 2**20:.1f} MiB unzipped"


def test_cold_imports_load_no_heavy_package(container: Callable[[str], LambdaContainer]) -> None:
    """A handler module imports only what every invocation needs: alpaca-py (and its pandas, numpy, requests) and
    opensearch-py load when a client first calls them."""
    for logical in FUNCTIONS:
        box = container(logical)
        heavy = box.imported_packages & (ALPACA_STACK | {"requests", "opensearchpy", "grpc"})
        assert not heavy, f"{logical} imports {sorted(heavy)} at cold start"


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_module_ships_python313_bytecode_that_needs_no_source_check(build_dir: Path, logical: str) -> None:
    """/var/task is read-only: a module without bytecode is compiled at every cold start. Unchecked-hash pycs
    (PEP 552 flags 0b01) are used whatever the files' mtimes in the zip."""
    missing, checked = [], []
    for root in [build_dir / logical, *layer_dirs(build_dir, logical)]:
        for source in root.rglob("*.py"):
            pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
            if not pyc.is_file():
                missing.append(str(source.relative_to(root)))
            elif int.from_bytes(pyc.read_bytes()[4:8], "little") != 0b01:
                checked.append(str(pyc.relative_to(root)))
    assert not missing, f"{logical}: {len(missing)} modules without bytecode, e.g. {missing[:5]}"
    assert not checked, f"{logical}: bytecode that is not unchecked-hash, e.g. {checked[:5]}"
