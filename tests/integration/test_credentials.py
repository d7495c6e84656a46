from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest

from pollen.adapters.credentials import Credentials
from pollen.adapters.dynamodb.client import make_client
from pollen.errors import AuthError, ConfigError, PollenError, QuotaExhausted
from pollen.local.simulator import Simulator
from pollen.observability import MemorySink, MetricsRecorder, configure_logging
from pollen.settings import Settings, load_settings
from pollen.wiring import build_sources, credential_source, secrets_provider

pytestmark = pytest.mark.integration


def resolve_credentials(settings: Settings) -> Credentials:
    """The credentials as the wiring resolves them (Secrets Manager when a secret is named)."""
    return credential_source(settings).current()


def make_secret(endpoint: str, value: Any) -> str:
    name = f"pollen/{uuid.uuid4().hex}"
    client = make_client("secretsmanager", endpoint_url=endpoint)
    client.create_secret(Name=name, SecretString=value if isinstance(value, str) else json.dumps(value))
    return name


def test_the_secret_wins_over_the_environment_and_is_cached(endpoint: str) -> None:
    name = make_secret(
        endpoint,
        {"ALPACA_API_KEY_ID": "sm-key", "ALPACA_API_SECRET_KEY": "sm-secret", "ALPHAVANTAGE_API_KEY": "sm-av"},
    )
    settings = load_settings(
        secret_id=name, secrets_endpoint=endpoint, alpaca_key_id="env-key", alphavantage_api_key="env-av"
    )
    credentials = resolve_credentials(settings)
    assert credentials.source == "secrets-manager"
    assert credentials.values() == ["sm-key", "sm-secret", "sm-av"]
    assert "sm-secret" not in repr(credentials)
    # cached by Powertools: a second resolve does not need Secrets Manager
    make_client("secretsmanager", endpoint_url=endpoint).delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert resolve_credentials(settings).values() == ["sm-key", "sm-secret", "sm-av"]


def test_keys_missing_from_the_secret_fall_back_to_the_environment(endpoint: str) -> None:
    name = make_secret(endpoint, {"ALPHAVANTAGE_API_KEY": "sm-av"})
    settings = load_settings(secret_id=name, secrets_endpoint=endpoint, alpaca_key_id="env-key")
    credentials = resolve_credentials(settings)
    assert credentials.alpaca_key_id is not None and credentials.alpaca_key_id.get_secret_value() == "env-key"
    assert credentials.alphavantage_api_key is not None
    assert credentials.alphavantage_api_key.get_secret_value() == "sm-av"


def test_without_a_secret_id_the_environment_is_used() -> None:
    credentials = resolve_credentials(load_settings(alpaca_key_id="k", alpaca_secret_key="s"))
    assert credentials.source == "environment" and credentials.values() == ["k", "s"]


def test_a_missing_secret_is_a_config_error(endpoint: str) -> None:
    settings = load_settings(secret_id="pollen/does-not-exist", secrets_endpoint=endpoint)
    with pytest.raises(ConfigError, match="does not exist") as caught:
        resolve_credentials(settings)
    assert caught.value.exit_code == 2


def test_a_secret_that_is_not_json_is_reported_without_its_value(endpoint: str) -> None:
    name = make_secret(endpoint, "plain-text-secret-value")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(load_settings(secret_id=name, secrets_endpoint=endpoint))
    assert "plain-text-secret-value" not in str(caught.value)


def test_secret_values_never_reach_logs_errors_or_metrics(endpoint: str) -> None:
    values = {
        "ALPACA_API_KEY_ID": "sekrit-alpaca-id-1",
        "ALPACA_API_SECRET_KEY": "sekrit-alpaca-secret-2",
        "ALPHAVANTAGE_API_KEY": "sekrit-av-key-3",
    }
    name = make_secret(endpoint, values)
    stream = io.StringIO()
    everything = io.StringIO()
    root_handler = logging.StreamHandler(everything)  # what a Lambda runtime's root handler would see
    logging.getLogger().addHandler(root_handler)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    sink = MemorySink()
    metrics = MetricsRecorder(sink)
    errors: list[str] = []
    try:
        with Simulator(
            asset_count=500,
            alpaca_key_id=values["ALPACA_API_KEY_ID"],
            alpaca_secret_key=values["ALPACA_API_SECRET_KEY"],
            alphavantage_api_key=values["ALPHAVANTAGE_API_KEY"],
            alphavantage_per_day=2,
        ) as sim:
            env = sim.environment()
            settings = load_settings(
                secret_id=name,
                secrets_endpoint=endpoint,
                alpaca_base_url=env["ALPACA_BASE_URL"],
                alpaca_data_url=env["ALPACA_DATA_URL"],
                alphavantage_base_url=env["ALPHAVANTAGE_BASE_URL"],
                log_level="DEBUG",
            )
            configure_logging(level="DEBUG", stream=stream, secrets=settings.secret_values())
            logging.getLogger("pollen.test").debug("settings", extra={"settings": settings.model_dump(mode="json")})
            alpaca, alphavantage = build_sources(settings, metrics)
            assert alpaca.active_assets()
            assert alpaca.daily_volumes(["AAPL", "IBM"])
            assert alphavantage.overview("IBM")
            assert list(alphavantage.earnings_calendar("3month"))
            with pytest.raises(QuotaExhausted) as quota:  # the real daily message echoes the key
                alphavantage.earnings("IBM")
            errors.append(str(quota.value))
            sim.configure(alpaca_secret_key="rotated")
            with pytest.raises(AuthError) as auth:
                alpaca.active_assets()
            errors.append(str(auth.value))
            sim.configure(malformed_rate=1.0, alphavantage_per_day=100)
            with pytest.raises(PollenError) as other:
                build_sources(settings, metrics)[1].overview("IBM")
            errors.append(str(other.value))
        metrics.flush()
    finally:
        logging.getLogger().removeHandler(root_handler)
        logging.getLogger().setLevel(old_level)
    logged = stream.getvalue() + everything.getvalue()
    # At DEBUG httpx's request lines go through pollen's JSON handler (not to the root handler as well: no duplicates).
    assert "apikey=***" in stream.getvalue(), "httpx did log the requests (masked)"
    assert "HTTP Request" not in everything.getvalue()
    published = logged + "\n".join(errors) + json.dumps(sink.documents)
    for value in values.values():
        assert value not in published


def test_build_sources_keeps_working_through_the_wiring_seam(endpoint: str) -> None:
    settings = load_settings(alpaca_key_id="k", alpaca_secret_key="s", alphavantage_api_key="a")
    alpaca, alphavantage = build_sources(settings, MetricsRecorder())
    assert hasattr(alpaca, "active_assets") and hasattr(alphavantage, "earnings_calendar")
    settings = load_settings(secrets_endpoint=endpoint)
    assert secrets_provider(settings) is secrets_provider(load_settings(secrets_endpoint=endpoint))
