"""A local server in a child process on a loopback port: started, watched, and stopped (the moto server and the
upstream simulator are both run this way, so each has a core of its own)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO, Self

from pollen.errors import ConfigError, ServiceUnavailable

LOOPBACK = "127.0.0.1"
#: How long a stopping server gets after SIGTERM before it is killed (its state is in memory: nothing to flush).
STOP_GRACE_S = 3.0


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


class ChildServer:
    """Subclasses say how to launch the server (`command`) and when it is ready (`ready`)."""

    #: Used in messages ("moto server", "simulator").
    label = "server"

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, startup_timeout_s: float = 30.0) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def child_environment(self) -> dict[str, str]:
        """The child's environment (the parent's by default)."""
        return dict(os.environ)

    def ready(self) -> bool:
        """Whether the server answers yet (by default: it accepts a connection)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> Self:
        if self.requested_port and not port_is_free(self.host, self.requested_port):
            raise ConfigError(f"port {self.requested_port} on {self.host} is already in use; pick another with --port")
        self.port = self.requested_port or free_port(self.host)
        self._log = tempfile.TemporaryFile(prefix="pollen-child-")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.child_environment(),
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceUnavailable(f"{self.label} did not start on {self.url} within {self.startup_timeout_s:.0f}s")

    def check_alive(self) -> None:
        """Raise ServiceUnavailable, with the server's last output, if the server process has ended."""
        if self._process is None:
            raise ServiceUnavailable(f"{self.label} is not running")
        code = self._process.poll()
        if code is not None:
            raise ServiceUnavailable(f"{self.label} on port {self.port} exited with status {code}: {self._tail()}")

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
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
