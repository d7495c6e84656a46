"""A corpus of bad inputs, each through the real command line: the exit status, the report (contract keys on exit 1,
one line on exit 2), never a traceback, and the tables changed only by what the input legitimately holds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.tables import CONTROL, EARNINGS
from tests.conftest import run_pollen

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"ok", "written", "unchanged", "failed", "invalid", "duration_s", "errors"}


def good(i: int) -> str:
    return json.dumps({"symbol": f"G{i}", "fiscalPeriod": "ANNUAL#2025-12-31", "eps": 1.25, "n": i})


def nested(levels: int) -> str:
    deep = "[" * levels + "]" * levels
    return f'{{"symbol": "N{levels}", "fiscalPeriod": "ANNUAL#2025-12-31", "deep": {deep}}}'


#: (line text or bytes, what the report's error for it says). The good lines around them must all be loaded.
BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"symbol": "U1", "fiscalPeriod": "A", "name": "caf\xe9 \xff"}', "line 2: not UTF-8"),
    (b'{"symbol": "U2", "fiscalPeriod": "A", "name": "\\ud800"}', "U2"),  # a lone surrogate: no UTF-8 form
    (nested(100_000).encode(), "line 6: nested too deeply"),
    (nested(40).encode(), "32 levels"),
    (b'{"symbol": "M1", "fiscalPeriod": ', "line 10: not valid JSON"),
    (b"[1, 2, 3]", "line 12: not a JSON object"),
    (b'{"symbol": 42, "fiscalPeriod": "A"}', "{symbol=42"),  # a number where the key is a string
    (b'{"symbol": "K1"}', "fiscalPeriod"),  # no sort key
    (b'{"symbol": "O1", "fiscalPeriod": "A", "v": 1e200}', "1E+200"),  # outside DynamoDB's number range
    (b'{"symbol": "O2", "fiscalPeriod": "A", "v": NaN}', "line 20: not valid JSON"),
    (('{"symbol": "K2", "fiscalPeriod": "%s"}' % ("k" * 1100)).encode(), "1024"),  # sort key over 1 KB
    (('{"symbol": "B1", "fiscalPeriod": "A", "blob": "%s"}' % ("x" * 420_000)).encode(), "400 KB"),
    (b'{"symbol": "H1", "fiscalPeriod": "A", "contentHash": "mine"}', "contentHash"),  # pollen's own attribute
]


@pytest.fixture
def earnings_tables(dynamodb: Any, table_prefix: str) -> str:
    ensure_tables(dynamodb, table_prefix, (EARNINGS, CONTROL))
    return table_prefix


def stored(endpoint: str, prefix: str, home: Path) -> list[dict[str, Any]]:
    from pollen.adapters.dynamodb.wire import wire_client_factory

    with DynamoStore(
        client_factory=wire_client_factory(region="us-east-1", endpoint_url=endpoint), table_prefix=prefix
    ) as store:
        return sorted(store.scan("earnings"), key=lambda i: (i["symbol"], i["fiscalPeriod"]))


def check_exit(result: Any, code: int) -> dict[str, Any] | None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    if code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return None
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) >= CONTRACT_KEYS and report["ok"] is (code == 0), report
    return report


def test_every_bad_line_is_a_named_invalid_item_and_the_good_lines_load(
    pollen_env: dict[str, str], earnings_tables: str, endpoint: str, tmp_path: Path
) -> None:
    lines: list[bytes] = []
    for i, (bad, _) in enumerate(BAD_LINES):
        lines += [good(i).encode(), bad]
    source = tmp_path / "corpus.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = run_pollen("load", "earnings", str(source), "--json", env=pollen_env, timeout=300)
    report = check_exit(result, 1)
    assert report is not None
    assert (report["written"], report["invalid"], report["failed"]) == (len(BAD_LINES), len(BAD_LINES), 0)
    for _, expected in BAD_LINES:
        assert any(expected in error for error in report["errors"]), (expected, report["errors"])
    assert [i["symbol"] for i in stored(endpoint, earnings_tables, tmp_path)] == sorted(
        f"G{i}" for i in range(len(BAD_LINES))
    )
    assert all(i["eps"] == Decimal("1.25") for i in stored(endpoint, earnings_tables, tmp_path))


def test_pollen_home_being_a_file_is_a_configuration_error(
    pollen_env: dict[str, str], earnings_tables: str, endpoint: str, tmp_path: Path
) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    source = tmp_path / "one-bad.jsonl"
    source.write_text(good(1) + '\n{"symbol": "K1"}\n')  # the bad line needs a dead letter
    result = run_pollen("load", "earnings", str(source), "--json", env={**pollen_env, "POLLEN_HOME": str(home)})
    check_exit(result, 2)
    assert "POLLEN_HOME" in result.stderr
    assert home.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["load", "no such table!", "FILE"], {}),  # an illegal table name
        (["load", "earnings", "FILE"], {"POLLEN_WRITE_CONCURRENCY": "many"}),
        (["load", "earnings", "FILE"], {"AWS_ENDPOINT_URL_DYNAMODB": "not a url"}),
        (["load", "earnings", "MISSING"], {}),
        (["export", "earnings", "/no/such/folder/out.jsonl"], {}),
    ],
    ids=["illegal-table-name", "bad-concurrency", "bad-endpoint", "missing-file", "unwritable-export"],
)
def test_bad_usage_and_configuration_change_nothing(
    pollen_env: dict[str, str],
    earnings_tables: str,
    endpoint: str,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
) -> None:
    source = tmp_path / "good.jsonl"
    source.write_text(good(1) + "\n")
    argv = [str(source) if a == "FILE" else str(tmp_path / "missing.jsonl") if a == "MISSING" else a for a in args]
    result = run_pollen(*argv, "--json", env={**pollen_env, **env})
    # An illegal table name may be refused as bad usage (2) or reported as a failed run (1, with its report).
    check_exit(result, 1 if result.returncode == 1 and args[1] != "earnings" else 2)
    assert stored(endpoint, earnings_tables, tmp_path) == []


# --- garbage from upstream, served by a tiny loopback server -----------------------------------------------------


def _html_502(path: str) -> tuple[int, str, bytes]:
    return 502, "text/html", b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


GARBAGE: dict[str, Callable[[str], tuple[int, str, bytes]]] = {
    "html-502": _html_502,
    "truncated-json": lambda path: (200, "application/json", b'[{"id": "a", "symbol": "IBM", "sta'),
    "object-not-list": lambda path: (200, "application/json", b'{"assets": []}'),
    "5mb-garbage": lambda path: (200, "application/json", b"\x00garbage" * 655_360),
    "calendar-without-header": lambda path: (200, "text/csv", b"IBM,IBM Corp,2026-10-20,2026-09-30,2.1,USD,\r\n"),
}


@pytest.fixture
def garbage_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"answer": _html_502, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            status, content_type, body = state["answer"](self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_garbage_from_upstream_exits_1_with_the_full_report(
    pollen_env: dict[str, str],
    dynamodb: Any,
    table_prefix: str,
    endpoint: str,
    tmp_path: Path,
    garbage_server: tuple[str, dict[str, Any]],
    garbage: str,
) -> None:
    from pollen.tables import TABLES

    ensure_tables(dynamodb, table_prefix, tuple(TABLES.values()))
    url, state = garbage_server
    state["answer"] = GARBAGE[garbage]
    env = {
        **pollen_env,
        "ALPACA_API_KEY_ID": "id",
        "ALPACA_API_SECRET_KEY": "secret",
        "ALPACA_BASE_URL": url,
        "ALPACA_DATA_URL": url,
        "ALPHAVANTAGE_API_KEY": "key",
        "ALPHAVANTAGE_BASE_URL": url,
    }
    command = ["sync", "earnings"] if garbage.startswith("calendar") else ["sync", "assets"]
    result = run_pollen(*command, "--json", env=env, timeout=300)
    report = check_exit(result, 1)
    assert report is not None and report["errors"] and report["written"] == 0
    assert state["requests"] >= 1
    assert stored(endpoint, table_prefix, tmp_path) == []
