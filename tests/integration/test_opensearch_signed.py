"""The OpenSearch adapter against a stand-in for an IAM-protected domain that checks SigV4 signatures
(tests/standins/opensearch.py), and the stream-sync Lambda handler writing to it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException

from pollen.adapters.deadletters import DeadLettersLost
from pollen.adapters.dynamodb.client import make_client
from pollen.adapters.search.opensearch import OpenSearchIndex, signing_service
from pollen.backoff import Backoff
from pollen.errors import ConfigError
from pollen.handlers import stream_sync
from pollen.observability import MetricsRecorder
from pollen.settings import load_settings
from pollen.streams.records import Change, version_key
from pollen.wiring import build_search_index
from tests.standins.opensearch import TEST_ACCESS_KEY, TEST_SECRET_KEY, OpenSearchStandIn
from tests.unit.test_stream_handler import SEQ, lambda_record, overview

pytestmark = pytest.mark.integration

GOOD = Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY)


@pytest.fixture
def domain() -> Iterator[OpenSearchStandIn]:
    with OpenSearchStandIn(region="eu-west-1") as standin:
        yield standin


@pytest.fixture
def role_domain() -> Iterator[OpenSearchStandIn]:
    """A domain that accepts the credentials the process has (as the Lambda role's are for every service)."""
    with OpenSearchStandIn(
        region="us-east-1", access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"]
    ) as standin:
        yield standin


def upsert(doc_id: str, seq: int, name: str) -> Change:
    return Change(
        "companyOverview", doc_id, "upsert", version_key(str(seq)), {"symbol": doc_id, "Name": name}, str(seq)
    )


def delete(doc_id: str, seq: int) -> Change:
    return Change("companyOverview", doc_id, "delete", version_key(str(seq)), None, str(seq))


def test_signed_writes_reach_the_domain_and_newer_versions_win(domain: OpenSearchStandIn) -> None:
    index = OpenSearchIndex.from_url(domain.url, region="eu-west-1", credentials=GOOD, index_prefix="dev-")
    result = index.apply([upsert("IBM", 10, "International"), upsert("AAPL", 11, "Apple")])
    assert len(result.indexed) == 2 and not result.failed and not result.rejected
    stale = index.apply([upsert("IBM", 9, "old name")])
    assert len(stale.conflicts) == 1  # the emulated painless script made it a noop
    assert index.get("companyOverview", "IBM") == {"symbol": "IBM", "Name": "International"}
    assert [hit.doc_id for hit in index.search("apple")] == ["AAPL"]
    assert dict(index.documents("companyOverview")).keys() == {"IBM", "AAPL"}
    assert len(index.apply([delete("AAPL", 12)]).deleted) == 1
    assert index.get("companyOverview", "AAPL") is None and index.version_of("companyOverview", "AAPL") is not None
    assert domain.refused == 0 and all(r.signed for r in domain.domain.requests)


def test_an_unsigned_client_is_refused(domain: OpenSearchStandIn) -> None:
    unsigned = OpenSearch(hosts=[domain.url], max_retries=0)
    with pytest.raises(AuthorizationException) as refused:
        unsigned.index(index="dev-companyoverview", id="IBM", body={"doc": {}})
    assert refused.value.status_code == 403 and refused.value.error == "security_exception"
    # what the adapter built before signing existed: every stream batch item failed
    index = OpenSearchIndex.from_url(domain.url, signed=False, index_prefix="dev-", sleep=lambda _: None)
    result = index.apply([upsert("IBM", 10, "International")])
    assert result.failed and not result.indexed and "403" in result.failed[0][1]
    assert domain.documents("dev-companyoverview") == {}


def test_wrong_credentials_region_or_service_are_refused(domain: OpenSearchStandIn) -> None:
    for credentials, region, service in (
        (Credentials(TEST_ACCESS_KEY, "not-the-secret"), "eu-west-1", "es"),
        (GOOD, "us-east-1", "es"),
        (GOOD, "eu-west-1", "aoss"),
    ):
        index = OpenSearchIndex.from_url(
            domain.url, region=region, service=service, credentials=credentials, backoff=Backoff(max_attempts=1)
        )
        assert index.apply([upsert("IBM", 10, "x")]).failed
    assert domain.refused == 3 and domain.documents("companyoverview") == {}


def test_the_service_name_follows_the_endpoint() -> None:
    assert signing_service("https://abc123.us-east-1.aoss.amazonaws.com") == "aoss"
    assert signing_service("https://search-pollen-x.eu-west-1.es.amazonaws.com") == "es"


def test_the_factory_signs_with_the_session_credentials(
    domain: OpenSearchStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in domain.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "")
    index = build_search_index(load_settings(), MetricsRecorder(), embedded_allowed=False)
    assert index.apply([upsert("IBM", 10, "International")]).indexed
    assert domain.refused == 0


def test_purge_removes_only_old_tombstones(domain: OpenSearchStandIn) -> None:
    now = [1_000_000.0]
    index = OpenSearchIndex.from_url(domain.url, region="eu-west-1", credentials=GOOD, clock=lambda: now[0])
    index.apply([upsert("IBM", 10, "International"), upsert("AAPL", 11, "Apple")])
    index.apply([delete("AAPL", 12)])
    now[0] += 8 * 86400
    index.apply([upsert("MSFT", 13, "Microsoft")])
    index.apply([delete("MSFT", 14)])  # a recent tombstone: kept
    assert index.purge_tombstones(older_than_s=7 * 86400) == 1
    assert set(domain.documents("companyoverview")) == {"IBM", "MSFT"}


# -- the Lambda handler ------------------------------------------------------------------------------------------


@pytest.fixture
def lambda_env(
    role_domain: OpenSearchStandIn, endpoint: str, table_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    sqs = make_client("sqs", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName=f"{table_prefix}write-dlq")["QueueUrl"]
    for name, value in role_domain.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
    monkeypatch.setenv("POLLEN_TABLE_PREFIX", table_prefix)
    monkeypatch.setenv("POLLEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("POLLEN_DEAD_LETTER_QUEUE_URL", queue_url)
    monkeypatch.setattr(stream_sync, "_cached", None)
    yield {"prefix": table_prefix, "sqs": sqs, "queue_url": queue_url}
    monkeypatch.setattr(stream_sync, "_cached", None)


def test_stream_sync_handler_writes_signed_and_dead_letters_to_sqs(
    role_domain: OpenSearchStandIn, lambda_env: dict[str, Any]
) -> None:
    domain = role_domain
    prefix = lambda_env["prefix"]
    good = lambda_record(
        "INSERT", SEQ + 1, f"{prefix}companyOverview", {"symbol": "AAPL"}, new=overview("AAPL", "Apple")
    )
    bad = lambda_record("INSERT", SEQ + 2, f"{prefix}companyOverview", {"symbol": "BAD"})  # no NewImage
    assert stream_sync.handler({"Records": [good, bad]}, None) == {"batchItemFailures": []}
    again = lambda_record(
        "MODIFY", SEQ + 3, f"{prefix}companyOverview", {"symbol": "AAPL"}, new=overview("AAPL", "Apple Inc")
    )
    assert stream_sync.handler({"Records": [again]}, None) == {"batchItemFailures": []}  # warm
    docs = domain.documents(f"{prefix}companyoverview".lower())
    assert docs["AAPL"]["doc"]["Name"] == "Apple Inc" and docs["AAPL"]["doc"]["PERatio"] in (
        31.5,
        "31.5",
        Decimal("31.5"),
    )
    messages = lambda_env["sqs"].receive_message(
        QueueUrl=lambda_env["queue_url"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"])["dynamodb"]["SequenceNumber"] == str(SEQ + 2)
    assert messages[0]["MessageAttributes"]["kind"]["StringValue"] == "stream-record"
    assert domain.refused == 0


def test_scheduled_purge_through_the_handler(role_domain: OpenSearchStandIn, lambda_env: dict[str, Any]) -> None:
    domain = role_domain
    index = f"{lambda_env['prefix']}companyoverview".lower()
    old = {"doc": None, "pollen": {"version": "1", "deleted": True, "updated_at": 0, "table": "companyOverview"}}
    live = {"doc": {"symbol": "IBM"}, "pollen": {"version": "1", "deleted": False, "updated_at": 0}}
    domain.put_document(index, "GONE", old)
    domain.put_document(index, "IBM", live)
    assert stream_sync.handler({"action": "purge-tombstones"}, None) == {"purged": 1}
    assert set(domain.documents(index)) == {"IBM"}


def test_stream_sync_in_lambda_refuses_the_embedded_index(
    lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLLEN_SEARCH_URL")
    record = lambda_record(
        "INSERT", SEQ + 1, f"{lambda_env['prefix']}companyOverview", {"symbol": "A"}, new=overview("A", "A")
    )
    with pytest.raises(ConfigError, match="POLLEN_SEARCH_URL"):
        stream_sync.handler({"Records": [record]}, None)
    assert not list(Path(load_settings().home).rglob("*.sqlite*"))


def test_a_dead_letter_sqs_does_not_take_fails_the_invocation(
    lambda_env: dict[str, Any], endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLEN_DEAD_LETTER_QUEUE_URL", f"{endpoint}/123456789012/{lambda_env['prefix']}gone")
    bad = lambda_record("INSERT", SEQ + 2, f"{lambda_env['prefix']}companyOverview", {"symbol": "BAD"})
    with pytest.raises(DeadLettersLost):  # Lambda retries the batch rather than losing the record
        stream_sync.handler({"Records": [bad]}, None)
