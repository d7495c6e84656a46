"""The process settings the entry points apply: the cycle collector's thresholds."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pollen.process import COLLECTOR_THRESHOLDS, tune_collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_the_collector_runs_less_often_but_never_more() -> None:
    gc.set_threshold(700, 10, 100)
    tune_collector()
    assert gc.get_threshold() == (COLLECTOR_THRESHOLDS[0], COLLECTOR_THRESHOLDS[1], 100)


@pytest.mark.usefixtures("thresholds")
def test_a_collector_switched_off_stays_off() -> None:
    gc.set_threshold(0)
    tune_collector()
    assert gc.get_threshold()[0] == 0


@pytest.mark.parametrize(
    ("package", "heavy_import"), [("pollen.cli", "typer"), ("pollen.handlers", "pollen.wiring")], ids=["cli", "lambda"]
)
def test_the_entry_points_tune_the_collector_before_their_imports(package: str, heavy_import: str) -> None:
    code = f"import gc, sys, {package}\nsys.stderr.write(repr((gc.get_threshold(), {heavy_import!r} in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stderr.strip().endswith(repr((COLLECTOR_THRESHOLDS, False)))
