"""A stand-in for an IAM-protected Amazon OpenSearch Service domain (or a serverless collection) on loopback.

Every request must carry a valid SigV4 signature for the known test credentials: the signature is recomputed with
botocore's own SigV4 machinery from the request as received (method, path, query, the signed headers, the body's
SHA-256) and compared; a missing or wrong one gets 403 in OpenSearch's error format, as the domain's access policy
would give. The API answers in OpenSearch's documented formats, enough for pollen's adapter: ``_bulk`` (the
scripted upsert's effect is emulated: applied only when the change's version is newer, else ``noop``), ``_search``
(with ``scroll``), ``_delete_by_query``, document get, index exists/create/delete.

Use as a context manager: ``with OpenSearchStandIn() as domain: domain.url``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TEST_ACCESS_KEY = "AKIAOPENSEARCHSTANDIN"
TEST_SECRET_KEY = "opensearch-standin-secret-key"

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


def error_body(status: int, kind: str, reason: str) -> dict[str, Any]:
    """OpenSearch's error format."""
    return {
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status,
    }


def version_newer(incoming: str, stored: str | None) -> bool:
    """The painless VERSION_SCRIPT's order: by length, then lexically."""
    if stored is None:
        return True
    return (len(incoming), incoming) > (len(stored), stored)


@dataclass
class Document:
    source: dict[str, Any]
    version: int = 1
    seq_no: int = 0


@dataclass
class RequestLog:
    method: str
    path: str
    signed: bool
    status: int


