from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_pollen

pytestmark = pytest.mark.integration

SECRET = "sEcReT-4d5e6f-never-print-me"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AWS_ENDPOINT_URL_DYNAMODB", "notaurl"), ("POLLEN_TABLE_PREFIX", "no spaces allowed")],
)
def test_bad_configuration_exits_2_with_one_line(pollen_env: dict[str, str], variable: str, value: str) -> None:
    result = run_pollen("tables", "create", env={**pollen_env, variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_configuration_with_json_still_prints_one_json_object(pollen_env: dict[str, str]) -> None:
    result = run_pollen("tables", "create", "--json", env={**pollen_env, "AWS_ENDPOINT_URL_DYNAMODB": "notaurl"})
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and "AWS_ENDPOINT_URL_DYNAMODB" in payload["error"]


def test_unreachable_service_exits_2_without_traceback(pollen_env: dict[str, str]) -> None:
    env = {**pollen_env, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}
    result = run_pollen("tables", "create", env=env)
    assert result.returncode == 2
    assert "cannot reach DynamoDB" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_usage_exits_2(pollen_env: dict[str, str]) -> None:
    result = run_pollen("tables", "frobnicate", env=pollen_env)
    assert result.returncode == 2


def test_secrets_never_appear_in_output_logs_or_metrics(pollen_env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **pollen_env,
        "ALPHAVANTAGE_API_KEY": SECRET,
        "ALPACA_API_KEY_ID": SECRET + "-id",
        "ALPACA_API_SECRET_KEY": SECRET + "-key",
        "POLLEN_LOG_LEVEL": "DEBUG",
    }
    ok = run_pollen("tables", "create", "--json", env=env)
    failing = run_pollen("tables", "create", env={**env, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"})
    assert ok.returncode == 0 and failing.returncode == 2
    assert ok.stderr.strip(), "DEBUG logging should have produced log lines to check"
    home = Path(env["POLLEN_HOME"])
    written = "".join(p.read_text() for p in home.rglob("*") if p.is_file())
    for text in (ok.stdout, ok.stderr, failing.stdout, failing.stderr, written):
        assert SECRET not in text
