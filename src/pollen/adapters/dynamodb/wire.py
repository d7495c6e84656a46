"""A lean DynamoDB JSON client for the write engine's hot path.

botocore walks its service model in Python for every attribute of every item, on the way out (validation and
serialization) and on the way back (parsing). The store already produces DynamoDB's wire format itself (the codec),
so this client only signs the body with SigV4 (botocore's signer, so credentials, session tokens and refresh work as
in boto3) and sends it over one keep-alive connection. It offers the same method names and response shapes as a
boto3 client (``client.batch_write_item(RequestItems=...)``), except that binary values come back base64-encoded
(the codec accepts both), and raises botocore's ``ClientError`` for service errors, so the store and
:func:`pollen.adapters.dynamodb.errors.translate` treat both clients alike.

Not thread-safe: the store gives each worker thread its own client.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, NoCredentialsError

from pollen.adapters.dynamodb.client import LOCAL_CREDENTIALS

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


class WireClient:
    """DynamoDB over one HTTP(S) keep-alive connection; method names as boto3's (``batch_write_item`` ...)."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        credentials: Any = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.region = region
        self.endpoint_url = (endpoint_url or f"https://dynamodb.{region}.amazonaws.com").rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/"
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"
        if credentials is None:
            credentials = boto3.session.Session().get_credentials()
            if credentials is None:
                if endpoint_url is None:
                    raise NoCredentialsError()
                credentials = Credentials(
                    LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"]
                )
        self._credentials = credentials
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.connect_timeout_s)
            conn.connect()
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, operation: str, params: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """One DynamoDB API call; returns the parsed JSON response or raises ClientError / ConnectionError."""
        body = json.dumps(params, separators=(",", ":"), default=_json_default).encode("utf-8")
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation},
        )
        SigV4Auth(self._credentials.get_frozen_credentials(), "dynamodb", self.region).add_auth(request)
        headers = dict(request.headers.items())
        try:
            conn = self._connection()
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s or self.read_timeout_s)
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status = response.status
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionError(f"{operation}: {type(exc).__name__}: {exc}"[:200]) from exc
        if status == 200:
            return dict(json.loads(payload))
        raise self._error(operation, status, payload)

    @staticmethod
    def _error(operation: str, status: int, payload: bytes) -> ClientError:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        code = str(data.get("__type", "")).rsplit("#", 1)[-1] or (
            "InternalServerError" if status >= 500 else f"HTTP{status}"
        )
        message = str(data.get("message") or data.get("Message") or "")
        response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        for extra in ("CancellationReasons", "Item"):
            if extra in data:
                response[extra] = data[extra]
        return ClientError(response, operation)

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        operation = _camel(name)

        def method(**params: Any) -> dict[str, Any]:
            return self.call(operation, params)

        return method


def wire_client_factory(
    *, region: str, endpoint_url: str | None, read_timeout_s: float = 30.0
) -> Callable[[], WireClient]:
    """A factory for per-worker clients sharing one credentials object."""
    session_credentials = boto3.session.Session().get_credentials()

    def factory() -> WireClient:
        return WireClient(
            region=region, endpoint_url=endpoint_url, credentials=session_credentials, read_timeout_s=read_timeout_s
        )

    return factory
