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


def _items_file(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text('{"symbol": "IBM", "fiscalPeriod": "ANNUAL#2025-12-31", "x": 1}\n')
    return path


def _retries_recorded(env: dict[str, str]) -> bool:
    metrics = Path(env["POLLEN_HOME"]) / "metrics.jsonl"
    return metrics.exists() and "DynamoRetries" in metrics.read_text()


@pytest.mark.parametrize(
    ("dynamodb_url", "reason"),
    [
        ("http://127.0.0.1:9", "connection refused"),
        ("http://dynamodb.pollen-test.invalid:8000", "unknown host"),
        (None, "unknown host"),  # AWS's endpoint for a region that does not exist
    ],
    ids=["refused", "unknown host", "unknown region"],
)
def test_a_job_that_cannot_reach_dynamodb_exits_2_with_one_line_without_retrying(
    pollen_env: dict[str, str], tmp_path: Path, dynamodb_url: str | None, reason: str
) -> None:
    env = {**pollen_env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url or ""}
    if dynamodb_url is None:
        env.update(AWS_REGION="xx-nowhere-1", AWS_DEFAULT_REGION="xx-nowhere-1")
        env.pop("AWS_ENDPOINT_URL_DYNAMODB")
        env.pop("AWS_ENDPOINT_URL", None)
    result = run_pollen("load", "earnings", str(_items_file(tmp_path)), env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach DynamoDB" in lines[0] and reason in lines[0], result.stderr
    assert not _retries_recorded(env)


@pytest.mark.parametrize(
    ("command", "table", "message"),
    [
        ("load", "noSuchTable", "does not exist"),
        ("export", "noSuchTable", "does not exist"),
        ("load", "earnings", "does not exist"),  # pollen's own table, never created
        ("load", "bad name!", "illegal table name"),
        ("export", "x/y", "illegal table name"),
    ],
)
def test_a_job_without_its_table_exits_2_with_one_line(
    pollen_env: dict[str, str], tmp_path: Path, command: str, table: str, message: str
) -> None:
    file = _items_file(tmp_path) if command == "load" else tmp_path / "out.jsonl"
    result = run_pollen(command, table, str(file), "--json", env=pollen_env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    assert not _retries_recorded(pollen_env)
