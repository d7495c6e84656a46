"""The lean DynamoDB client: its SigV4 signature equals botocore's, and its HTTP/1.1 exchange reads every response
framing a server may use (tested against a scripted server on loopback)."""

from __future__ import annotations

import datetime
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from pollen.adapters.dynamodb.wire import CONTENT_TYPE, TARGET_PREFIX, HttpConnection, WireClient

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("endpoint", "token"),
    [
        ("http://127.0.0.1:8000", None),
        ("https://dynamodb.eu-west-1.amazonaws.com", "FwoGZXIvYXdzE//token+with/slashes=="),
        ("http://LocalHost:80/base/", None),
        ("https://[::1]:8443", "session token  with   spaces"),
    ],
)
def test_signature_equals_botocores(monkeypatch: pytest.MonkeyPatch, endpoint: str, token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    client = WireClient(region="eu-west-1", endpoint_url=endpoint, credentials=credentials)
    frozen = credentials.get_frozen_credentials()
    url = endpoint.rstrip("/") + "/"
    # Two days in a row: the cached signing key must follow the date.
    for when in (
        datetime.datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC),
        datetime.datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC),
        datetime.datetime(2026, 1, 2, 0, 0, 2, tzinfo=UTC),
    ):
        for operation, body in (("BatchWriteItem", b'{"RequestItems":{}}'), ("ListTables", b"{}")):
            monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda when=when: when.replace(tzinfo=None))
            request = AWSRequest(
                method="POST",
                url=url,
                data=body,
                headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation},
            )
            SigV4Auth(frozen, "dynamodb", "eu-west-1").add_auth(request)
            ours = client._signer.headers(frozen, TARGET_PREFIX + operation, body, now=when.timestamp())
            expected = {name: request.headers[name] for name in request.headers.keys()}  # noqa: SIM118
            assert {k: v for k, v in ours.items() if k != "Host"} == expected


# --- HTTP framing against a scripted server ------------------------------------------------------------------------


class ScriptedServer:
    """Answers each request it reads with the next scripted bytes; ``None`` closes the connection (instead of an
    answer, or right after the answer before it)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.answers and self.answers[0] is None:  # answer, then close
                        self.answers.pop(0)
                        break

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(*answers: bytes | None) -> ScriptedServer:
        server = ScriptedServer(list(answers))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def _exchange(server: ScriptedServer, connection: HttpConnection | None = None) -> tuple[int, bytes, bool]:
    conn = connection or HttpConnection("127.0.0.1", server.port, ssl_context=None, connect_timeout_s=5)
    return conn.exchange(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 5)


def test_keep_alive_reuses_one_connection(serve: Any) -> None:
    server = serve(_ok(b'{"a":1}'), _ok(b'{"b":2}', "X-Other: y"))
    conn = HttpConnection("127.0.0.1", server.port, ssl_context=None, connect_timeout_s=5)
    assert _exchange(server, conn) == (200, b'{"a":1}', False)
    assert _exchange(server, conn) == (200, b'{"b":2}', False)
    conn.close()
    assert server.connections == 1 and server.requests[0].endswith(b"\r\n\r\n{}")


def test_chunked_body_with_extensions_and_trailers(serve: Any) -> None:
    chunks = b'4;ext=1\r\n{"a"\r\n9\r\n:1234567}\r\n0\r\nX-Trailer: 1\r\n\r\n'
    server = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert _exchange(server) == (200, b'{"a":1234567}', False)


def test_body_up_to_the_end_of_the_connection(serve: Any) -> None:
    server = serve(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"all":true}', None)
    assert _exchange(server) == (200, b'{"all":true}', True)


@pytest.mark.parametrize(
    "extra", [("Connection: close",), ("connection: Close",)], ids=["Connection", "lower-case connection"]
)
def test_connection_close_is_honoured(serve: Any, extra: tuple[str, ...]) -> None:
    server = serve(_ok(b"{}", *extra))
    assert _exchange(server)[2] is True


def test_http_1_0_response_closes_and_interim_responses_are_skipped(serve: Any) -> None:
    server = serve(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")
    assert _exchange(server) == (500, b"{}", True)


@pytest.mark.parametrize(
    "answer",
    [
        None,  # closed without an answer
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # closed in the middle of the body
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_broken_responses_raise_connection_error(serve: Any, answer: bytes | None) -> None:
    server = serve(answer, None)
    with pytest.raises(ConnectionError):
        _exchange(server)


def test_client_maps_errors_and_reconnects_after_a_close(serve: Any) -> None:
    error = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": "bad"}).encode()
    server = serve(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(error) + error,
        _ok(b'{"TableNames":["t"]}'),
    )
    client = WireClient(endpoint_url=f"http://127.0.0.1:{server.port}", credentials=Credentials("a", "b"))
    with pytest.raises(ClientError) as raised:
        client.batch_write_item(RequestItems={})
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "bad"}
    assert client.list_tables() == {"TableNames": ["t"]}
    client.close()
    assert server.connections == 2
    first = server.requests[0].decode()
    assert "X-Amz-Target: DynamoDB_20120810.BatchWriteItem\r\n" in first
    assert f"Host: 127.0.0.1:{server.port}\r\n" in first and "Authorization: AWS4-HMAC-SHA256 Credential=a/" in first
    assert first.endswith('\r\n\r\n{"RequestItems":{}}')
