"""The composition root: every adapter the jobs need, built from typed settings.

Only entry points (CLI commands, Lambda handlers) call these; jobs receive the adapters. This is the one place below
the entry points that builds clients (boto3 through :func:`pollen.aws.make_client`, the search index's, the
upstream APIs'); the adapters take them ready-made.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

# Adapters are imported by the function that builds them: a Lambda handler's cold import loads only what its
# own adapters need (no Alpaca client, status collector or boto3 for a function that does not use them).
if TYPE_CHECKING:
    from pollen.adapters.alpaca import AlpacaClient
    from pollen.adapters.alphavantage import AlphaVantageClient
    from pollen.adapters.credentials import Credentials, CredentialSource
    from pollen.adapters.deadletters import (
        JsonlDeadLetters,
        SqsDeadLetterReader,
    )
    from pollen.adapters.dynamodb.admin import TablesReport
    from pollen.adapters.dynamodb.store import DynamoStore
    from pollen.adapters.sqs import SqsQueue
    from pollen.jobs.common import Clock
    from pollen.jobs.runs import RunLog
    from pollen.jobs.status import StatusCollector
    from pollen.observability import MetricsRecorder
    from pollen.ports import (
        AssetSource,
        DeadLetterCount,
        DeadLetterSink,
        FundamentalsSource,
        ItemStore,
        SearchIndex,
    )
    from pollen.settings import Settings
    from pollen.streams.poller import StreamPoller
    from pollen.streams.sync import StreamSync

log = logging.getLogger(__name__)

# --- AWS clients ------------------------------------------------------------------------------------------------

_session_lock = threading.Lock()
#: The last settings given to :func:`aws_session` and their session (one entry: a process has one Settings).
_last_session: tuple[Settings, Any] | None = None


def aws_session(settings: Settings) -> Any:
    """The boto3 session every client built from ``settings`` shares: botocore then loads each service's model and
    resolves credentials once per process, where a session per client reloads them every time (about 0.1 s of a
    command's start-up per client). New settings (a test's changed environment) get a new session."""
    global _last_session
    import boto3  # here, not at import: a Lambda handler's cold import then skips boto3 (and s3transfer)

    with _session_lock:
        if _last_session is None or _last_session[0] is not settings:
            _last_session = (settings, boto3.session.Session())
        return _last_session[1]


def dynamodb_client(settings: Settings, *, max_attempts: int = 1, **options: Any) -> Any:
    from pollen.aws import make_client

    return make_client(
        "dynamodb",
        region=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        max_attempts=max_attempts,
        session=aws_session(settings),
        **options,
    )


def streams_client(settings: Settings) -> Any:
    from pollen.aws import make_client

    return make_client(
        "dynamodbstreams",
        region=settings.region,
        endpoint_url=settings.streams_endpoint,
        max_attempts=3,
        session=aws_session(settings),
    )


def sqs_client(settings: Settings) -> Any:
    from pollen.aws import make_client

    return make_client("sqs", region=settings.region, max_attempts=3, session=aws_session(settings))


def _secrets_client(region: str, endpoint_url: str | None) -> Any:
    from pollen.aws import make_client

    return make_client("secretsmanager", region=region, endpoint_url=endpoint_url, max_attempts=3)


# --- the store ----------------------------------------------------------------------------------------------------


def build_store(settings: Settings, metrics: MetricsRecorder, **options: Any) -> DynamoStore:
    """The store for these settings: per-worker clients, ``write_concurrency`` workers, the ``wcu_limit``
    ceiling, dead letters under ``settings.home / "dead-letters"`` (or to the SQS queue of
    POLLEN_DEAD_LETTER_QUEUE_URL, the local files then catching what SQS refuses). ``options`` go to
    :class:`DynamoStore`; ``durable_dead_letters=True`` (Lambda, where /tmp does not survive) requires the queue and
    has no local fallback: dead letters SQS does not take fail the call.

    ``transport``: ``"auto"`` (default) uses the lean wire client wherever it connects exactly as boto3 would
    (botocore's endpoint, region and CA bundle) and boto3 clients where boto3 would use a proxy or a client
    certificate; ``"wire"`` or ``"boto3"`` force one."""
    from pollen.adapters.dynamodb.store import DynamoStore
    from pollen.errors import ConfigError

    transport = options.pop("transport", "auto")
    if transport not in ("auto", "wire", "boto3"):
        raise ConfigError(f"unknown DynamoDB transport {transport!r}: use auto, wire or boto3")
    durable = bool(options.pop("durable_dead_letters", False))
    if "client" not in options and "client_factory" not in options:
        options["client_factory"] = _store_client_factory(settings, transport)
    if "dead_letters" not in options:
        options["dead_letters"] = build_store_dead_letters(settings, durable=durable)
    options.setdefault("concurrency", settings.write_concurrency)
    options.setdefault("wcu_limit", settings.wcu_limit)
    return DynamoStore(
        table_prefix=settings.table_prefix,
        metrics=metrics,
        region=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        **options,
    )


def _store_client_factory(settings: Settings, transport: str) -> Callable[[], Any]:
    """One client per store worker: the lean wire client, or boto3's where the wire client cannot connect alike."""
    from pollen.adapters.dynamodb.client import resolve_endpoint
    from pollen.adapters.dynamodb.wire import wire_client_factory

    if transport != "boto3":
        session = aws_session(settings)
        endpoint = resolve_endpoint(region=settings.region, endpoint_url=settings.dynamodb_endpoint, session=session)
        if transport == "wire" or not endpoint.unsupported:
            return wire_client_factory(endpoint=endpoint, session=session)
        log.info("using the boto3 transport", extra={"reason": endpoint.unsupported})
    return partial(dynamodb_client, settings, max_pool_connections=max(10, settings.write_concurrency * 2))


def build_store_dead_letters(settings: Settings, *, durable: bool = False) -> Any:
    """The store's dead letters: the SQS queue when set (local files catching what it refuses, except when
    ``durable``), else files under ``settings.home / "dead-letters"``."""
    from pollen.adapters.deadletters import JsonlDeadLetters, SqsDeadLetters
    from pollen.errors import ConfigError

    if durable and not settings.dead_letter_queue_url:
        raise ConfigError("POLLEN_DEAD_LETTER_QUEUE_URL is not set: in Lambda, dead letters need the queue")
    local = None if durable else JsonlDeadLetters(settings.home / "dead-letters")
    if settings.dead_letter_queue_url:
        return SqsDeadLetters(settings.dead_letter_queue_url, client=sqs_client(settings), fallback=local)
    return local


def build_run_record_store(settings: Settings, metrics: MetricsRecorder) -> DynamoStore:
    """A store for run records only: a record that cannot be written is logged, not dead-lettered (no data to
    replay)."""
    from pollen.adapters.deadletters import MemoryDeadLetters

    return build_store(settings, metrics, dead_letters=MemoryDeadLetters())


def build_replay_store(settings: Settings, metrics: MetricsRecorder) -> tuple[DynamoStore, JsonlDeadLetters]:
    """`pollen dead-letters replay`'s store: what fails again goes to the local files (returned with it), never
    back to the queue."""
    from pollen.adapters.deadletters import JsonlDeadLetters

    local = JsonlDeadLetters(settings.home / "dead-letters")
    return build_store(settings, metrics, dead_letters=local), local


def build_table_creator(settings: Settings) -> Callable[[], TablesReport]:
    """`pollen tables create`: creates every missing table, GSI and stream when called."""
    from pollen.adapters.dynamodb.admin import ensure_tables

    return partial(ensure_tables, dynamodb_client(settings), settings.table_prefix)


def build_run_log(settings: Settings, metrics: MetricsRecorder, store: ItemStore, clock: Clock | None = None) -> RunLog:
    """Where job runs leave their records (``pollenControl``), kept ``run_retention_days``; ``clock`` defaults to
    the wall clock."""
    from pollen.jobs.common import utc_now
    from pollen.jobs.runs import RunLog

    retention = timedelta(days=settings.run_retention_days)
    return RunLog(store, metrics=metrics, retention=retention, clock=clock or utc_now)


def dead_letters_destination(settings: Settings) -> str:
    """Where this process's write dead letters go (recorded with each run)."""
    return settings.dead_letter_queue_url or str(settings.home / "dead-letters")


# --- upstream sources ---------------------------------------------------------------------------------------------


def secrets_provider(settings: Settings) -> Any:
    """The Powertools SecretsProvider (one cache per region and endpoint) that reads POLLEN_SECRET_ID."""
    from pollen.adapters import credentials as secrets

    return secrets.secrets_provider(_secrets_client, settings.region, settings.secrets_endpoint)


def credential_source(settings: Settings) -> CredentialSource:
    """The upstream credentials: from Secrets Manager when POLLEN_SECRET_ID is set, else from the settings."""
    from pollen.adapters.credentials import CredentialSource

    return CredentialSource(settings, provider=secrets_provider(settings) if settings.secret_id else None)


def build_sources(
    settings: Settings, metrics: MetricsRecorder, *, credentials: CredentialSource | None = None
) -> tuple[AssetSource, FundamentalsSource]:
    """The Alpaca and Alpha Vantage clients; credentials from Secrets Manager when POLLEN_SECRET_ID is set (then
    the clients follow a rotated secret, see :mod:`pollen.adapters.sources`).

    Missing credentials are not an error here: a client says so (ConfigError) when it is first used, so a
    command that needs only one of the two APIs runs with only its keys set.
    """
    from pollen.adapters.alpaca import AlpacaClient
    from pollen.adapters.alphavantage import AlphaVantageClient
    from pollen.adapters.http import RateLimiter
    from pollen.adapters.sources import RotatingAssetSource, RotatingClient, RotatingFundamentalsSource
    from pollen.observability import register_secrets

    source = credentials or credential_source(settings)
    limiter = RateLimiter(settings.alphavantage_per_minute, settings.alphavantage_per_day)  # survives rebuilds

    def alpaca(held: Credentials) -> AlpacaClient:
        return AlpacaClient(
            held.alpaca_key_id,
            held.alpaca_secret_key,
            base_url=settings.alpaca_base_url,
            data_url=settings.alpaca_data_url,
            feed=settings.alpaca_data_feed,
            metrics=metrics,
        )

    def alphavantage(held: Credentials) -> AlphaVantageClient:
        return AlphaVantageClient(
            held.alphavantage_api_key, base_url=settings.alphavantage_base_url, limiter=limiter, metrics=metrics
        )

    if not source.rotates:
        held = source.current()
        register_secrets(held.values())
        return alpaca(held), alphavantage(held)
    rotating_alpaca = RotatingClient(source, alpaca, metrics)
    rotating_alphavantage = RotatingClient(source, alphavantage, metrics)
    rotating_alpaca.client()  # read the secret now: a missing or unreadable secret fails the build, as before
    rotating_alphavantage.client()
    return RotatingAssetSource(rotating_alpaca), RotatingFundamentalsSource(rotating_alphavantage)


# --- queues -------------------------------------------------------------------------------------------------------


def build_queue(settings: Settings) -> SqsQueue:
    """The pollenation queue the scheduler sends to (POLLEN_POLLENATE_QUEUE_URL)."""
    from pollen.adapters.sqs import SqsQueue
    from pollen.errors import ConfigError

    if settings.pollenate_queue_url is None:
        raise ConfigError("POLLEN_POLLENATE_QUEUE_URL is not set")
    return SqsQueue(settings.pollenate_queue_url, client=sqs_client(settings))


def build_dead_letter_reader(settings: Settings, queue_url: str | None = None) -> SqsDeadLetterReader:
    """The dead-letter queue to replay (``queue_url``, else POLLEN_DEAD_LETTER_QUEUE_URL)."""
    from pollen.adapters.deadletters import SqsDeadLetterReader
    from pollen.errors import ConfigError

    url = queue_url or settings.dead_letter_queue_url
    if not url:
        raise ConfigError("no dead-letter queue: pass --queue-url or set POLLEN_DEAD_LETTER_QUEUE_URL")
    return SqsDeadLetterReader(url, client=sqs_client(settings))


# --- search index and streams ---------------------------------------------------------------------------------


def build_search_index(settings: Settings, metrics: MetricsRecorder, *, embedded_allowed: bool = True) -> SearchIndex:
    """OpenSearch when POLLEN_SEARCH_URL is set, else the embedded index.

    The embedded index lives in a file under POLLEN_HOME: right for the CLI, useless in Lambda (``/tmp`` does not
    outlive the container), so a Lambda entry point asks for ``embedded_allowed=False`` and gets a ConfigError."""
    from pollen.errors import ConfigError

    if settings.search_url:
        from pollen.adapters.search.opensearch import OpenSearchIndex

        signed = settings.search_auth == "sigv4"
        return OpenSearchIndex.from_url(
            settings.search_url,
            region=settings.region,
            signed=signed,
            service=settings.search_service,
            credentials=_signing_credentials(settings) if signed else None,
            index_prefix=settings.table_prefix,
            metrics=metrics,
        )
    if not embedded_allowed:
        raise ConfigError(
            "POLLEN_SEARCH_URL is not set: stream sync in Lambda needs an OpenSearch endpoint "
            "(deploy with OpenSearchEndpoint empty to leave stream sync out)"
        )
    from pollen.adapters.search.embedded import EmbeddedSearchIndex

    return EmbeddedSearchIndex.in_home(settings.home)


def _signing_credentials(settings: Settings) -> Any:
    """The boto3 session's credentials (the Lambda role's, refreshed by botocore), to sign OpenSearch requests."""
    import boto3

    return boto3.Session(region_name=settings.region).get_credentials()


def build_stream_sync(settings: Settings, metrics: MetricsRecorder) -> StreamSync:
    """The CLI's stream sync: changes into the search index these settings name (OpenSearch, or the embedded
    index); records the index rejects go to a file under POLLEN_HOME."""
    from pollen.adapters.deadletters import StreamRecordFile
    from pollen.streams.sync import StreamSync

    index = build_search_index(settings, metrics)
    return StreamSync(index, metrics=metrics, dead_letters=StreamRecordFile.in_home(settings.home))


def build_stream_dead_letters(settings: Settings) -> DeadLetterSink:
    """Lambda's stream dead letters: the dead-letter queue, never a file under /tmp."""
    from pollen.adapters.deadletters import SqsDeadLetters
    from pollen.errors import ConfigError
    from pollen.ports import STREAM_RECORD

    if not settings.dead_letter_queue_url:
        raise ConfigError("POLLEN_DEAD_LETTER_QUEUE_URL is not set: stream sync in Lambda needs a dead-letter queue")
    return SqsDeadLetters(settings.dead_letter_queue_url, client=sqs_client(settings), kind=STREAM_RECORD)


def build_lambda_stream_sync(settings: Settings, metrics: MetricsRecorder) -> StreamSync:
    """The stream Lambda's sync: OpenSearch only, dead letters to the queue."""
    from pollen.streams.sync import StreamSync

    index = build_search_index(settings, metrics, embedded_allowed=False)
    return StreamSync(index, metrics=metrics, dead_letters=build_stream_dead_letters(settings))


def build_poller(settings: Settings, sync: StreamSync) -> StreamPoller:
    """The local stream poller over the streamed tables, with checkpoints under POLLEN_HOME."""
    from pollen.adapters.stream_records import records_client
    from pollen.streams.checkpoints import FileCheckpoints
    from pollen.streams.poller import StreamPoller, StreamSource
    from pollen.tables import STREAMED_TABLES

    endpoint = str(settings.streams_endpoint) if settings.streams_endpoint else None
    client = records_client(streams_client(settings), endpoint_url=endpoint, region=settings.region)
    sources = [StreamSource(t, settings.table_name(t.name)) for t in STREAMED_TABLES]
    return StreamPoller(
        client,
        sync,
        FileCheckpoints.in_home(settings.home),
        sources,
        batch_size=settings.stream_batch_size,
        window_s=settings.stream_window_s,
    )


# --- status -------------------------------------------------------------------------------------------------------


def build_status(
    settings: Settings, metrics: MetricsRecorder, *, clock: Clock | None = None, store: ItemStore | None = None
) -> StatusCollector:
    """`pollen status`'s collector: the store, DescribeTable counts, run records, the local stream poller's
    checkpoints (when it runs here) and the dead letters waiting (local files; the queue's depth when set);
    ``clock`` defaults to the wall clock."""
    from pollen.adapters.status import DescribeTableStatistics, StreamLag, local_dead_letters, queue_dead_letters
    from pollen.jobs.common import utc_now
    from pollen.jobs.status import QuotaSettings, StatusCollector
    from pollen.streams.checkpoints import FileCheckpoints
    from pollen.tables import STREAMED_TABLES

    clock = clock or utc_now
    store = store or build_store(settings, metrics)
    home = settings.home
    dead_letters: list[Callable[[], DeadLetterCount]] = [lambda: local_dead_letters(home)]
    queue_url = settings.dead_letter_queue_url
    if queue_url:
        sqs = sqs_client(settings)
        dead_letters.append(lambda: queue_dead_letters(sqs, queue_url))
    streams = StreamLag(
        streams_client(settings),
        partial(FileCheckpoints.if_present, home),
        [(t, settings.table_name(t.name)) for t in STREAMED_TABLES],
        now=clock,
    )
    return StatusCollector(
        store,
        DescribeTableStatistics(dynamodb_client(settings, max_attempts=3), table_prefix=settings.table_prefix),
        build_run_log(settings, metrics, store, clock),
        quota=QuotaSettings(
            per_minute=settings.alphavantage_per_minute,
            per_day=settings.alphavantage_per_day,
            concurrency=settings.pollenate_concurrency,
        ),
        clock=clock,
        streams=streams,
        dead_letters=dead_letters,
    )
