"""The OpenSearch adapter: one ``_bulk`` request per batch of conditional, scripted upserts.

Every change, upsert or delete, is an ``update`` with ``scripted_upsert``: the Painless script compares the stored
``pollen.version`` with the change's version (by length, then lexically: the integer order of sequence numbers)
and sets ``ctx.op = 'none'`` unless the change is newer. A delete writes a tombstone (``pollen.deleted = true``,
``doc = null``) instead of removing the document, so a late upsert cannot bring it back; ``purge_tombstones``
removes tombstones older than the retention with ``_delete_by_query``. Searches filter tombstones out.

Per-item outcomes of a ``_bulk`` response:
- 200/201 ``created``/``updated``: applied; 200 ``noop``: the index already held a newer version (a version
  conflict, counted as success);
- 409 (the engine's optimistic-concurrency conflict, after ``retry_on_conflict``): a concurrent writer touched the
  document between the script's read and write; the item is sent again, and the script then decides (usually
  ``noop``). It is never taken as success blindly, because here it says nothing about which version won;
- 429 and 5xx: sent again after :mod:`pollen.backoff`'s wait, up to ``backoff.max_attempts``; then reported failed;
- any other 4xx (400 mapping errors, ...): rejected, dead-lettered with the full record by the caller.

Requests are signed with SigV4 through opensearch-py's own signer (``Urllib3AWSV4SignerAuth`` on its default
urllib3 connection), with the boto3 session's credentials (frozen per request, so rotated Lambda credentials are
picked up), the region and service ``es`` (a domain) or ``aoss`` (a serverless collection, recognised by its host
``*.aoss.amazonaws.com`` or named explicitly). Unsigned requests only when asked for (``signed=False``).

Documents are ``{"doc": <item as JSON>, "pollen": {"version", "deleted", "sequence_number", "table",
"updated_at"}}`` (``updated_at`` in epoch milliseconds); index names are the physical table names lowercased (OpenSearch index names must be lowercase).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from pollen.backoff import BATCH_BACKOFF, Backoff
from pollen.errors import ConfigError
from pollen.observability import MetricsRecorder
from pollen.ports import TOMBSTONE_RETENTION_S, ApplyResult, Change, SearchHit
from pollen.tables import STREAMED_TABLES

log = logging.getLogger(__name__)

VERSION_SCRIPT = """
def meta = ctx._source.pollen;
if (meta != null && meta.version != null) {
  String stored = meta.version;
  String incoming = params.version;
  int order = stored.length() == incoming.length()
      ? stored.compareTo(incoming) : Integer.compare(stored.length(), incoming.length());
  if (order >= 0) { ctx.op = 'none'; return; }
}
ctx._source.doc = params.doc;
ctx._source.pollen = ['version': params.version, 'deleted': params.deleted,
                      'sequence_number': params.sequence_number, 'table': params.table,
                      'updated_at': params.now];
