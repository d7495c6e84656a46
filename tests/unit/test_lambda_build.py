"""How the Lambda artifacts are built (lambda/build.mk through template.yaml) and what a handler's cold import loads.

The harness tier (tests/lambdas) builds and runs the artifacts; these checks run without sam or python3.13."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lambdas import harness

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ("sync_assets", "sync_earnings", "schedule_pollenation", "pollenate", "stream_sync")


def _built_by_make(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical: resource
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function" or logical == "AlpacaLayer"
    }


@pytest.mark.parametrize("text", ["arm64", "x86_64"], ids=["template", "harness x86_64 copy"])
def test_every_function_and_the_alpaca_layer_build_for_their_own_architecture(text: str) -> None:
    source = harness.TEMPLATE.read_text()
    template = yaml.load(source if text == "arm64" else harness.x86_64_template(source), Loader=harness._CfnLoader)
    default = template["Globals"]["Function"]["Architectures"]
    for logical, resource in _built_by_make(template).items():
        metadata = resource.get("Metadata", {})
        assert metadata.get("BuildMethod") == "makefile", logical
        architectures = resource["Properties"].get("Architectures", default)
        if logical == "AlpacaLayer":
            architectures = [metadata["BuildArchitecture"]]
        assert metadata["ContextPath"] == f"lambda/{architectures[0]}", logical
        makefile = (ROOT / metadata["ContextPath"] / "Makefile").read_text()
        assert re.search(rf"^LAMBDA_ARCH = {architectures[0]}$", makefile, re.M), logical
        assert re.search(rf"\b{logical}\b", (ROOT / "lambda/build.mk").read_text()), f"no make target for {logical}"


def test_the_build_compiles_with_unchecked_hashes_by_python313() -> None:
    for makefile in (ROOT / "lambda/build.mk", ROOT / "layers/opensearch/Makefile"):
        text = makefile.read_text()
        assert "compileall" in text and "--invalidation-mode unchecked-hash" in text, makefile
        assert "PYTHON ?= python3.13" in text and "(3, 13)" in text, makefile


def _cold_import(module: str) -> set[str]:
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_handler_cold_import_loads_only_what_its_module_needs(handler: str) -> None:
    """boto3 (with s3transfer) loads when a client is built, Alpaca's client only for SyncAssets' first build, the
    status collector only when the scheduler builds it: none of them with the handler's module."""
    loaded = _cold_import(f"pollen.handlers.{handler}")
    assert not {"boto3", "s3transfer", "botocore.session", "botocore.client"} & loaded
    assert not {"pollen.adapters.alpaca", "pollen.adapters.status", "pollen.jobs.status", "alpaca"} & loaded
