"""The OpenSearch adapter against request/response shapes written from OpenSearch's documented formats (the
`_bulk` API's NDJSON body and per-item responses). No OpenSearch server runs here: a Connection class stands in
for the HTTP layer under a real opensearch-py client, so the client's own serialization is exercised."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import pytest
from opensearchpy import Connection, OpenSearch

from pollen.adapters.deadletters import MemoryDeadLetters
from pollen.adapters.search.opensearch import VERSION_SCRIPT, OpenSearchIndex
from pollen.backoff import Backoff
from pollen.observability import MemorySink, MetricsRecorder
from pollen.streams.records import Change, version_key
from pollen.streams.sync import StreamSync

BASE = 10**21


def upsert(doc_id: str, seq: int, table: str = "companyOverview") -> Change:
    record = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(seq), "Keys": {"symbol": {"S": doc_id}}}}
    return Change(table, doc_id, "upsert", version_key(str(seq)), {"symbol": doc_id, "v": str(seq)}, str(seq), record)


def delete(doc_id: str, seq: int) -> Change:
    return Change("companyOverview", doc_id, "delete", version_key(str(seq)), None, str(seq))


def item(status: int, doc_id: str, result: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"_index": "dev-companyoverview", "_id": doc_id, "status": status}
    if result:
        entry.update(
            {
                "_version": 2,
                "result": result,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": 7,
                "_primary_term": 1,
            }
        )
    if error:
        entry["error"] = error
    return {"update": entry}


CONFLICT = {
    "type": "version_conflict_engine_exception",
    "reason": "[B]: version conflict, required seqNo [5], primary term [1]. current document has seqNo [6] and primary term [1]",
    "index": "dev-companyoverview",
    "shard": "0",
}
REJECTED = {"type": "rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
MAPPING = {
    "type": "mapper_parsing_exception",
    "reason": "failed to parse field [doc.v] of type [long] in document with id 'E'",
    "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "x"'},
}
UNAVAILABLE = {"type": "unavailable_shards_exception", "reason": "[dev-companyoverview][0] primary shard is not active"}


class ScriptedConnection(Connection):
    """Answers each request with the next scripted (status, body); records every request."""

    responses: deque[tuple[int, dict[str, Any]]] = deque()
    requests: list[tuple[str, str, str]] = []

    def perform_request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: Any = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> Any:
        text = body.decode() if isinstance(body, bytes) else (body or "")
        ScriptedConnection.requests.append((method, url, text))
        status, payload = ScriptedConnection.responses.popleft()
        raw = json.dumps(payload)
        if not (200 <= status < 300) and status not in ignore:
            self._raise_error(status, raw)
        return status, {}, raw


@pytest.fixture
def scripted() -> type[ScriptedConnection]:
    ScriptedConnection.responses = deque()
    ScriptedConnection.requests = []
    return ScriptedConnection


def make_index(max_attempts: int = 5, **options: Any) -> tuple[OpenSearchIndex, list[float]]:
    client = OpenSearch(hosts=["http://search.invalid:9200"], connection_class=ScriptedConnection, max_retries=0)
    sleeps: list[float] = []
    # The jitter draws its upper bound, so the waits are the backoff's ceilings.
    backoff = Backoff(base_s=0.2, cap_s=5.0, max_attempts=max_attempts, uniform=lambda _low, high: high)
    index = OpenSearchIndex(
        client, index_prefix="dev-", backoff=backoff, sleep=sleeps.append, clock=lambda: 1000.0, **options
    )
    return index, sleeps


def bulk_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_bulk_body_is_conditional_scripted_upserts(scripted: type[ScriptedConnection]) -> None:
    index, _ = make_index()
    scripted.responses.append(
        (200, {"took": 3, "errors": False, "items": [item(201, "A", "created"), item(200, "B", "updated")]})
    )
    result = index.apply([upsert("A", BASE + 2), delete("B", BASE + 3)])
    assert [c.doc_id for c in result.indexed] == ["A"] and [c.doc_id for c in result.deleted] == ["B"]
    ((method, url, body),) = scripted.requests
    assert (method, url) == ("POST", "/_bulk")
    assert body.endswith("\n")  # NDJSON: every line ends with a newline
    lines = bulk_lines(body)
    assert lines[0] == {"update": {"_index": "dev-companyoverview", "_id": "A", "retry_on_conflict": 3}}
    assert lines[1]["scripted_upsert"] is True and lines[1]["upsert"] == {}
    params = lines[1]["script"]["params"]
    assert params == {
        "version": version_key(str(BASE + 2)),
        "deleted": False,
        "doc": {"symbol": "A", "v": str(BASE + 2)},
        "sequence_number": str(BASE + 2),
        "table": "companyOverview",
        "now": 1_000_000,
    }
    assert lines[3]["script"]["params"]["deleted"] is True and lines[3]["script"]["params"]["doc"] is None
    assert lines[1]["script"]["source"] == VERSION_SCRIPT and "ctx.op = 'none'" in VERSION_SCRIPT


def test_per_item_statuses(scripted: type[ScriptedConnection]) -> None:
    sink = MemorySink()
    index, sleeps = make_index(metrics=MetricsRecorder(sink))
    changes = [upsert(d, BASE + i) for i, d in enumerate("ABCDEF")]
    scripted.responses.append(
        (
            200,
            {
                "took": 5,
                "errors": True,
                "items": [
                    item(201, "A", "created"),
                    item(409, "B", error=CONFLICT),
                    item(429, "C", error=REJECTED),
                    item(200, "D", "noop"),
                    item(400, "E", error=MAPPING),
                    item(503, "F", error=UNAVAILABLE),
                ],
            },
        )
    )
    # The second request carries only B, C and F: B's script now sees the newer stored version (noop).
    scripted.responses.append(
        (
            200,
            {
                "took": 2,
                "errors": True,
                "items": [
                    item(200, "B", "noop"),
                    item(200, "C", "updated"),
                    item(500, "F", error={"type": "exception", "reason": "boom"}),
                ],
            },
        )
    )
    scripted.responses.append((200, {"took": 2, "errors": False, "items": [item(201, "F", "created")]}))
    result = index.apply(changes)
    assert [c.doc_id for c in result.indexed] == ["A", "C", "F"]
    assert [c.doc_id for c in result.conflicts] == ["D", "B"]  # conflicts count as success
    assert [(c.doc_id, r.split(":")[0]) for c, r in result.rejected] == [("E", "400 mapper_parsing_exception")]
    assert result.failed == []
    assert result.retries == 4  # B, C, F then F
    assert sleeps == [0.2, 0.4]  # exponential backoff
    assert [line["update"]["_id"] for line in bulk_lines(scripted.requests[1][2])[::2]] == ["B", "C", "F"]
    assert [line["update"]["_id"] for line in bulk_lines(scripted.requests[2][2])[::2]] == ["F"]


def test_retries_give_up_and_report_failed(scripted: type[ScriptedConnection]) -> None:
    index, sleeps = make_index(max_attempts=3)
    for _ in range(3):
        scripted.responses.append((200, {"took": 1, "errors": True, "items": [item(429, "A", error=REJECTED)]}))
    result = index.apply([upsert("A", BASE)])
    assert [(c.doc_id, reason.split(":")[0]) for c, reason in result.failed] == [
        ("A", "429 rejected_execution_exception")
    ]
    assert len(sleeps) == 2 and not scripted.responses


def test_whole_request_errors(scripted: type[ScriptedConnection]) -> None:
    index, sleeps = make_index()
    scripted.responses.append((503, {"error": {"type": "cluster_block_exception", "reason": "blocked"}, "status": 503}))
    scripted.responses.append((200, {"took": 1, "errors": False, "items": [item(201, "A", "created")]}))
    assert [c.doc_id for c in index.apply([upsert("A", BASE)]).indexed] == ["A"]
    assert sleeps == [0.2]
    scripted.responses.append(
        (403, {"error": {"type": "security_exception", "reason": "no permissions"}, "status": 403})
    )
    result = index.apply([upsert("B", BASE)])
    assert [c.doc_id for c, _ in result.failed] == ["B"]


def test_rejected_items_are_dead_lettered_with_the_full_record(scripted: type[ScriptedConnection]) -> None:
    index, _ = make_index()
    letters = MemoryDeadLetters()
    metrics = MetricsRecorder(MemorySink())
    sync = StreamSync(index, metrics=metrics, dead_letters=letters)
    scripted.responses.append((200, {"took": 1, "errors": True, "items": [item(400, "E", error=MAPPING)]}))
    outcome = sync.apply_changes([upsert("E", BASE)])
    assert outcome.ok and outcome.dead_letters == 1
    ((table, record, reason),) = letters.entries
    assert table == "companyOverview" and record["dynamodb"]["SequenceNumber"] == str(BASE)
    assert "mapper_parsing_exception" in reason
    assert metrics.total("DeadLetters") == 1


def test_search_and_tombstone_filter(scripted: type[ScriptedConnection]) -> None:
    index, _ = make_index()
    scripted.responses.append(
        (
            200,
            {
                "took": 2,
                "timed_out": False,
                "hits": {
                    "total": {"value": 1, "relation": "eq"},
                    "max_score": 1.3,
                    "hits": [
                        {
                            "_index": "dev-companyoverview",
                            "_id": "AAPL",
                            "_score": 1.3,
                            "_source": {
                                "doc": {"symbol": "AAPL", "Name": "Apple"},
                                "pollen": {"version": "1", "deleted": False},
                            },
                        }
                    ],
                },
            },
        )
    )
    hits = index.search("apple", limit=5)
    assert [(h.table, h.doc_id, h.document["Name"]) for h in hits] == [("companyOverview", "AAPL", "Apple")]
    _method, url, body = scripted.requests[0]
    assert url.startswith("/dev-assets,dev-earningscalendar,dev-companyoverview/_search")
    query = json.loads(body)
    assert query["size"] == 5
    assert {"term": {"pollen.deleted": False}} in query["query"]["bool"]["filter"]
    scripted.responses.append(
        (
            200,
            {
                "_index": "dev-companyoverview",
                "_id": "X",
                "found": True,
                "_source": {"doc": None, "pollen": {"version": "9", "deleted": True}},
            },
        )
    )
    assert index.get("companyOverview", "X") is None


def test_purge_tombstones_deletes_only_old_tombstones(scripted: type[ScriptedConnection]) -> None:
    index, _ = make_index()
    scripted.responses.append((200, {"took": 4, "timed_out": False, "total": 2, "deleted": 2, "failures": []}))
    assert index.purge_tombstones(older_than_s=100) == 2
    _method, url, body = scripted.requests[0]
    assert url.startswith("/dev-assets,dev-earningscalendar,dev-companyoverview/_delete_by_query")
    assert json.loads(body)["query"]["bool"]["filter"] == [
        {"term": {"pollen.deleted": True}},
        {"range": {"pollen.updated_at": {"lt": 900_000}}},
    ]
