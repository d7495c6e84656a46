"""A fault-injecting DynamoDB proxy: an HTTP server in front of the moto server, for tests and benchmarks.

moto never returns UnprocessedItems or throttling, and accepts what real DynamoDB rejects. This proxy forwards each
request to moto and, by configurable fractions, instead (or in part) answers the way DynamoDB does under load:

- ``unprocessed``: that share of each BatchWriteItem's requests (and BatchGetItem's keys), picked at random, is not
  forwarded and comes back in ``UnprocessedItems`` (``UnprocessedKeys``);
- ``throttle``: a ``ProvisionedThroughputExceededException`` (HTTP 400);
- ``server_error``: an ``InternalServerError`` (HTTP 500);
- ``reset``: the connection is reset (RST) without an answer, before forwarding;
- ``latency_s``: added delay before answering;
- ``wcu_per_s``: a write budget (token bucket, ``burst_s`` seconds deep): a batch's requests are accepted in order
  while the budget lasts, the rest are unprocessed, and a batch of which nothing fits is throttled;
- ``outage(seconds)``: every request is reset until it ends;
- ``poison_attribute``: a write holding an item with that attribute gets a ValidationException (a permanent,
  item-specific error that moto would never raise);
- ``error``: a fixed ``(code, message)`` answered with HTTP 400 to every request the faults apply to (an error
  real DynamoDB gives and moto does not, e.g. a ValidationException about a backfilling index).

The random faults (unprocessed, throttle, server_error, reset, latency) can be aimed: ``operations`` limits them to
those operations (e.g. ``{"Query"}``), ``indexes`` to Query and Scan requests that name one of those indexes (a
failing GSI while its table answers).

It also rejects what real DynamoDB rejects and moto accepts: BatchWriteItem with more than 25 requests, two requests
for one key in one batch (e.g. a put and a delete), items over 400 KB, BatchGetItem with more than 100 keys,
TransactWriteItems with more than 100 actions.

Requests are counted by operation (``requests``) and accepted writes by item (``written_items``). The server is
threaded, sets TCP_NODELAY and sends each response in one write.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pollen.adapters.dynamodb.codec import MAX_ITEM_BYTES, item_size, key_signature, write_units

LOOPBACK = "127.0.0.1"
CONTROL_PLANE = frozenset(
    {
        "DescribeTable",
        "CreateTable",
        "DeleteTable",
        "ListTables",
        "UpdateTimeToLive",
        "DescribeTimeToLive",
        "UpdateTable",
    }
)
WRITE_OPS = frozenset({"BatchWriteItem", "PutItem", "DeleteItem", "UpdateItem", "TransactWriteItems"})
_PREFIX = "com.amazonaws.dynamodb.v20120810#"
THROTTLE_MESSAGE = "The level of configured provisioned throughput for the table was exceeded."


@dataclass
class Faults:
    unprocessed: float = 0.0
    throttle: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    latency_s: float = 0.0
    wcu_per_s: float | None = None
    burst_s: float = 1.0
    poison_attribute: str | None = None
    #: (code, message) answered with HTTP 400 to every request the faults apply to.
    error: tuple[str, str] | None = None
    #: Operations the random faults apply to (None: every data-plane operation).
    operations: frozenset[str] | None = None
    #: Indexes the random faults apply to: only requests naming one of them in ``IndexName`` (None: any request).
    indexes: frozenset[str] | None = None
    seed: int | None = None


@dataclass
class _Bucket:
    rate: float
    depth_s: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = 0.0
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.rate * self.depth_s
        self.stamp = self.clock()

    def refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.rate * self.depth_s, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class _Rejection(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FaultProxy:
    """Context manager: ``with FaultProxy(moto.endpoint, Faults(unprocessed=0.3)) as proxy: proxy.endpoint``."""

    def __init__(
        self,
        upstream: str,
        faults: Faults | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(upstream)
        #: What the write budget and outages are timed by: a test that counts on them injects a clock it moves.
        self.clock = clock
        self.upstream_host = parts.hostname or LOOPBACK
        self.upstream_port = parts.port or 80
        self._lock = threading.Lock()
        self.faults = faults or Faults()
        self._local = threading.local()
        self._bucket: _Bucket | None = None
        self._bucket_rate: float | None = None
        self._outage_until = 0.0
        self._outage_plan: tuple[int, float] | None = None
        self._key_names: dict[str, tuple[str, ...]] = {}
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.written_items = 0
        self.consumed_wcu = 0.0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # idle keep-alive connections must not hold up stop()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- control ---------------------------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """New faults; a ``seed`` makes the random draws that follow repeatable."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def outage(self, seconds: float) -> None:
        """Reset every connection for the next ``seconds``."""
        with self._lock:
            self._outage_until = self.clock() + seconds

    @property
    def in_outage(self) -> bool:
        """Whether an outage is going on now."""
        with self._lock:
            return self.clock() < self._outage_until

    def end_outage(self) -> None:
        with self._lock:
            self._outage_until = 0.0
            self._outage_plan = None

    def schedule_outage(self, *, after_requests: int, seconds: float) -> None:
        """Start an outage of ``seconds`` once ``after_requests`` more data-plane requests have arrived."""
        with self._lock:
            self._outage_plan = (sum(self.requests.values()) + after_requests, seconds)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.injected.clear()
            self.written_items = 0
            self.consumed_wcu = 0.0

    def write_requests(self) -> int:
        return sum(self.requests[op] for op in WRITE_OPS)

    # --- internals -------------------------------------------------------------------------------------------------

    def _roll(self, fraction: float) -> bool:
        if fraction <= 0:
            return False
        with self._lock:
            return self._rng.random() < fraction

    def _faulty(self, operation: str, body: bytes) -> bool:
        ops = self.faults.operations
        if not (operation not in CONTROL_PLANE if ops is None else operation in ops):
            return False
        indexes = self.faults.indexes
        if indexes is None:
            return True
        if operation not in ("Query", "Scan") or b"IndexName" not in body:
            return False
        return json.loads(body).get("IndexName") in indexes

    def _budget(self) -> _Bucket | None:
        rate = self.faults.wcu_per_s
        if rate is None:
            self._bucket = None
            return None
        if self._bucket is None or self._bucket_rate != rate:
            self._bucket = _Bucket(rate, self.faults.burst_s, self.clock)
            self._bucket_rate = rate
        return self._bucket

    def _upstream(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
                self._local.conn = conn
            try:
                conn.request("POST", "/", body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _keys_of(self, table: str, headers: dict[str, str]) -> tuple[str, ...]:
        names = self._key_names.get(table)
        if names is None:
            describe = dict(headers, **{"X-Amz-Target": "DynamoDB_20120810.DescribeTable"})
            status, body = self._upstream(json.dumps({"TableName": table}).encode(), describe)
            if status != 200:
                return ()
            schema = json.loads(body)["Table"]["KeySchema"]
            names = tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))
            self._key_names[table] = names
        return names

    def _validate(
        self, operation: str, payload: dict[str, Any], headers: dict[str, str], payload_bytes: bytes = b""
    ) -> None:
        """Reject what real DynamoDB rejects (and moto accepts)."""
        poison = self.faults.poison_attribute
        items: list[dict[str, Any]] = []
        if operation == "BatchWriteItem":
            requests = payload.get("RequestItems", {})
            total = sum(len(v) for v in requests.values())
            if total > 25:
                raise _Rejection(
                    400,
                    "ValidationException",
                    "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: "
                    "Map value must satisfy constraint: [Member must have length less than or equal to 25]",
                )
            for table, table_requests in requests.items():
                names = self._keys_of(table, headers)
                seen: set[tuple[str, ...]] = set()
                for request in table_requests:
                    target = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
                    if target is None:
                        continue
                    if "PutRequest" in request:
                        items.append(target)
                    if names:
                        signature = key_signature(target, names)
                        if signature in seen:
                            raise _Rejection(
                                400, "ValidationException", "Provided list of item keys contains duplicates"
                            )
                        seen.add(signature)
        elif operation == "PutItem":
            items.append(payload.get("Item", {}))
        elif operation == "BatchGetItem":
            if sum(len(v.get("Keys", [])) for v in payload.get("RequestItems", {}).values()) > 100:
                raise _Rejection(400, "ValidationException", "Too many items requested for the BatchGetItem call")
        elif operation == "TransactWriteItems":
            actions = payload.get("TransactItems", [])
            if len(actions) > 100:
                raise _Rejection(400, "ValidationException", "Member must have length less than or equal to 100")
            items.extend(a["Put"]["Item"] for a in actions if "Put" in a)
        big = len(payload_bytes) > MAX_ITEM_BYTES
        for item in items:
            if big and item_size(item) > MAX_ITEM_BYTES:
                raise _Rejection(400, "ValidationException", "Item size has exceeded the maximum allowed size")
            if poison and poison in item:
                raise _Rejection(400, "ValidationException", f"One or more parameter values were invalid: {poison}")

    def _take_budget(
        self, operation: str, payload: dict[str, Any], faulty: bool
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """Apply the WCU budget and the unprocessed fraction; returns (payload to forward, withheld requests)."""
        withheld: dict[str, list[Any]] = {}
        if operation != "BatchWriteItem":
            bucket = self._budget() if operation in WRITE_OPS else None
            if bucket is not None:
                with self._lock:
                    bucket.refill()
                    if bucket.tokens < 1:
                        raise _Rejection(400, "ProvisionedThroughputExceededException", THROTTLE_MESSAGE)
                    bucket.tokens -= 1
                    self.consumed_wcu += 1
            return payload, withheld
        kept: dict[str, list[Any]] = {}
        accepted = over_budget = 0
        with self._lock:
            bucket = self._budget()
            if bucket is not None:
                bucket.refill()
            for table, requests in payload.get("RequestItems", {}).items():
                for request in requests:
                    item = request.get("PutRequest", {}).get("Item")
                    cost = write_units(item_size(item)) if item is not None and bucket is not None else 1
                    fits = bucket is None or bucket.tokens >= cost
                    unlucky = faulty and self.faults.unprocessed > 0 and self._rng.random() < self.faults.unprocessed
                    if fits and not unlucky:
                        if bucket is not None:
                            bucket.tokens -= cost
                        self.consumed_wcu += cost
                        kept.setdefault(table, []).append(request)
                        accepted += 1
                    else:
                        withheld.setdefault(table, []).append(request)
                        self.injected["unprocessed" if fits else "over_budget"] += 1
                        over_budget += 0 if fits else 1
            if accepted == 0 and over_budget:
                raise _Rejection(400, "ProvisionedThroughputExceededException", THROTTLE_MESSAGE)
        return {**payload, "RequestItems": kept}, withheld

    def _split_get(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        kept: dict[str, Any] = {}
        withheld: dict[str, Any] = {}
        with self._lock:
            for table, spec in payload.get("RequestItems", {}).items():
                keys = spec.get("Keys", [])
                stay = [k for k in keys if self._rng.random() >= self.faults.unprocessed]
                back = [k for k in keys if k not in stay]
                if stay:
                    kept[table] = {**spec, "Keys": stay}
                if back:
                    withheld[table] = {**spec, "Keys": back}
                    self.injected["unprocessed_keys"] += len(back)
        return {**payload, "RequestItems": kept}, withheld

    def handle(self, operation: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        """Decide the answer to one request: (status, body), or None to reset the connection."""
        with self._lock:
            self.requests[operation] += 1
            if self._outage_plan is not None and sum(self.requests.values()) > self._outage_plan[0]:
                self._outage_until = self.clock() + self._outage_plan[1]
                self._outage_plan = None
            in_outage = self.clock() < self._outage_until
        if in_outage:
            self.injected["outage"] += 1
            return None
        faulty = self._faulty(operation, body)
        if faulty and self._roll(self.faults.reset):
            self.injected["reset"] += 1
            return None
        if self.faults.latency_s > 0 and faulty:
            time.sleep(self.faults.latency_s)
        try:
            if operation == "DescribeTable" or operation in CONTROL_PLANE:
                return self._upstream(body, headers)
            payload = json.loads(body) if body else {}
            self._validate(operation, payload, headers, body)
            if faulty and self.faults.error is not None:
                self.injected["error"] += 1
                raise _Rejection(400, *self.faults.error)
            if faulty and self._roll(self.faults.throttle):
                self.injected["throttle"] += 1
                raise _Rejection(400, "ProvisionedThroughputExceededException", THROTTLE_MESSAGE)
            if faulty and self._roll(self.faults.server_error):
                self.injected["server_error"] += 1
                raise _Rejection(500, "InternalServerError", "Internal server error")
            if operation == "BatchGetItem" and faulty and self.faults.unprocessed > 0:
                forward, withheld_keys = self._split_get(payload)
                result: dict[str, Any] = {"Responses": {}, "UnprocessedKeys": {}}
                if forward["RequestItems"]:
                    status, answer = self._upstream(json.dumps(forward).encode(), headers)
                    if status != 200:
                        return status, answer
                    result = json.loads(answer)
                result.setdefault("UnprocessedKeys", {}).update(withheld_keys)
                return 200, json.dumps(result).encode()
            forward, withheld = self._take_budget(operation, payload, faulty)
            if operation != "BatchWriteItem":
                status, answer = self._upstream(body, headers)
                if status == 200 and operation in WRITE_OPS:
                    with self._lock:
                        self.written_items += len(payload.get("TransactItems", [])) or 1
                return status, answer
            if forward["RequestItems"]:
                status, answer = self._upstream(json.dumps(forward).encode(), headers)
                if status != 200:
                    return status, answer
                result = json.loads(answer)
                with self._lock:
                    self.written_items += sum(len(v) for v in forward["RequestItems"].values())
            else:
                result = {"UnprocessedItems": {}}
            unprocessed = result.setdefault("UnprocessedItems", {})
            for table, requests in withheld.items():
                unprocessed.setdefault(table, []).extend(requests)
            return 200, json.dumps(result).encode()
        except _Rejection as rejection:
            return rejection.status, json.dumps(
                {"__type": _PREFIX + rejection.code, "message": rejection.message}
            ).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                operation = target.rsplit(".", 1)[-1]
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
                try:
                    answer = proxy.handle(operation, body, headers)
                except (OSError, http.client.HTTPException):
                    answer = (
                        500,
                        json.dumps({"__type": _PREFIX + "InternalServerError", "message": "upstream failed"}).encode(),
                    )
                if answer is None:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status, payload = answer
                reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}.get(status, "Status")
                head = (
                    f"HTTP/1.1 {status} {reason}\r\n"
                    "Content-Type: application/x-amz-json-1.0\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4().hex}\r\n\r\n"
                ).encode("ascii")
                self.wfile.write(head + payload)

        return Handler
