"""The process settings the entry points apply: the cycle collector's thresholds, and no final collections of what
a finished command leaves alive."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pollen.process import (
    COLLECTOR_THRESHOLDS,
    PYDANTIC_PLUGINS_VARIABLE,
    skip_final_collections,
    tune_collector,
)


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


def test_skipping_the_final_collections_keeps_every_object_alive_and_out_of_the_collectors_reach() -> None:
    kept: list[object] = [{"symbol": "AAPL"}]
    kept.append(kept)  # a cycle: only a collection could free it
    assert any(tracked is kept for tracked in gc.get_objects())
    try:
        skip_final_collections()
        assert not any(tracked is kept for tracked in gc.get_objects())  # no generation holds it any more
        gc.collect()
        assert kept[1] is kept
        assert kept[0] == {"symbol": "AAPL"}
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("argv", [["--help"], ["no-such-command"]], ids=["succeeds", "fails"])
def test_the_pollen_command_skips_the_final_collections_when_it_ends(argv: list[str]) -> None:
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: sys.stderr.write(f'frozen={gc.get_freeze_count()}'))\n"
        "from pollen.cli.app import main\n"
        f"sys.argv = ['pollen', *{argv!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    frozen = int(done.stderr.rsplit("frozen=", 1)[1])
    assert frozen > 10_000  # the command's modules and objects, frozen after it ran, whether it succeeded or not
    assert done.returncode == (0 if argv == ["--help"] else 2)


#: Imports an entry point, builds a model, and says whether pydantic looked for plugins (its cache stays None if not).
_PLUGIN_PROBE = """
import sys, {package}
from pydantic import BaseModel
import pydantic.plugin._loader as loader
class Probe(BaseModel):
    value: int
Probe(value=1)
sys.stderr.write("searched" if loader._plugins is not None else "skipped")
"""


@pytest.mark.parametrize("package", ["pollen.cli", "pollen.handlers"], ids=["cli", "lambda"])
@pytest.mark.parametrize(("preset", "expected"), [(None, "skipped"), ("", "searched")], ids=["default", "user-set"])
def test_the_entry_points_skip_pydantic_plugin_discovery_unless_the_user_set_it(
    package: str, preset: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != PYDANTIC_PLUGINS_VARIABLE}
    if preset is not None:
        env[PYDANTIC_PLUGINS_VARIABLE] = preset
    code = _PLUGIN_PROBE.format(package=package)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env)
    assert done.stderr.strip().endswith(expected)
