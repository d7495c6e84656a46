"""The embedded stack: moto's DynamoDB server (with streams) over HTTP on loopback, and the tables.

The server runs in a child process so that it has a core of its own and cannot share the client's GIL.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pollen.adapters.dynamodb.admin import TablesReport, ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.errors import ConfigError, ServiceUnavailable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


class MotoServer:
    """moto's server in a child process on a loopback port; a context manager."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, startup_timeout_s: float = 30.0) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        if self.requested_port and not port_is_free(self.host, self.requested_port):
            raise ConfigError(f"port {self.requested_port} on {self.host} is already in use; pick another with --port")
        self.port = self.requested_port or free_port(self.host)
        self._log = tempfile.TemporaryFile(prefix="pollen-moto-")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServiceUnavailable(f"moto server did not start on {self.endpoint} within {self.startup_timeout_s:.0f}s")

    def check_alive(self) -> None:
        """Raise ServiceUnavailable, with the server's last output, if the server process has ended."""
        if self._process is None:
            raise ServiceUnavailable("moto server is not running")
        code = self._process.poll()
        if code is not None:
            raise ServiceUnavailable(f"moto server on port {self.port} exited with status {code}: {self._tail()}")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:200] if lines else "no output"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedStack:
    """Everything pollen needs on one machine: DynamoDB (moto, with streams) and the tables, and with
    ``simulator=True`` the upstream simulator of Alpaca and Alpha Vantage."""

    def __init__(
        self,
        *,
        home: Path,
        port: int = 0,
        table_prefix: str = "",
        region: str = "us-east-1",
        create_tables: bool = True,
        simulator: bool = False,
        simulator_port: int = 0,
        simulator_options: dict[str, Any] | None = None,
    ) -> None:
        from pollen.local.simulator.server import SimulatorProcess

        self.home = home
        self.table_prefix = table_prefix
        self.region = region
        self.create_tables = create_tables
        self.dynamodb = MotoServer(port=port)
        self.tables_report: TablesReport | None = None
        #: The upstream simulator (a child process; ``.configure(day=...)`` changes it at runtime), when asked for.
        self.simulator = SimulatorProcess(port=simulator_port, **(simulator_options or {})) if simulator else None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> EmbeddedStack:
        try:
            self._stack.enter_context(self.dynamodb)
            if self.simulator is not None:
                self._stack.enter_context(self.simulator)
            if self.create_tables:
                client = make_client("dynamodb", region=self.region, endpoint_url=self.dynamodb.endpoint)
                self.tables_report = ensure_tables(client, self.table_prefix)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.close()

    def check_alive(self) -> None:
        self.dynamodb.check_alive()
        if self.simulator is not None:
            self.simulator.check_alive()

    def environment(self) -> dict[str, str]:
        """The CONTRACT variables that point a pollen command (or any boto3 program) at this stack."""
        upstream = self.simulator.environment() if self.simulator is not None else {}
        return {
            **upstream,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb.endpoint,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POLLEN_TABLE_PREFIX": self.table_prefix,
            "POLLEN_HOME": str(self.home.resolve()),
        }
