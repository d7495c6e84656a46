from __future__ import annotations

from pathlib import Path

import pytest

from pollen.errors import ConfigError
from pollen.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "POLLEN_TABLE_PREFIX",
        "POLLEN_HOME",
        "ALPACA_BASE_URL",
        "ALPHAVANTAGE_API_KEY",
        "POLLEN_SEARCH_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_contract() -> None:
    settings = load_settings()
    assert settings.region == "us-east-1"
    assert settings.table_prefix == ""
    assert settings.home == Path(".pollen")
    assert settings.dynamodb_endpoint is None
    assert settings.search_url is None
    assert settings.alphavantage_base_url == "https://www.alphavantage.co"
    assert settings.table_name("assets") == "assets"


def test_environment_is_read_under_contract_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:5000/")
    monkeypatch.setenv("POLLEN_TABLE_PREFIX", "dev-")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("POLLEN_HOME", "/tmp/somewhere")
    settings = load_settings()
    assert settings.dynamodb_endpoint == "http://127.0.0.1:5000"
    assert settings.table_name("assets") == "dev-assets"
    assert settings.region == "eu-west-2"
    assert settings.home == Path("/tmp/somewhere")


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLEN_TABLE_PREFIX", "dev-")
    assert load_settings(table_prefix="prod-").table_prefix == "prod-"
    assert load_settings(table_prefix=None).table_prefix == "dev-"


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("AWS_ENDPOINT_URL_DYNAMODB", "notaurl", "AWS_ENDPOINT_URL_DYNAMODB"),
        ("ALPACA_BASE_URL", "ftp://example", "ALPACA_BASE_URL"),
        ("POLLEN_TABLE_PREFIX", "bad prefix!", "POLLEN_TABLE_PREFIX"),
        ("POLLEN_WRITE_CONCURRENCY", "0", "POLLEN_WRITE_CONCURRENCY"),
    ],
)
def test_bad_values_give_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_secret_values_are_listed_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "av-secret-123")
    settings = load_settings()
    assert settings.secret_values() == ["av-secret-123"]
    assert "av-secret-123" not in repr(settings)
    assert "av-secret-123" not in str(settings.model_dump())
