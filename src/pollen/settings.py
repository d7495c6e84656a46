"""Typed settings for the variables of CONTRACT.md, validated once at the entry point.

Nothing below the entry points reads ``os.environ``: the CLI and the Lambda handlers build a
:class:`Settings` and pass what each adapter needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pollen.errors import ConfigError

Horizon = Literal["3month", "6month", "12month"]

_TABLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,200}$")


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has a bad port") from exc
    return value.rstrip("/")


def _check_prefix(value: str) -> str:
    if not _TABLE_PREFIX.match(value):
        raise ValueError("may hold only letters, digits, '_', '.' and '-'")
    return value


Url = Annotated[str, AfterValidator(_check_url)]


class Settings(BaseSettings):
    """Configuration from the environment (CONTRACT.md), overridable by CLI flags."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    dynamodb_endpoint: Url | None = Field(None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_DYNAMODB"))
    streams_endpoint: Url | None = Field(None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"))
    region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    table_prefix: Annotated[str, AfterValidator(_check_prefix)] = Field(
        "", validation_alias=AliasChoices("POLLEN_TABLE_PREFIX")
    )
    secret_id: str | None = Field(None, validation_alias=AliasChoices("POLLEN_SECRET_ID"))
    #: Secrets Manager endpoint (boto3's own variable), for a local stand-in.
    secrets_endpoint: Url | None = Field(None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
    alpaca_key_id: SecretStr | None = Field(None, validation_alias=AliasChoices("ALPACA_API_KEY_ID"))
    alpaca_secret_key: SecretStr | None = Field(None, validation_alias=AliasChoices("ALPACA_API_SECRET_KEY"))
    alpaca_base_url: Url = Field("https://paper-api.alpaca.markets", validation_alias=AliasChoices("ALPACA_BASE_URL"))
    alpaca_data_url: Url = Field("https://data.alpaca.markets", validation_alias=AliasChoices("ALPACA_DATA_URL"))
    #: Alpaca market-data feed for snapshots ("iex" works on every plan, "sip" needs a subscription).
    alpaca_data_feed: str | None = Field("iex", validation_alias=AliasChoices("POLLEN_ALPACA_FEED"))
    alphavantage_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("ALPHAVANTAGE_API_KEY"))
    alphavantage_base_url: Url = Field(
        "https://www.alphavantage.co", validation_alias=AliasChoices("ALPHAVANTAGE_BASE_URL")
    )
    search_url: Url | None = Field(None, validation_alias=AliasChoices("POLLEN_SEARCH_URL"))
    #: How requests to POLLEN_SEARCH_URL are authenticated: SigV4 (an IAM-protected domain or collection), or
    #: "none", only ever on explicit request (a local OpenSearch without the security plugin).
    search_auth: Literal["sigv4", "none"] = Field("sigv4", validation_alias=AliasChoices("POLLEN_SEARCH_AUTH"))
    #: SigV4 service name: "es" (a domain) or "aoss" (a serverless collection); unset: from the host name.
    search_service: Literal["es", "aoss"] | None = Field(None, validation_alias=AliasChoices("POLLEN_SEARCH_SERVICE"))
    home: Path = Field(Path(".pollen"), validation_alias=AliasChoices("POLLEN_HOME"))

    # Tuning knobs of our own (not part of the contract).
    #: None: the entry point's default (WARNING on the CLI, INFO in Lambda).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        None, validation_alias=AliasChoices("POLLEN_LOG_LEVEL")
    )
    write_concurrency: int = Field(4, ge=1, le=64, validation_alias=AliasChoices("POLLEN_WRITE_CONCURRENCY"))
    wcu_limit: float | None = Field(None, gt=0, validation_alias=AliasChoices("POLLEN_WCU_LIMIT"))
    alphavantage_per_minute: int = Field(75, ge=1, validation_alias=AliasChoices("POLLEN_ALPHAVANTAGE_PER_MINUTE"))
    alphavantage_per_day: int = Field(25_000, ge=1, validation_alias=AliasChoices("POLLEN_ALPHAVANTAGE_PER_DAY"))
    stream_batch_size: int = Field(10, ge=1, le=1000, validation_alias=AliasChoices("POLLEN_STREAM_BATCH_SIZE"))
    stream_window_s: float = Field(5.0, ge=0, validation_alias=AliasChoices("POLLEN_STREAM_WINDOW_S"))

    #: Reserved concurrency of the pollenate function (the template's PollenateConcurrency): the status ETA.
    pollenate_concurrency: int = Field(1, ge=1, le=1000, validation_alias=AliasChoices("POLLEN_POLLENATE_CONCURRENCY"))
    #: Days a run record is kept in pollenControl (TTL).
    run_retention_days: int = Field(30, ge=1, le=3650, validation_alias=AliasChoices("POLLEN_RUN_RETENTION_DAYS"))

    pollenate_queue_url: Url | None = Field(None, validation_alias=AliasChoices("POLLEN_POLLENATE_QUEUE_URL"))
    #: How many due symbols the schedule function enqueues per run when its event names no count.
    pollenate_batch: int = Field(20, ge=1, le=1000, validation_alias=AliasChoices("POLLEN_POLLENATE_BATCH"))
    dead_letter_queue_url: Url | None = Field(None, validation_alias=AliasChoices("POLLEN_DEAD_LETTER_QUEUE_URL"))

    def secret_values(self) -> list[str]:
        """Every secret value held, for redaction filters."""
        values = [self.alpaca_key_id, self.alpaca_secret_key, self.alphavantage_api_key]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    def table_name(self, logical: str) -> str:
        return f"{self.table_prefix}{logical}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus CLI overrides; a bad value raises ConfigError with one line."""
    clean = {_alias(k): v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def _alias(field_name: str) -> str:
    """Overrides are given by field name; the model accepts only the variable names (so that, say, $HOME
    can never be mistaken for POLLEN_HOME)."""
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else field_name


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
    names = {name: field.validation_alias for name, field in Settings.model_fields.items()}
    alias = names.get(where)
    if isinstance(alias, AliasChoices):
        where = str(alias.choices[0])
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    extra = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"bad configuration: {where}: {message}{extra}"