""".strip()

RETRYABLE_STATUSES = frozenset({409, 429})


def signing_service(url: str) -> str:
    """``aoss`` for an OpenSearch Serverless collection endpoint, else ``es`` (a managed domain)."""
    host = (urlsplit(url).hostname or "").lower()
    return "aoss" if host.endswith(".aoss.amazonaws.com") else "es"


def _retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


class OpenSearchIndex:
    """SearchIndex on OpenSearch (opensearch-py client injected or built from a URL)."""

    def __init__(
        self,
        client: Any,
        *,
        index_prefix: str = "",
        metrics: MetricsRecorder | None = None,
        backoff: Backoff = BATCH_BACKOFF,
        retry_on_conflict: int = 3,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.index_prefix = index_prefix
        self.metrics = metrics
        self.backoff = backoff if sleep is None else backoff.waiting_with(sleep)
        self.retry_on_conflict = retry_on_conflict
        self.clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        region: str = "us-east-1",
        signed: bool = True,
        service: str | None = None,
        credentials: Any = None,
        **options: Any,
    ) -> OpenSearchIndex:
        """A client for ``url``, SigV4-signed unless ``signed`` is False; ``credentials`` default to the boto3
        session's (the Lambda role's, refreshed by botocore)."""
        from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection

        auth = None
        if signed:
            if credentials is None:
                import boto3

                credentials = boto3.Session(region_name=region).get_credentials()
            if credentials is None:
                raise ConfigError(
                    "no AWS credentials to sign OpenSearch requests with "
                    "(set POLLEN_SEARCH_AUTH=none for a local OpenSearch without authentication)"
                )
            auth = Urllib3AWSV4SignerAuth(credentials, region, service or signing_service(url))
        client = OpenSearch(
            hosts=[url],
            http_auth=auth,
            connection_class=Urllib3HttpConnection,
            http_compress=True,
            timeout=30,
            max_retries=0,
        )
        return cls(client, **options)

    def index_name(self, table: str) -> str:
        return f"{self.index_prefix}{table}".lower()

    # -- writes -----------------------------------------------------------------------------------------------

    def bulk_body(self, changes: Sequence[Change]) -> list[dict[str, Any]]:
        """The ``_bulk`` body (action line, then source line, per change)."""
        now = int(self.clock() * 1000)  # epoch milliseconds: dynamic mapping makes it a long, not a lossy float
        body: list[dict[str, Any]] = []
        for change in changes:
            body.append(
                {
                    "update": {
                        "_index": self.index_name(change.table),
                        "_id": change.doc_id,
                        "retry_on_conflict": self.retry_on_conflict,
                    }
                }
            )
            body.append(
                {
                    "scripted_upsert": True,
                    "upsert": {},
                    "script": {
                        "lang": "painless",
                        "source": VERSION_SCRIPT,
                        "params": {
                            "version": change.version,
                            "deleted": change.operation == "delete",
                            "doc": change.document,
                            "sequence_number": change.sequence_number,
                            "table": change.table,
                            "now": now,
                        },
                    },
                }
            )
        return body

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        todo = list(changes)
        failures = 0
        while todo:
            retry: list[tuple[Change, str]] = []
            try:
                response = self.client.bulk(body=self.bulk_body(todo))
            except Exception as exc:
                code = getattr(exc, "status_code", None)
                status = code if isinstance(code, int) else 0  # opensearch-py says "N/A" for connection errors
                reason = f"bulk request failed: {type(exc).__name__}: {str(exc)[:200]}"
                if status and not _retryable(status):
                    result.failed += [(c, reason) for c in todo]
                    return result
                retry = [(c, reason) for c in todo]
            else:
                retry = self._sort_items(todo, response, result)
            if not retry:
                break
            failures += 1
            if self.backoff.exhausted(failures):
                result.failed += retry
                break
            result.retries += len(retry)
            if self.metrics is not None:
                self.metrics.count("IndexRetries", len(retry))
            delay = self.backoff.delay_s(failures)
            log.info("retrying bulk items", extra={"items": len(retry), "attempt": failures, "delay_s": delay})
            self.backoff.sleeper(delay)
            todo = [c for c, _ in retry]
        return result

    def _sort_items(self, sent: Sequence[Change], response: Any, result: ApplyResult) -> list[tuple[Change, str]]:
        items = response.get("items", []) if isinstance(response, dict) else []
        retry: list[tuple[Change, str]] = []
        if len(items) != len(sent):
            reason = f"bulk response has {len(items)} items for {len(sent)} actions"
            return [(c, reason) for c in sent]
        for change, entry in zip(sent, items, strict=True):
            outcome = next(iter(entry.values())) if isinstance(entry, dict) and entry else {}
            status = int(outcome.get("status", 0) or 0)
            error = outcome.get("error")
            if 200 <= status < 300 and not error:
                if outcome.get("result") == "noop":
                    result.conflicts.append(change)
                elif change.operation == "delete":
                    result.deleted.append(change)
                else:
                    result.indexed.append(change)
                continue
            reason = _describe(status, error)
            if _retryable(status) or status == 0:
                retry.append((change, reason))
            else:
                result.rejected.append((change, reason))
        return retry

    def purge_tombstones(self, older_than_s: float = TOMBSTONE_RETENTION_S) -> int:
        cutoff = int((self.clock() - older_than_s) * 1000)
        response = self.client.delete_by_query(
            index=",".join(self.index_name(t.name) for t in STREAMED_TABLES),
            body={
                "query": {
                    "bool": {
                        "filter": [
                            {"term": {"pollen.deleted": True}},
                            {"range": {"pollen.updated_at": {"lt": cutoff}}},
                        ]
                    }
                }
            },
            params={"ignore_unavailable": "true", "conflicts": "proceed"},
        )
        return int(response.get("deleted", 0))

    # -- reads ------------------------------------------------------------------------------------------------

    def _source(self, table: str, doc_id: str) -> dict[str, Any] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            response = self.client.get(index=self.index_name(table), id=doc_id)
        except NotFoundError:
            return None
        return dict(response.get("_source") or {}) if response.get("found", True) else None

    def get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        source = self._source(table, doc_id)
        if source is None or source.get("pollen", {}).get("deleted"):
            return None
        doc = source.get("doc")
        return dict(doc) if isinstance(doc, dict) else None

    def version_of(self, table: str, doc_id: str) -> str | None:
        source = self._source(table, doc_id)
        version = (source or {}).get("pollen", {}).get("version")
        return str(version) if version is not None else None

    def documents(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        from opensearchpy.helpers import scan

        query = {"query": {"bool": {"filter": [{"term": {"pollen.deleted": False}}]}}}
        for hit in scan(self.client, index=self.index_name(table), query=query):
            yield str(hit["_id"]), dict(hit["_source"].get("doc") or {})

    def search(self, query: str, *, table: str | None = None, limit: int = 10) -> list[SearchHit]:
        tables = [table] if table else [t.name for t in STREAMED_TABLES]
        names = {self.index_name(t): t for t in tables}
        body = {
            "size": limit,
            "query": {
                "bool": {
                    "must": [{"simple_query_string": {"query": query, "fields": ["doc.*"], "default_operator": "and"}}],
                    "filter": [{"term": {"pollen.deleted": False}}],
                }
            },
        }
        response = self.client.search(index=",".join(names), body=body, params={"ignore_unavailable": "true"})
        hits = response.get("hits", {}).get("hits", [])
        return [
            SearchHit(
                names.get(h["_index"], h.get("_source", {}).get("pollen", {}).get("table", h["_index"])),
                str(h["_id"]),
                float(h.get("_score") or 0.0),
                dict(h.get("_source", {}).get("doc") or {}),
            )
            for h in hits
        ]

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


def _describe(status: int, error: Any) -> str:
    if isinstance(error, dict):
        return f"{status} {error.get('type', 'error')}: {str(error.get('reason', ''))[:200]}"
    return f"{status} {error or 'unexpected response'}"[:250]
