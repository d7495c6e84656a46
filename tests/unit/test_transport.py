"""The DynamoDB transport behaves like boto3 where it matters: botocore's endpoint, region and CA bundle; the boto3
transport where a proxy is set; an idle connection the server closed is not a failure; no dummy credentials away
from loopback; an endpoint that never answered is not retried, one that did is."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from pollen.adapters.dynamodb.client import make_client, resolve_endpoint
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import WireClient, wire_client_factory
from pollen.backoff import Backoff
from pollen.errors import ConfigError, ServiceUnavailable, TransientError
from pollen.observability import MetricsRecorder
from pollen.settings import load_settings
from pollen.wiring import build_store

OK_BODY = b'{"TableNames":["t"]}'


def _ok(body: bytes = OK_BODY) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean AWS environment: no endpoint, proxy, CA or config-file settings from the machine running the tests."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "AWS_PROFILE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return monkeypatch


# --- endpoint resolution ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "config", "region", "expected"),
    [
        ({"AWS_ENDPOINT_URL": "http://localhost:4566"}, "", "us-east-1", "http://localhost:4566"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8001"}, "", "us-east-1", "http://127.0.0.1:8001"),
        ({}, "[default]\nendpoint_url = http://127.0.0.1:8002\n", "us-east-1", "http://127.0.0.1:8002"),
        (
            {},
            "[default]\nservices = local\n[services local]\ndynamodb =\n  endpoint_url = http://127.0.0.1:8003\n",
            "us-east-1",
            "http://127.0.0.1:8003",
        ),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "", "us-west-2", "https://dynamodb-fips.us-west-2.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "", "eu-west-1", "https://dynamodb.eu-west-1.api.aws"),
        ({}, "", "cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn"),
    ],
    ids=["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "config endpoint_url", "config services", "FIPS",
         "dual-stack", "China"],
)  # fmt: skip
def test_the_endpoint_is_botocores(
    aws_env: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], config: str, region: str, expected: str
) -> None:
    (tmp_path / "aws-config").write_text(config)
    for name, value in env.items():
        aws_env.setenv(name, value)
    client = WireClient(region=region, credentials=Credentials("a", "b"))
    assert client.endpoint_url == expected
    assert client.region == region
    assert wire_client_factory(region=region)().endpoint_url == expected
    assert make_client("dynamodb", region=region).meta.endpoint_url == expected  # the same as boto3's


def test_the_store_built_from_settings_follows_botocore(aws_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    settings = load_settings(home=str(tmp_path / "home"), region="eu-central-1")
    with build_store(settings, MetricsRecorder()) as store:
        client = store.client()
        assert isinstance(client, WireClient)
        assert (client.endpoint_url, client.region) == ("http://localhost:4566", "eu-central-1")


def test_clients_built_from_one_settings_share_one_boto3_session(aws_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore loads a service's model and resolves credentials once per session: a command that builds its store,
    its run-record store and status's clients from one Settings must not pay for that once per client."""
    import boto3

    from pollen import wiring

    aws_env.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    sessions: list[Any] = []
    real_session = boto3.session.Session

    def counted(*args: Any, **kwargs: Any) -> Any:
        sessions.append(real_session(*args, **kwargs))
        return sessions[-1]

    aws_env.setattr(boto3.session, "Session", counted)
    settings = load_settings(home=str(tmp_path / "home"))
    with build_store(settings, MetricsRecorder()) as store, wiring.build_run_record_store(settings, MetricsRecorder()):
        store.client()
        wiring.dynamodb_client(settings)
        wiring.streams_client(settings)
        wiring.sqs_client(settings)
    assert len(sessions) == 1
    other = load_settings(home=str(tmp_path / "home"))
    assert wiring.aws_session(other) is not sessions[0]  # new settings (a changed environment): a new session


# --- proxy and CA bundle -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_a_proxy_selects_the_boto3_transport(aws_env: pytest.MonkeyPatch, tmp_path: Path, variable: str) -> None:
    aws_env.setenv(variable, "http://127.0.0.1:3128")
    assert resolve_endpoint(region="us-east-1").unsupported
    with build_store(load_settings(home=str(tmp_path / "home")), MetricsRecorder()) as store:
        client = store.client()
        assert not isinstance(client, WireClient)
        assert client._endpoint.http_session._proxy_config.proxy_url_for(client.meta.endpoint_url) == (
            "http://127.0.0.1:3128"
        )


