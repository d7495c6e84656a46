"""`pollen` starts with what the command needs (issue 15): every process imports all the command modules to build
the command tree, so they import their jobs, adapters, settings and rich widgets where a command runs. These tests
pin which modules a fresh interpreter holds after importing the app, after `--help`, and after a command, so that an
eager import cannot come back unnoticed. They assert modules, not times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs ``pollen ARGS...`` in this interpreter (as ``python -m pollen`` does) and writes the imported modules' names,
#: as a JSON list, to the file named by the first argument when the process exits. With ``--stub`` first, the
#: adapters the query commands build are replaced by empty stand-ins, so that the command runs without a server and
#: what it imports is the CLI's own doing.
RUN_AND_LIST_MODULES = """
import atexit, json, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
if args[:1] == ["--stub"]:
    args = args[1:]
    from pollen import wiring

    class Empty:
        def query(self, *args, **kwargs):
            return iter(())

        def search(self, *args, **kwargs):
            return []

        def close(self):
            pass

    wiring.build_store = lambda *args, **kwargs: Empty()
    wiring.build_search_index = lambda *args, **kwargs: Empty()
sys.argv = ["pollen", *args]
runpy.run_module("pollen", run_name="__main__", alter_sys=True)
"""

#: What no command needs before it runs: the AWS SDK, the store, the jobs and streams, the upstream and index
#: clients, settings, Powertools (logging and metrics), rich's progress bars.
HEAVY = (
    "boto3",
    "botocore",
    "pollen.adapters.dynamodb.store",
    "pollen.adapters.dynamodb.dispatch",
    "pollen.adapters.alpaca",
    "pollen.adapters.search",
    "pollen.jobs",
    "pollen.streams",
    "pollen.settings",
    "pollen.observability",
    "pydantic_settings",
    "aws_lambda_powertools",
    "rich.progress",
    "httpx",
    "opensearchpy",
    "alpaca",
    "moto",
)
#: Typer itself builds its parameter converters with pydantic once a command's options are parsed; only the bare
#: import and the top-level help go without it.
HEAVY_BEFORE_PARSING = (*HEAVY, "pydantic", "pollen.report", "pollen.ports", "rich")
#: What a query command (`pollen assets`, `pollen earnings`, `pollen search`) does not use.
NOT_FOR_QUERIES = (
    "boto3",
    "pollen.adapters.alpaca",
    "pollen.adapters.alphavantage",
    "pollen.adapters.deadletters",
    "pollen.jobs.sync_assets",
    "pollen.jobs.pollenate",
    "pollen.jobs.scheduler",
    "pollen.jobs.check",
    "pollen.jobs.status",
    "pollen.jobs.pipeline",
    "pollen.streams",
    "rich.progress",
    "httpx",
    "opensearchpy",
    "alpaca",
    "moto",
)


def imported_by(args: list[str], tmp_path: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    listing = tmp_path / "modules.json"
    env = {**os.environ, "POLLEN_HOME": str(tmp_path / "home"), "POLLEN_TABLE_PREFIX": "", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    modules: list[str] = json.loads(listing.read_text())
    return modules, done


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_importing_the_cli_app_imports_no_job_adapter_settings_or_rich() -> None:
    script = "import json, sys\nimport pollen.cli.app\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert loaded(json.loads(done.stdout), HEAVY_BEFORE_PARSING) == []


def test_the_top_level_help_imports_no_job_adapter_settings_or_pydantic(tmp_path: Path) -> None:
    modules, done = imported_by(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sync" in done.stdout and "dead-letters" in done.stdout  # the whole command tree is listed
    assert loaded(modules, (*HEAVY, "pydantic")) == []


@pytest.mark.parametrize(
    "command",
    # Every command module is imported by every process (the app test covers their imports); these add typer's
    # parsing of the options up to the help.
    [["sync", "assets"], ["load"], ["dead-letters", "replay"], ["status"]],
    ids=" ".join,
)
def test_a_command_help_imports_none_of_what_the_command_runs_with(command: list[str], tmp_path: Path) -> None:
    modules, done = imported_by([*command, "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--json" in done.stdout
    assert loaded(modules, HEAVY) == []


@pytest.mark.parametrize(
    "command", [["assets", "--json"], ["earnings", "--json"], ["search", "bank", "--json"]], ids=lambda c: c[0]
)
def test_a_query_command_imports_no_job_stream_or_upstream_client(command: list[str], tmp_path: Path) -> None:
    modules, done = imported_by(["--stub", *command], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert loaded(modules, NOT_FOR_QUERIES) == []
