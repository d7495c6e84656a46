from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pollen.adapters.dynamodb.client import make_client
from pollen.errors import ConfigError, ServiceUnavailable
from pollen.local.stack import MotoServer
from pollen.tables import ALL_TABLES
from tests.conftest import embedded_stack, moto_server, pollen_command

pytestmark = pytest.mark.integration


def test_embedded_stack_serves_tables_over_http_and_stops(tmp_path: Path) -> None:
    with embedded_stack(home=tmp_path, table_prefix="x-") as stack:
        env = stack.environment()
        client = make_client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
        names = client.list_tables()["TableNames"]
        assert sorted(names) == sorted(f"x-{t.name}" for t in ALL_TABLES)
        port = stack.dynamodb.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port}"):
            MotoServer(port=port).start()


def test_a_dead_server_is_reported() -> None:
    with moto_server() as server:
        assert server._process is not None
        server._process.kill()
        server._process.wait()
        with pytest.raises(ServiceUnavailable, match="exited"):
            server.check_alive()


def test_pollen_local_prints_exports_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "POLLEN_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        pollen_command("local"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while "POLLEN_HOME" not in exports and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            key, _, value = line.removeprefix("export ").strip().partition("=")
            exports[key] = value
        endpoint = exports["AWS_ENDPOINT_URL_DYNAMODB"]
        assert exports["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == endpoint
        client = make_client("dynamodb", endpoint_url=endpoint)
        assert "assets" in client.list_tables()["TableNames"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