@dataclass
class Domain:
    """The domain's state (shared by the server threads; guarded by ``lock``)."""

    region: str
    service: str
    credentials: Credentials
    indices: dict[str, dict[str, Document]] = field(default_factory=dict)
    requests: list[RequestLog] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class OpenSearchStandIn:
    """Serve the stand-in on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        service: str = "es",
        access_key: str = TEST_ACCESS_KEY,
        secret_key: str = TEST_SECRET_KEY,
        max_skew_s: float = 300.0,
    ) -> None:
        self.domain = Domain(region, service, Credentials(access_key, secret_key))
        self.max_skew_s = max_skew_s
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """What a client of the stand-in needs: the URL, the region and the credentials it accepts."""
        creds = self.domain.credentials
        return {
            "POLLEN_SEARCH_URL": self.url,
            "AWS_REGION": self.domain.region,
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        }

    def start(self) -> OpenSearchStandIn:
        handler = type("Handler", (_Handler,), {"domain": self.domain, "max_skew_s": self.max_skew_s})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="opensearch-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenSearchStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection for tests -----------------------------------------------------------------------------------

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        with self.domain.lock:
            return {
                doc_id: json.loads(json.dumps(d.source)) for doc_id, d in self.domain.indices.get(index, {}).items()
            }

    def put_document(self, index: str, doc_id: str, source: dict[str, Any]) -> None:
        with self.domain.lock:
            self.domain.indices.setdefault(index, {})[doc_id] = Document(source, seq_no=self.domain.next_seq())

    @property
    def refused(self) -> int:
        return self.domain.refused


class _Handler(BaseHTTPRequestHandler):
    domain: Domain
    max_skew_s: float
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        signed = False
        try:
            self._verify(raw)
            signed = True
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            status, payload = self._route(body)
        except _Refused as refused:
            status, payload = refused.status, refused.body
            if status == 403:
                with self.domain.lock:
                    self.domain.refused += 1
        except Exception as exc:  # a stand-in bug must show up as a 500, not a hung client
            status, payload = 500, error_body(500, "exception", f"{type(exc).__name__}: {exc}")
        with self.domain.lock:
            self.domain.requests.append(RequestLog(self.command, self.path, signed, status))
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- SigV4 --------------------------------------------------------------------------------------------------

    def _verify(self, body: bytes) -> None:
        header = self.headers.get("Authorization")
        if not header:
            raise _Refused(403, error_body(403, "security_exception", "no permissions: the request is not signed"))
        match = _AUTH.match(header.strip())
        if not match:
            raise _Refused(403, error_body(403, "security_exception", "authorization header is not SigV4"))
        domain = self.domain
        if match["key"] != domain.credentials.access_key:
            raise _Refused(403, error_body(403, "security_exception", "the security token included is invalid"))
        if (match["region"], match["service"]) != (domain.region, domain.service):
            raise _Refused(
                403,
                error_body(
                    403,
                    "security_exception",
                    f"credential should be scoped to region {domain.region!r} and service {domain.service!r}",
                ),
            )
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            when = time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.timezone
        except ValueError:
            raise _Refused(403, error_body(403, "security_exception", "X-Amz-Date is missing or bad")) from None
        if abs(time.time() - when) > self.max_skew_s or not amz_date.startswith(match["date"]):
            raise _Refused(403, error_body(403, "security_exception", "signature expired or date mismatch"))
        content_hash = self.headers.get("X-Amz-Content-SHA256")
        if content_hash and content_hash != "UNSIGNED-PAYLOAD" and content_hash != hashlib.sha256(body).hexdigest():
            raise _Refused(403, error_body(403, "security_exception", "payload hash does not match the body"))
        signed_names = match["headers"].split(";")
        request = AWSRequest(
            method=self.command,
            url=f"http://{self.headers.get('Host', '')}{self.path}",
            data=body,
            headers={name: self.headers.get(name, "") for name in signed_names},
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(domain.credentials, domain.service, domain.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _Refused(
                403,
                error_body(
                    403,
                    "security_exception",
                    "the request signature we calculated does not match the signature you provided",
                ),
            )

    # -- the API ------------------------------------------------------------------------------------------------

    def _route(self, body: bytes) -> tuple[int, Any]:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        params = dict(parse_qsl(parts.query))
        method = self.command
        data: Any = json.loads(body) if body and segments[-1:] != ["_bulk"] else None
        if not segments:
            return 200, {
                "name": "standin",
                "cluster_name": "pollen-standin",
                "version": {"distribution": "opensearch", "number": "2.19.0"},
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            }
        if segments == ["_bulk"] and method in ("POST", "PUT"):
            return 200, self._bulk(body)
        if segments[:2] == ["_search", "scroll"]:
            if method == "DELETE":
                return 200, {"succeeded": True, "num_freed": 1}
            return 200, _search_response([], scroll_id=(data or {}).get("scroll_id") or params.get("scroll_id"))
        index_names, rest = segments[0], segments[1:]
        ignore_unavailable = params.get("ignore_unavailable") == "true"
        if rest == ["_search"] and method in ("GET", "POST"):
            return 200, self._search(index_names, data or {}, params, ignore_unavailable)
        if rest == ["_delete_by_query"] and method == "POST":
            return 200, self._delete_by_query(index_names, data or {}, ignore_unavailable)
        if len(rest) == 2 and rest[0] == "_doc" and method in ("GET", "HEAD"):
            return self._get(index_names, rest[1])
        if not rest:
            return self._index_api(index_names, method)
        return 400, error_body(400, "illegal_argument_exception", f"no handler for {method} {parts.path}")

    def _indices(self, names: str, ignore_unavailable: bool) -> list[str]:
        wanted = [n for n in names.split(",") if n]
        missing = [n for n in wanted if n not in self.domain.indices]
        if missing and not ignore_unavailable:
            raise _Refused(404, _no_such_index(missing[0]))
        return [n for n in wanted if n in self.domain.indices]

    def _index_api(self, name: str, method: str) -> tuple[int, Any]:
        with self.domain.lock:
            exists = name in self.domain.indices
            if method == "HEAD":
                return (200 if exists else 404), None
            if method == "PUT":
                if exists:
                    return 400, error_body(400, "resource_already_exists_exception", f"index [{name}] already exists")
                self.domain.indices[name] = {}
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            if method == "DELETE":
                if not exists:
                    return 404, _no_such_index(name)
                del self.domain.indices[name]
                return 200, {"acknowledged": True}
            if method == "GET":
                if not exists:
                    return 404, _no_such_index(name)
                return 200, {name: {"aliases": {}, "mappings": {}, "settings": {}}}
        return 405, error_body(405, "method_not_allowed", method)

    def _get(self, index: str, doc_id: str) -> tuple[int, Any]:
        with self.domain.lock:
            if index not in self.domain.indices:
                return 404, _no_such_index(index)
            doc = self.domain.indices[index].get(doc_id)
            if doc is None:
                return 404, {"_index": index, "_id": doc_id, "found": False}
            return 200, {
                "_index": index,
                "_id": doc_id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": json.loads(json.dumps(doc.source)),
            }

    def _bulk(self, body: bytes) -> dict[str, Any]:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        items: list[dict[str, Any]] = []
        errors = False
        with self.domain.lock:
            pairs = iter(lines)
            for action in pairs:
                ((op, meta),) = action.items()
                source = next(pairs) if op in ("index", "create", "update") else None
                outcome = self._bulk_item(op, meta, source)
                errors = errors or "error" in outcome
                items.append({op: outcome})
        return {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, op: str, meta: dict[str, Any], source: dict[str, Any] | None) -> dict[str, Any]:
        index, doc_id = str(meta["_index"]), str(meta["_id"])
        docs = self.domain.indices.setdefault(index, {})  # auto-create, as the default cluster setting allows
        current = docs.get(doc_id)
        head = {"_index": index, "_id": doc_id}
        if op == "delete":
            if current is None:
                return {**head, "result": "not_found", "status": 404, "_version": 1}
            del docs[doc_id]
            return {**head, "result": "deleted", "status": 200, "_version": current.version + 1}
        if op in ("index", "create"):
            if op == "create" and current is not None:
                return {
                    **head,
                    "status": 409,
                    "error": {
                        "type": "version_conflict_engine_exception",
                        "reason": f"[{doc_id}]: version conflict, document already exists",
                    },
                }
            doc = Document(dict(source or {}), (current.version + 1) if current else 1, self.domain.next_seq())
            docs[doc_id] = doc
            return {
                **head,
                "result": "updated" if current else "created",
                "status": 200 if current else 201,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
            }
        assert source is not None
        script = source.get("script")
        if not (source.get("scripted_upsert") and isinstance(script, dict)):
            return {
                **head,
                "status": 400,
                "error": {
                    "type": "action_request_validation_exception",
                    "reason": "the stand-in emulates only scripted upserts",
                },
            }
        params = script.get("params") or {}
        stored = (current.source.get("pollen") or {}).get("version") if current else None
        if current is not None and not version_newer(str(params["version"]), None if stored is None else str(stored)):
            return {
                **head,
                "result": "noop",
                "status": 200,
                "_version": current.version,
                "_seq_no": current.seq_no,
                "_primary_term": 1,
                "_shards": {"total": 0, "successful": 0, "failed": 0},
            }
        new_source = {
            "doc": params.get("doc"),
            "pollen": {
                "version": params["version"],
                "deleted": params["deleted"],
                "sequence_number": params["sequence_number"],
                "table": params["table"],
                "updated_at": params["now"],
            },
        }
        doc = Document(new_source, (current.version + 1) if current else 1, self.domain.next_seq())
        docs[doc_id] = doc
        return {
            **head,
            "result": "updated" if current else "created",
            "status": 200 if current else 201,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
        }

    def _search(
        self, names: str, body: dict[str, Any], params: dict[str, str], ignore_unavailable: bool
    ) -> dict[str, Any]:
        with self.domain.lock:
            indices = self._indices(names, ignore_unavailable)
            hits = [
                {"_index": index, "_id": doc_id, "_score": 1.0, "_source": json.loads(json.dumps(doc.source))}
                for index in indices
                for doc_id, doc in sorted(self.domain.indices[index].items())
                if matches(doc.source, body.get("query") or {"match_all": {}})
            ]
        size = int(body.get("size", params.get("size", 10)))
        scroll_id = uuid.uuid4().hex if "scroll" in params else None
        return _search_response(hits if scroll_id else hits[:size], scroll_id=scroll_id)

    def _delete_by_query(self, names: str, body: dict[str, Any], ignore_unavailable: bool) -> dict[str, Any]:
        deleted = 0
        with self.domain.lock:
            for index in self._indices(names, ignore_unavailable):
                docs = self.domain.indices[index]
                for doc_id in [i for i, d in docs.items() if matches(d.source, body.get("query") or {})]:
                    del docs[doc_id]
                    deleted += 1
        return {
            "took": 1,
            "timed_out": False,
            "total": deleted,
            "deleted": deleted,
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": [],
        }


def _no_such_index(name: str) -> dict[str, Any]:
    body = error_body(404, "index_not_found_exception", f"no such index [{name}]")
    body["error"]["index"] = name
    return body


def _search_response(hits: list[dict[str, Any]], *, scroll_id: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if hits else None, "hits": hits},
    }
    if scroll_id is not None:
        response["_scroll_id"] = scroll_id
    return response


def _field(source: Any, path: str) -> Iterator[Any]:
    value = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return
        value = value[part]
    yield value


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from _leaves(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner)
    elif value is not None:
        yield str(value)


def matches(source: dict[str, Any], query: dict[str, Any]) -> bool:
    """The subset of the query DSL pollen sends: bool, term, range, match_all, simple_query_string."""
    if not query or "match_all" in query:
        return True
    if "bool" in query:
        clause = query["bool"]

        def listed(name: str) -> list[dict[str, Any]]:
            value = clause.get(name, [])
            return value if isinstance(value, list) else [value]

        return (
            all(matches(source, q) for q in listed("must") + listed("filter"))
            and not any(matches(source, q) for q in listed("must_not"))
            and (not listed("should") or any(matches(source, q) for q in listed("should")))
        )
    if "term" in query:
        ((path, wanted),) = query["term"].items()
        wanted = wanted.get("value") if isinstance(wanted, dict) else wanted
        return any(v == wanted for v in _field(source, path))
    if "range" in query:
        ((path, bounds),) = query["range"].items()
        ops = {
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
        }
        return any(
            isinstance(v, int | float) and all(ops[op](v, bound) for op, bound in bounds.items() if op in ops)
            for v in _field(source, path)
        )
    if "simple_query_string" in query:
        spec = query["simple_query_string"]
        terms = [t.lower() for t in str(spec.get("query", "")).split() if t]
        fields = spec.get("fields") or ["*"]
        words: set[str] = set()
        for f in fields:
            root = f.removesuffix(".*").removesuffix("*")
            for value in _field(source, root) if root else iter([source]):
                for leaf in _leaves(value):
                    words |= set(re.findall(r"\w+", leaf.lower()))
        found = [t in words for t in terms]
        return all(found) if spec.get("default_operator", "or") == "and" else any(found)
    raise _Refused(400, error_body(400, "parsing_exception", f"the stand-in does not know the query {sorted(query)}"))