def test_a_proxy_bypassed_for_the_endpoint_keeps_the_lean_transport(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    aws_env.setenv("NO_PROXY", ".amazonaws.com")
    assert resolve_endpoint(region="us-east-1").unsupported is None
    with build_store(load_settings(home=str(tmp_path / "home")), MetricsRecorder()) as store:
        assert isinstance(store.client(), WireClient)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pollen test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TlsServer:
    """Answers every request with OK_BODY over TLS, one connection at a time."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    self.requests += 1
                    conn.sendall(_ok())
            except OSError:
                continue


@pytest.mark.parametrize("where", ["AWS_CA_BUNDLE", "config file ca_bundle", "REQUESTS_CA_BUNDLE"])
def test_the_ca_bundle_is_honoured(aws_env: pytest.MonkeyPatch, tmp_path: Path, where: str) -> None:
    cert, key = _self_signed(tmp_path)
    server = TlsServer(cert, key)
    aws_env.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"https://127.0.0.1:{server.port}")
    untrusted = wire_client_factory(region="us-east-1")()
    with pytest.raises(EndpointConnectionError) as raised:
        untrusted.list_tables()
    assert "certificate" in raised.value.kwargs["error"]
    if where == "config file ca_bundle":
        (tmp_path / "aws-config").write_text(f"[default]\nca_bundle = {cert}\n")
    else:
        aws_env.setenv(where, str(cert))
    client = wire_client_factory(region="us-east-1")()
    assert client.list_tables() == {"TableNames": ["t"]}
    assert server.requests == 1
    server.listener.close()


# --- credentials ----------------------------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(aws_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        aws_env.delenv(name, raising=False)
    aws_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return aws_env


def test_no_dummy_credentials_for_an_endpoint_away_from_loopback(no_credentials: pytest.MonkeyPatch) -> None:
    endpoint = "http://dynamodb.pollen-test.invalid"
    with pytest.raises(NoCredentialsError):
        WireClient(endpoint_url=endpoint).list_tables()
    with pytest.raises(NoCredentialsError):
        wire_client_factory(region="us-east-1", endpoint_url=endpoint)().list_tables()
    with pytest.raises(NoCredentialsError):
        make_client("dynamodb", endpoint_url=endpoint).list_tables()


def test_loopback_endpoints_keep_dummy_credentials(no_credentials: pytest.MonkeyPatch) -> None:
    server = ScriptedServer([_ok()])
    client = WireClient(endpoint_url=f"http://localhost:{server.port}")
    assert client.list_tables() == {"TableNames": ["t"]}
    assert b"Credential=testing/" in server.requests[0]
    assert make_client("dynamodb", endpoint_url="http://127.0.0.1:9")._request_signer._credentials is not None


# --- a connection the server closed while idle ---------------------------------------------------------------------


class ScriptedServer:
    """Serves scripted answers; ``None`` closes the connection instead of answering. With ``close_after_answer``
    every connection is closed right after its answer (an idle timeout that fired), without saying so."""

    def __init__(self, answers: list[bytes | None], *, close_after_answer: bool = False) -> None:
        self.answers = list(answers)
        self.close_after_answer = close_after_answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    self.requests.append(data)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.close_after_answer:
                        break
            self.closed.set()


def test_a_connection_closed_while_idle_is_replaced_without_a_failure() -> None:
    server = ScriptedServer([_ok(), _ok()], close_after_answer=True)
    client = WireClient(endpoint_url=f"http://127.0.0.1:{server.port}", credentials=Credentials("a", "b"))
    assert client.list_tables() == {"TableNames": ["t"]}
    assert server.closed.wait(5)  # the server has closed the keep-alive connection: the next call must not fail
    assert client.list_tables() == {"TableNames": ["t"]}
    assert server.connections == 2


def test_a_request_lost_on_a_reused_connection_is_sent_once_more() -> None:
    # The second request goes out on the kept connection, which the server closes without answering (the race of
    # an idle timeout): sent once more on a new connection, it succeeds.
    server = ScriptedServer([_ok(), None, _ok()])
    client = WireClient(endpoint_url=f"http://127.0.0.1:{server.port}", credentials=Credentials("a", "b"))
    assert client.list_tables() == {"TableNames": ["t"]}
    assert client.list_tables() == {"TableNames": ["t"]}
    assert (server.connections, len(server.requests), client.resent) == (2, 3, 1)


def test_a_request_lost_on_a_new_connection_is_an_error() -> None:
    server = ScriptedServer([None])
    client = WireClient(endpoint_url=f"http://127.0.0.1:{server.port}", credentials=Credentials("a", "b"))
    with pytest.raises(ConnectionError):
        client.list_tables()
    assert client.resent == 0


def test_the_store_counts_no_retry_for_an_idle_close() -> None:
    item = b'{"Item":{"pk":{"S":"a"},"sk":{"S":"b"}}}'
    server = ScriptedServer([_ok(item), None, _ok(item)])
    metrics = MetricsRecorder()
    store = DynamoStore(
        client_factory=lambda: WireClient(endpoint_url=f"http://127.0.0.1:{server.port}", credentials=Credentials("a", "b")),
        metrics=metrics,
    )  # fmt: skip
    for _ in range(2):
        assert store.get("pollenControl", {"pk": "a", "sk": "b"}) == {"pk": "a", "sk": "b"}
    store.close()
    assert metrics.total("DynamoRetries") == 0


# --- unreachable, missing, illegal: fail at once; an outage mid-run is retried ------------------------------------


class StubClient:
    """Answers DynamoDB calls from a script: an exception is raised, anything else returned."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(**params: Any) -> Any:
            self.calls.append(name)
            outcome = self.script.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return call


def _refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9", error="connection refused")


def _store(client: StubClient, metrics: MetricsRecorder) -> DynamoStore:
    return DynamoStore(client, metrics=metrics, retry=Backoff(base_s=0.0, cap_s=0.0, max_attempts=6))


def test_an_endpoint_never_reached_is_not_retried() -> None:
    client, metrics = StubClient(_refused(), {}), MetricsRecorder()
    with pytest.raises(
        ServiceUnavailable, match=re.escape("cannot reach DynamoDB at http://127.0.0.1:9: connection refused")
    ) as e:
        _store(client, metrics).get("pollenControl", {"pk": "a", "sk": "b"})
    assert e.value.exit_code == 2 and not e.value.transient
    assert client.calls == ["get_item"] and metrics.total("DynamoRetries") == 0


def test_an_outage_after_the_service_answered_is_retried() -> None:
    client = StubClient({}, _refused(), _refused(), {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}})
    metrics = MetricsRecorder()
    store = _store(client, metrics)
    assert store.get("pollenControl", {"pk": "a", "sk": "b"}) is None
    assert store.get("pollenControl", {"pk": "a", "sk": "b"}) == {"pk": "a", "sk": "b"}
    assert metrics.total("DynamoRetries") == 2


