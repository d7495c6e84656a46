"""The embedded stack: moto's DynamoDB server (with streams) over HTTP on loopback, and the tables.

The server runs in a child process so that it has a core of its own and cannot share the client's GIL.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from pollen.adapters.dynamodb.admin import TablesReport, ensure_tables
from pollen.adapters.dynamodb.client import make_client
from pollen.local.child import LOOPBACK, ChildServer, free_port, port_is_free

__all__ = ["LOOPBACK", "EmbeddedStack", "MotoServer", "free_port", "port_is_free"]


class MotoServer(ChildServer):
    """moto's server in a child process on a loopback port; a context manager.

    It runs moto's application behind waitress (:mod:`pollen.local.motoserver`): keep-alive connections and a thread
    pool instead of werkzeug's connection-per-request development server.
    """

    label = "moto server"

    def __init__(self, *, stock: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Run moto's DynamoDB as released, without :mod:`pollen.local.motopatch` (for comparisons).
        self.stock = stock

    @property
    def endpoint(self) -> str:
        return self.url

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "pollen.local.motoserver", "--host", self.host, "--port", str(self.port)]
        return [*command, "--stock"] if self.stock else command

    def child_environment(self) -> dict[str, str]:
        env = super().child_environment()
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        return env


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
