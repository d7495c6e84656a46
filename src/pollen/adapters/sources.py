"""Building the upstream clients from settings (called by ``pollen.wiring.build_sources``)."""

from __future__ import annotations

from pollen.adapters.alpaca import AlpacaClient
from pollen.adapters.alphavantage import AlphaVantageClient
from pollen.adapters.credentials import resolve_credentials
from pollen.adapters.http import RateLimiter
from pollen.observability import MetricsRecorder, register_secrets
from pollen.settings import Settings


def build_sources(settings: Settings, metrics: MetricsRecorder) -> tuple[AlpacaClient, AlphaVantageClient]:
    """The Alpaca and Alpha Vantage clients; credentials from Secrets Manager when POLLEN_SECRET_ID is set.

    Missing credentials are not an error here: a client says so (ConfigError) when it is first used, so a
    command that needs only one of the two APIs runs with only its keys set.
    """
    credentials = resolve_credentials(settings)
    register_secrets(credentials.values())
    alpaca = AlpacaClient(
        credentials.alpaca_key_id,
        credentials.alpaca_secret_key,
        base_url=settings.alpaca_base_url,
        data_url=settings.alpaca_data_url,
        feed=settings.alpaca_data_feed,
        metrics=metrics,
    )
    alphavantage = AlphaVantageClient(
        credentials.alphavantage_api_key,
        base_url=settings.alphavantage_base_url,
        limiter=RateLimiter(settings.alphavantage_per_minute, settings.alphavantage_per_day),
        metrics=metrics,
    )
    return alpaca, alphavantage
