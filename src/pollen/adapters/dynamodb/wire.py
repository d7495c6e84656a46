"""A lean DynamoDB JSON client for the write engine's hot path.

botocore walks its service model in Python for every attribute of every item, on the way out (validation and
serialization) and on the way back (parsing). The store already produces DynamoDB's wire format itself (the codec),
so this client only signs the body with SigV4 and sends it over one keep-alive connection. Credentials come from
botocore (``get_frozen_credentials`` per request, so session tokens and refresh work as in boto3); the signature is
computed here for the one request shape this client sends (a JSON POST), with the signing key cached per day, and a
unit test holds it equal to botocore's ``SigV4Auth``. HTTP is a minimal HTTP/1.1 exchange (one write per request;
``Content-Length``, chunked or read-to-close responses): ``http.client``, which parses every response's headers with
the ``email`` package, and botocore's request and signer objects took most of a request's client CPU.

It offers the same method names and response shapes as a boto3 client (``client.batch_write_item(RequestItems=...)``),
except that binary values come back base64-encoded (the codec accepts both), plus ``call_json`` for a body already
written as JSON, and raises botocore's ``ClientError`` for service errors, so the store and
:func:`pollen.adapters.dynamodb.errors.translate` treat both clients alike.

Where and how it connects follows botocore (:func:`.client.resolve_endpoint`): the endpoint URL and region that a
boto3 client built from the same settings would use (``AWS_ENDPOINT_URL*``, the config file, FIPS, dual-stack, the
China partition) and its CA bundle; where boto3 would go through a proxy or present a client certificate, the store
uses the boto3 transport instead. A keep-alive connection that the server closed while it was idle is replaced before
the next request, and a request that such a connection loses before any byte of an answer is sent once more on a new
one, as urllib3 does for boto3. A connection that cannot be opened (refused, unknown host) raises botocore's
``EndpointConnectionError``, like boto3.

Not thread-safe: the store gives each worker thread its own client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from botocore.utils import normalize_url_path

from pollen.adapters.dynamodb.client import LOCAL_CREDENTIALS, SESSION_LOCK, Endpoint, is_loopback, resolve_endpoint

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
SERVICE = "dynamodb"
#: Response headers beyond this are refused (DynamoDB sends well under 1 KB).
MAX_HEADER_BYTES = 64 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: Request bodies: ``json.dumps(params, separators=(",", ":"), default=_json_default)``, with the encoder built once.
_BODY_JSON = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class SigV4Signer:
    """AWS Signature Version 4 for this client's requests: ``POST`` to one path, no query string, signed headers
    content-type, host, x-amz-date, x-amz-security-token (with a session token) and x-amz-target, payload hashed.
    Gives the same ``Authorization`` as botocore's ``SigV4Auth`` for such a request; the signing key (four HMACs)
    is derived once per day and secret instead of per request."""

    def __init__(self, *, host: str, path: str, region: str, service: str = SERVICE) -> None:
        self.host = host
        self.region = region
        self.service = service
        self.canonical_path = quote(normalize_url_path(path), safe="/~")
        self._key: tuple[str, str, bytes] = ("", "", b"")
        self._stamp: tuple[int, str] = (-1, "")

    def _amz_date(self, now: float | None) -> str:
        second = int(time.time() if now is None else now)
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return self._stamp[1]

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if cached_secret != secret or cached_day != day:
            key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), self.region), self.service), "aws4_request")
            self._key = (secret, day, key)
        return key

    def headers(self, credentials: Any, target: str, body: bytes, now: float | None = None) -> dict[str, str]:
        """The signed headers of one request (``Host`` included) for frozen credentials."""
        amz_date = self._amz_date(now)
        day = amz_date[:8]
        token = credentials.token
        canonical_headers = f"content-type:{CONTENT_TYPE}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
        if token:
            canonical_headers += f"x-amz-security-token:{' '.join(token.split())}\n"
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
        canonical_headers += f"x-amz-target:{target}\n"
        canonical = f"POST\n{self.canonical_path}\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day), to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        headers = {
            "Host": self.host,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": target,
            "X-Amz-Date": amz_date,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature}"
            ),
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers


class HttpConnection:
    """One HTTP/1.1 keep-alive connection that sends a request in one write and reads a response with a
    ``Content-Length``, a chunked body, or a body up to the end of the connection. Raises ``OSError`` (a
    ``ConnectionError`` for a broken or malformed response, ``TimeoutError`` on a timeout)."""

    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None, connect_timeout_s: float) -> None:
        self.sock = self._connect(host, port, connect_timeout_s)
        if ssl_context is not None:
            try:
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
            except BaseException:
                self.sock.close()
                raise
        self._buffer = bytearray()
        #: Whether any byte of the current exchange's response has arrived.
        self.answered = False

    @staticmethod
    def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
        family = _literal_family(host)
        if family is None:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        else:  # an IP address: no name to resolve
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout_s)
                sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        self.sock.close()

    def dropped(self) -> bool:
        """Whether an idle connection is unusable: readable (the server closed it, or sent something unasked)."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def exchange(self, request: bytes, timeout_s: float) -> tuple[int, bytes, bool]:
        """Send one request; returns (status, body, whether the server closes the connection)."""
        self.sock.settimeout(timeout_s)
        self._buffer.clear()
        self.answered = False
        self.sock.sendall(request)
        while True:
            version, status, headers = self._read_head()
            if not 100 <= status < 200:
                break
        close = version == "HTTP/1.0" or "close" in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ConnectionError(f"bad Content-Length {headers['content-length'][:20]!r}") from None
            body = self._read_exact(length)
        else:
            body = self._read_to_end()
            close = True
        if self._buffer:  # bytes after the response: the connection's state is unknown
            close = True
        return status, body, close

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection before the response was complete")
        self.answered = True
        self._buffer += chunk

    def _read_head(self) -> tuple[str, int, dict[str, str]]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ConnectionError("response headers too long")
            self._fill()
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise ConnectionError(f"malformed status line {lines[0][:60]!r}") from None
        if not version.startswith("HTTP/"):
            raise ConnectionError(f"malformed status line {lines[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return version, status, headers

    def _read_exact(self, length: int) -> bytes:
        while len(self._buffer) < length:
            self._fill()
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ConnectionError("chunk header too long")
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self._read_line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ConnectionError(f"malformed chunk size {line[:20]!r}") from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            if self._read_line():
                raise ConnectionError("malformed chunked body")

    def _read_to_end(self) -> bytes:
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                body = bytes(self._buffer)
                self._buffer.clear()
                return body
            self.answered = True
            self._buffer += chunk


def _literal_family(host: str) -> socket.AddressFamily | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


class _NoCredentials:
    """What a client holds when the environment has no credentials: every call fails with NoCredentialsError."""

    def get_frozen_credentials(self) -> None:
        return None


#: Errors of a request on a reused connection that say the server had closed it (with no byte of an answer sent).
_CLOSED_ERRORS = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def session_credentials(endpoint_url: str, session: Any = None) -> Any:
    """The botocore session's credentials (refreshing ones included); without any, dummy credentials for a loopback
    endpoint (the embedded stack), else an object whose calls raise NoCredentialsError."""
    with SESSION_LOCK:
        credentials = (session or boto3.session.Session()).get_credentials()
    if credentials is not None:
        return credentials
    if is_loopback(endpoint_url):
        return Credentials(LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"])
    return _NoCredentials()


class WireClient:
    """DynamoDB over one HTTP(S) keep-alive connection; method names as boto3's (``batch_write_item`` ...).

    ``endpoint_url`` is used as given; without it the endpoint, region and CA bundle are botocore's
    (:func:`.client.resolve_endpoint`). ``verify``: a CA bundle path, True for botocore's default bundle, False
    for no verification."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        credentials: Any = None,
        verify: str | bool = True,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        target_prefix: str = TARGET_PREFIX,
    ) -> None:
        if endpoint_url is None:
            resolved = resolve_endpoint(region=region)
            endpoint_url, region, verify = resolved.url, resolved.region, resolved.verify
        self.region = region
        self.endpoint_url = endpoint_url.rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        default_port = 443 if self._https else 80
        self._port = parts.port or default_port
        self._path = parts.path.rstrip("/") + "/"
        # The Host header as botocore signs it: lower-case name, the port only when it is not the scheme's default.
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != default_port:
            host_header += f":{parts.port}"
        self._signer = SigV4Signer(host=host_header, path=self._path, region=region)
        self._request_line = f"POST {self._path} HTTP/1.1\r\n".encode("ascii")
        #: The X-Amz-Target prefix: DynamoDB's, or DynamoDB Streams' (same signing name, same JSON protocol).
        self._target_prefix = target_prefix
        self._credentials = credentials if credentials is not None else session_credentials(self.endpoint_url)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._ssl_context: ssl.SSLContext | None = None
        if self._https:
            self._ssl_context = _ssl_context(verify)
        self._conn: HttpConnection | None = None
        #: Requests sent once more because the server had closed the idle connection they went out on.
        self.resent = 0

    def _open(self, operation: str) -> HttpConnection:
        try:
            return HttpConnection(
                self._host, self._port, ssl_context=self._ssl_context, connect_timeout_s=self.connect_timeout_s
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url) from exc
        except OSError as exc:  # refused, unknown host, no route, TLS handshake refused
            raise EndpointConnectionError(endpoint_url=self.endpoint_url, error=_reason(exc)) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, operation: str, params: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """One DynamoDB API call; returns the parsed JSON response or raises ClientError, botocore's
        EndpointConnectionError (cannot connect) or ConnectionError (the connection broke)."""
        return self.call_json(operation, _BODY_JSON.encode(params), timeout_s=timeout_s)

    def call_json(self, operation: str, text: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """:meth:`call` with the request's parameters already written as JSON (the store builds BatchWriteItem
        bodies from each item's JSON, serialized once when its content hash was computed)."""
        body = text.encode("utf-8")
        credentials = self._credentials.get_frozen_credentials()
        if credentials is None or credentials.access_key is None:
            raise NoCredentialsError()
        headers = self._signer.headers(credentials, self._target_prefix + operation, body)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = b"".join(
            (self._request_line, head.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body)
        )
        status, payload = self._exchange(operation, request, timeout_s or self.read_timeout_s)
        if status == 200:
            return dict(json.loads(payload))
        raise self._error(operation, status, payload)

    def _exchange(self, operation: str, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        conn = self._conn
        if conn is not None and conn.dropped():  # closed by the server while idle: not a failure
            self.close()
            conn = None
        reused = conn is not None
        if conn is None:
            conn = self._conn = self._open(operation)
        try:
            status, payload, will_close = conn.exchange(request, timeout_s)
        except _CLOSED_ERRORS as exc:
            self.close()
            if not reused or conn.answered:
                raise ConnectionError(f"{operation}: {type(exc).__name__}: {exc}"[:200]) from exc
            # The server closed the idle connection as the request went out: nothing was answered, so nothing
            # was done; send it once more on a new connection, as urllib3 does for boto3.
            self.resent += 1
            conn = self._conn = self._open(operation)
            try:
                status, payload, will_close = conn.exchange(request, timeout_s)
            except OSError as again:
                self.close()
                raise ConnectionError(f"{operation}: {type(again).__name__}: {again}"[:200]) from again
        except OSError as exc:
            self.close()
            raise ConnectionError(f"{operation}: {type(exc).__name__}: {exc}"[:200]) from exc
        if will_close:
            self.close()
        return status, payload

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


def _ssl_context(verify: str | bool) -> ssl.SSLContext:
    """TLS as botocore sets it up: its CA bundle (or the one configured), or no verification."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        from botocore.httpsession import get_cert_path

        context = ssl.create_default_context(cafile=str(get_cert_path(verify)))
    context.set_alpn_protocols(["http/1.1"])
    return context


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    return f"{type(exc).__name__}: {exc}"[:120]


def wire_client_factory(
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    endpoint: Endpoint | None = None,
    read_timeout_s: float = 30.0,
    session: Any = None,
) -> Callable[[], WireClient]:
    """A factory for per-worker clients sharing one credentials object. ``endpoint``: botocore's resolution (see
    :func:`.client.resolve_endpoint`), made here from ``region`` and ``endpoint_url`` when not given; ``session``:
    the boto3 session whose credentials they sign with (a new one when not given)."""
    resolved = endpoint or resolve_endpoint(region=region, endpoint_url=endpoint_url, session=session)
    credentials = session_credentials(resolved.url, session)

    def factory() -> WireClient:
        return WireClient(
            region=resolved.region,
            endpoint_url=resolved.url,
            credentials=credentials,
            verify=resolved.verify,
            read_timeout_s=read_timeout_s,
        )

    return factory
