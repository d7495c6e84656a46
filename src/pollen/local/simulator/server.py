"""Running the simulator: in a thread of this process (:class:`Simulator`) or in a child process
(:class:`SimulatorProcess`, its own core and GIL). Both listen on loopback only and offer the same interface:
``url``, ``environment()``, ``configure(**knobs)``, ``config()``, ``stats()``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from types import TracebackType
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from pollen.errors import ConfigError, ServiceUnavailable
from pollen.local.child import LOOPBACK, ChildServer
from pollen.local.simulator.app import (
    ALPACA_DATA_PREFIX,
    ALPACA_PREFIX,
    ALPHAVANTAGE_PREFIX,
    Simulation,
    SimulatorApp,
    SimulatorConfig,
)


class _Handler(WSGIRequestHandler):
    """No per-request log lines (they would carry Alpha Vantage keys), and no Nagle stalls."""

    wbufsize = 64 * 1024  # headers and a small body leave in one write

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log(self, type: str, message: str, *args: Any) -> None:
        return


def environment_for(url: str, config: SimulatorConfig) -> dict[str, str]:
    """The CONTRACT variables that point pollen at a simulator serving on ``url``."""
    return {
        "ALPACA_BASE_URL": f"{url}{ALPACA_PREFIX}",
        "ALPACA_DATA_URL": f"{url}{ALPACA_DATA_PREFIX}",
        "ALPHAVANTAGE_BASE_URL": f"{url}{ALPHAVANTAGE_PREFIX}",
        "ALPACA_API_KEY_ID": config.alpaca_key_id,
        "ALPACA_API_SECRET_KEY": config.alpaca_secret_key,
        "ALPHAVANTAGE_API_KEY": config.alphavantage_api_key,
        # The client-side limiter follows the simulator's own quota (the defaults suit the real free tier).
        "POLLEN_ALPHAVANTAGE_PER_MINUTE": str(config.alphavantage_per_minute),
        "POLLEN_ALPHAVANTAGE_PER_DAY": str(config.alphavantage_per_day),
    }


class Simulator:
    """The simulator in a daemon thread of this process; a context manager."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, **config: Any) -> None:
        self.host = host
        self.requested_port = port
        self.simulation = Simulation(SimulatorConfig(**config))
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise ServiceUnavailable("the simulator is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Simulator:
        try:
            server = make_server(
                self.host, self.requested_port, SimulatorApp(self.simulation), threaded=True, request_handler=_Handler
            )
        except OSError as exc:
            raise ConfigError(f"simulator cannot listen on {self.host}:{self.requested_port}: {exc.strerror}") from exc
        server.daemon_threads = True  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="pollen-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def configure(self, **changes: Any) -> SimulatorConfig:
        return self.simulation.configure(**changes)

    def config(self) -> SimulatorConfig:
        return self.simulation.config

    def stats(self) -> dict[str, int]:
        return dict(self.simulation.stats)

    def environment(self) -> dict[str, str]:
        return environment_for(self.url, self.simulation.config)

    def check_alive(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise ServiceUnavailable("the simulator is not running")

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SimulatorProcess(ChildServer):
    """The simulator in a child process (``python -m pollen.local.simulator``), driven over its admin endpoint."""

    label = "simulator"

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, startup_timeout_s: float = 30.0, **config: Any) -> None:
        super().__init__(host=host, port=port, startup_timeout_s=startup_timeout_s)
        self.initial = SimulatorConfig(**config)
        self._config = self.initial

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pollen.local.simulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--config",
            self.initial.model_dump_json(),
            "--parent-pid",
            str(os.getpid()),
        ]

    def ready(self) -> bool:
        try:
            self._config = self._fetch_config()
        except OSError:
            return False
        return True

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.url}{path}"
        try:
            response = httpx.get(url, timeout=60) if payload is None else httpx.post(url, json=payload, timeout=60)
        except httpx.HTTPError as exc:
            raise OSError(f"simulator unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ConfigError(f"simulator refused the change: {response.json().get('message')}")
        result: dict[str, Any] = response.json()
        return result

    def _fetch_config(self) -> SimulatorConfig:
        data = self._call("/_sim/config")
        data.pop("today", None)
        return SimulatorConfig(**data)

    def configure(self, **changes: Any) -> SimulatorConfig:
        data = self._call("/_sim/config", changes)
        data.pop("today", None)
        self._config = SimulatorConfig(**data)
        return self._config

    def config(self) -> SimulatorConfig:
        return self._config

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._call("/_sim/stats").items()}

    def environment(self) -> dict[str, str]:
        return environment_for(self.url, self._config)
