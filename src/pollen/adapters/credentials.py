"""Upstream credentials: from Secrets Manager (through Powertools Parameters, cached) when ``POLLEN_SECRET_ID`` is
set, else from the settings (the environment). A key present in the secret wins over the same plain variable.

Values are held as ``SecretStr`` and never logged; messages name keys and the secret id, never values.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from pollen.errors import AuthError, ConfigError, PollenError, ServiceUnavailable
from pollen.settings import Settings

SECRET_KEYS = ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "ALPHAVANTAGE_API_KEY")
#: Seconds Powertools keeps a fetched secret before asking Secrets Manager again.
SECRET_MAX_AGE_S = 300

_providers: dict[tuple[str, str | None], Any] = {}
_providers_lock = threading.Lock()

#: Builds the Secrets Manager client for a region and endpoint (:func:`pollen.wiring.secrets_client`).
SecretsClientFactory = Callable[[str, str | None], Any]


class _SecretBodyFilter(logging.Filter):
    """botocore logs whole response bodies at DEBUG, GetSecretValue's included: mask any record holding one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "SecretString" in record.getMessage() or "SecretBinary" in record.getMessage():
            record.msg, record.args = "response body withheld: it holds a secret", None
        return True


def _guard_botocore_logs() -> None:
    names = [n for n in list(logging.root.manager.loggerDict) if n == "botocore" or n.startswith("botocore.")]
    for name in {"botocore", "botocore.parsers", "botocore.endpoint", *names}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _SecretBodyFilter) for f in logger.filters):
            logger.addFilter(_SecretBodyFilter())


@dataclass(frozen=True)
class Credentials:
    alpaca_key_id: SecretStr | None
    alpaca_secret_key: SecretStr | None
    alphavantage_api_key: SecretStr | None
    source: str  # "secrets-manager" or "environment"

    def values(self) -> list[str]:
        """Every secret value held, for redaction filters."""
        held = (self.alpaca_key_id, self.alpaca_secret_key, self.alphavantage_api_key)
        return [v.get_secret_value() for v in held if v is not None and v.get_secret_value()]


def secrets_provider(client_factory: SecretsClientFactory, region: str, endpoint_url: str | None = None) -> Any:
    """One Powertools SecretsProvider (and so one cache) per region and endpoint; its client comes from
    ``client_factory(region, endpoint_url)``, called once."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    _guard_botocore_logs()
    with _providers_lock:
        provider = _providers.get((region, endpoint_url))
        if provider is None:
            client = client_factory(region, endpoint_url)
            provider = _providers[(region, endpoint_url)] = SecretsProvider(boto3_client=client)
        return provider


def resolve_credentials(settings: Settings, *, provider: Any | None = None, force_fetch: bool = False) -> Credentials:
    """The credentials to use, from the secret named by ``settings.secret_id`` if any, else from the settings.

    ``provider``: the Powertools SecretsProvider (:func:`secrets_provider`), needed when a secret is named.
    The secret comes from Powertools' cache while younger than SECRET_MAX_AGE_S; ``force_fetch`` reads it from
    Secrets Manager at once (after the upstream API refused the cached key: it may have been rotated)."""
    plain = {
        "ALPACA_API_KEY_ID": settings.alpaca_key_id,
        "ALPACA_API_SECRET_KEY": settings.alpaca_secret_key,
        "ALPHAVANTAGE_API_KEY": settings.alphavantage_api_key,
    }
    source = "environment"
    if settings.secret_id:
        if provider is None:
            raise ConfigError("POLLEN_SECRET_ID is set but no Secrets Manager provider was given (pollen.wiring)")
        secret = fetch_secret(settings.secret_id, provider, force_fetch=force_fetch)
        for key in SECRET_KEYS:
            value = secret.get(key)
            if isinstance(value, str) and value:
                plain[key] = SecretStr(value)
        source = "secrets-manager"
    return Credentials(
        alpaca_key_id=plain["ALPACA_API_KEY_ID"],
        alpaca_secret_key=plain["ALPACA_API_SECRET_KEY"],
        alphavantage_api_key=plain["ALPHAVANTAGE_API_KEY"],
        source=source,
    )


def fetch_secret(secret_id: str, provider: Any, *, force_fetch: bool = False) -> dict[str, Any]:
    """The secret as a JSON object (cached by Powertools for SECRET_MAX_AGE_S, unless ``force_fetch``)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

    _guard_botocore_logs()
    try:
        value = provider.get(secret_id, max_age=SECRET_MAX_AGE_S, force_fetch=force_fetch)
    except GetParameterError as exc:
        raise _translate(secret_id, exc.__context__) from None
    except TransformParameterError:
        raise ConfigError(f"secret {secret_id!r} could not be read") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(f"secret {secret_id!r} is not a JSON object") from None  # never quote the value
    if not isinstance(data, dict):
        raise ConfigError(f"secret {secret_id!r} is not a JSON object")
    return data


def _translate(secret_id: str, cause: BaseException | None) -> PollenError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return ConfigError(f"secret {secret_id!r} does not exist (POLLEN_SECRET_ID)", code=code)
        if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"):
            return AuthError(f"not allowed to read secret {secret_id!r} ({code})", code=code)
        if code in ("ThrottlingException", "InternalServiceError"):
            return ServiceUnavailable(f"Secrets Manager failed reading {secret_id!r} ({code})", code=code)
        return ConfigError(f"secret {secret_id!r} could not be read ({code or 'error'})", code=code)
    if isinstance(cause, EndpointConnectionError):
        return ServiceUnavailable("Secrets Manager is unreachable", code="connect")
    if isinstance(cause, NoCredentialsError):
        return ConfigError("no AWS credentials to read the secret named by POLLEN_SECRET_ID")
    return ServiceUnavailable(f"secret {secret_id!r} could not be read ({type(cause).__name__})")


class CredentialSource:
    """The credentials of a long-lived process (a warm Lambda container): every ``current()`` goes through
    Powertools' cache, so a rotated secret is read again once the cache is SECRET_MAX_AGE_S old; ``refresh()`` reads
    it at once. Without POLLEN_SECRET_ID the credentials come from the environment and never change."""

    def __init__(self, settings: Settings, *, provider: Any | None = None) -> None:
        self.settings = settings
        self.provider = provider
        self.rotates = bool(settings.secret_id)

    def current(self) -> Credentials:
        return resolve_credentials(self.settings, provider=self.provider)

    def refresh(self) -> Credentials:
        return resolve_credentials(self.settings, provider=self.provider, force_fetch=self.rotates)
