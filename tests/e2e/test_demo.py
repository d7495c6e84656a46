"""`pollen demo` end to end, as a user runs it (a small market, to keep the suite quick)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_pollen

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_demo_runs_the_whole_pipeline_and_reports_it(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "ALPACA_", "ALPHAVANTAGE_", "AWS_ENDPOINT"))
    }
    env["POLLEN_HOME"] = str(tmp_path)
    result = run_pollen("demo", "--json", "--assets", "600", "--pollenate", "3", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True
    steps = {step["step"]: step for step in report["steps"]}
    assert list(steps) == ["sync assets", "sync earnings", "pollenate next 3", "stream sync"]
    assert steps["sync assets"]["written"] > 400
    assert steps["sync earnings"]["written"] > 100
    assert steps["pollenate next 3"]["details"]["pollenated"] == 3
    # Every asset, calendar entry and overview written was mirrored into the search index.
    assert steps["stream sync"]["written"] >= steps["sync assets"]["written"] + steps["sync earnings"]["written"]
    assert steps["sync assets"]["write_units"] >= steps["sync assets"]["written"]
    assert report["consistency"]
