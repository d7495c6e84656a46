"""What the product package pulls and imports: the embedded stack (moto, waitress, werkzeug) is the optional extra
pollen[local]; the jobs, the Lambda handlers and the CLI import without it, and the commands that need it say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import pollen
from pollen.local import LOCAL_EXTRA_INSTALL, LOCAL_EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = {"moto", "waitress", "werkzeug"}
#: Runs a pollen command in a fresh interpreter where the named modules cannot be imported (as if not installed).
BLOCKED_RUN = (
    "import sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "sys.argv = ['pollen', *sys.argv[2:]]\n"
    "from pollen.cli.app import main\n"
    "main()\n"
)


def run_blocked(blocked: list[str], *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POLLEN_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, ",".join(blocked), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_embedded_stack_is_only_in_the_local_extra() -> None:
    requirements = [Requirement(text) for text in metadata.requires("pollen") or []]
    local_only = [r for r in requirements if canonicalize_name(r.name) in LOCAL_ONLY]
    assert {canonicalize_name(r.name) for r in local_only} == LOCAL_ONLY
    for requirement in local_only:
        assert requirement.marker is not None, f"{requirement} is a dependency of every install"
        assert requirement.marker.evaluate({"extra": "local"}), requirement
        assert not requirement.marker.evaluate({"extra": ""}), requirement
        assert not requirement.marker.evaluate({"extra": "dev"}), requirement


def test_the_lock_inputs_mirror_the_package_and_its_local_extra() -> None:
    """./dev lock resolves requirements/*.in: runtime.in is what `pip install pollen` pulls, local.in the extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(text).name) for text in requirements}

    def lock_input(source: str) -> set[str]:
        found: set[str] = set()
        for line in (ROOT / "requirements" / source).read_text().splitlines():
            if line.startswith("-r "):
                found |= lock_input(line.removeprefix("-r ").strip())
            elif line.strip() and not line.startswith("#"):
                found.add(canonicalize_name(Requirement(line).name))
        return found

    assert lock_input("runtime.in") == names(project["dependencies"])
    assert lock_input("local.in") == names(project["optional-dependencies"]["local"]) == LOCAL_ONLY
    assert "-r local.in" in (ROOT / "requirements/dev.in").read_text().splitlines()


def product_modules() -> list[str]:
    """Every module of the package but the embedded stack itself (pollen.local's submodules) and ``__main__``."""
    package = Path(pollen.__file__).parent
    names = {
        ".".join(("pollen", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for path in package.rglob("*.py")
    }
    return sorted(name for name in names if not name.startswith("pollen.local.") and not name.endswith("__main__"))


def test_the_product_imports_without_the_local_extra() -> None:
    modules = product_modules()
    assert {"pollen.cli.app", "pollen.handlers.stream_sync", "pollen.wiring", "pollen.local"} <= set(modules)
    script = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1].split(','):\n"
        "    sys.modules[name] = None\n"
        "failed = {}\n"
        "for module in sys.argv[2].split(','):\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "    except ImportError as exc:\n"
        "        failed[module] = str(exc)\n"
        "print(json.dumps(failed))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, ",".join(LOCAL_EXTRA_MODULES), ",".join(modules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout) == {}


@pytest.mark.parametrize(
    ("command", "blocked"),
    [("demo", ["moto"]), ("local", ["moto"]), ("demo", ["werkzeug"]), ("local", list(LOCAL_EXTRA_MODULES))],
)
def test_a_command_on_the_embedded_stack_names_the_extra_when_it_is_missing(
    command: str, blocked: list[str], tmp_path: Path
) -> None:
    result = run_blocked(blocked, command, home=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pollen {command}" in lines[0]
    assert LOCAL_EXTRA_INSTALL in lines[0]
    assert all(name in lines[0] for name in blocked)


def test_the_missing_extra_is_reported_in_json_too(tmp_path: Path) -> None:
    result = run_blocked(["moto"], "demo", "--json", home=tmp_path)
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["exit_code"] == 2
    assert LOCAL_EXTRA_INSTALL in payload["error"]


def test_the_rest_of_the_cli_runs_without_the_local_extra(tmp_path: Path) -> None:
    result = run_blocked(list(LOCAL_EXTRA_MODULES), "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