def test_an_outage_mid_run_that_lasts_is_a_failure_of_the_run_not_a_configuration_error() -> None:
    client = StubClient({}, *[_refused()] * 6)
    store = _store(client, MetricsRecorder())
    store.get("pollenControl", {"pk": "a", "sk": "b"})
    with pytest.raises(TransientError) as raised:
        store.get("pollenControl", {"pk": "a", "sk": "b"})
    assert raised.value.exit_code == 1 and not isinstance(raised.value, ServiceUnavailable)


def _client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeTable")


def test_describe_table_goes_through_the_retry_policy() -> None:
    described = {
        "Table": {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        }
    }
    client, metrics = StubClient(_client_error("ThrottlingException"), described), MetricsRecorder()
    info = _store(client, metrics).table_info("custom")
    assert info.key_names == ("id",)
    assert metrics.total("DynamoRetries") == 1


def test_a_missing_table_ends_the_job_with_exit_2() -> None:
    client = StubClient(_client_error("ResourceNotFoundException", "Requested resource not found"))
    with pytest.raises(Exception) as raised:
        _store(client, MetricsRecorder()).table_info("custom")
    assert "custom does not exist" in str(raised.value)
    assert getattr(raised.value, "exit_code", None) == 2


@pytest.mark.parametrize("name", ["ab", "bad name!", "x" * 256, "tab/le"])
def test_an_illegal_table_name_is_a_configuration_error_before_any_call(name: str) -> None:
    client = StubClient()
    with pytest.raises(ConfigError, match="illegal table name"):
        _store(client, MetricsRecorder()).table_info(name)
    assert client.calls == []


def test_throttling_is_still_retried_before_the_first_answer() -> None:
    client, metrics = StubClient(_client_error("ThrottlingException"), {}), MetricsRecorder()
    assert _store(client, metrics).get("pollenControl", {"pk": "a", "sk": "b"}) is None
    assert metrics.total("DynamoRetries") == 1
    assert metrics.total("DynamoThrottles") == 1
