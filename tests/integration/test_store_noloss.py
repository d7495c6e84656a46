# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""Nothing lost: every item an upsert or delete does not write is in its report and in its dead letters, exactly
once, whatever stopped it (a worker's crash, an interrupt); dead letters say whether they are puts or deletes and
`pollen load` replays either kind."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import JsonlDeadLetters, read_dead_letter_file
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.jobs.sync_assets import SyncAssets
from pollen.observability import MetricsRecorder
from tests.conftest import run_pollen
from tests.fakes import FakeAssetSource
from tests.integration.store_support import FAST_RETRY, key_of, make_store, proxy, statement, tables  # noqa: F401
from tests.payloads import alpaca_asset
from tests.support.faultproxy import FaultProxy


class CrashingClients:
    """Wire clients whose ``crash_on``-th BatchWriteItem (counted over all workers) raises an error no adapter
    expects, before anything is sent: a worker's crash."""

    def __init__(self, endpoint: str, crash_on: int, error: Callable[[], BaseException]) -> None:
        self._factory = wire_client_factory(region="us-east-1", endpoint_url=endpoint)
        self.crash_on = crash_on
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        inner = self._factory()
        outer = self

        class Client:
            def call_json(self, operation: str, text: str, **kwargs: Any) -> Any:
                if operation == "BatchWriteItem":
                    with outer._lock:
                        outer.calls += 1
                        crash = outer.calls == outer.crash_on
                    if crash:
                        raise outer.error()
                return inner.call_json(operation, text, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        return Client()


def crashing_store(proxy: FaultProxy, prefix: str, home: Path, crash_on: int, **options: Any) -> DynamoStore:
    return DynamoStore(
        client_factory=CrashingClients(proxy.endpoint, crash_on, lambda: RuntimeError("worker bug")),
        table_prefix=prefix,
        metrics=MetricsRecorder(),
        dead_letters=JsonlDeadLetters(home / "dead-letters", run_id="run"),
        retry=FAST_RETRY,
        concurrency=2,
        **options,
    )


def stored_keys(proxy: FaultProxy, prefix: str, home: Path, table: str = "earnings") -> list[tuple[str, str]]:
    with make_store(proxy.endpoint, prefix, home / "reader") as reader:
        return [key_of(item) for item in reader.scan(table, segments=2)]


def dead_keys(home: Path, name: str = "earnings-run.jsonl") -> list[tuple[str, str]]:
    path = home / "dead-letters" / name
    return [key_of(item) for item in read_dead_letter_file(path)[1]] if path.exists() else []


def test_a_worker_crash_fails_only_its_unwritten_items_and_dead_letters_each_once(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(1_200)]  # three chunks of 500 on two workers
    with crashing_store(proxy, tables, tmp_path, crash_on=7) as store:
        report = store.upsert("earnings", items)
    assert report.total == 1_200 and report.failed > 0 and not report.ok
    failed = [key_of(f.key) for f in report.failures]
    assert len(failed) == len(set(failed)) == report.failed
    assert all("RuntimeError" in f.reason and "worker bug" in f.reason for f in report.failures)
    stored, dead = stored_keys(proxy, tables, tmp_path), dead_keys(tmp_path)
    assert sorted(dead) == sorted(failed)  # each failure dead-lettered exactly once
    assert len(stored) == report.written
    assert sorted(stored + dead) == sorted(key_of(i) for i in items)  # nothing lost, nothing twice


def test_an_interrupted_upsert_dead_letters_every_item_not_written(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    items = [statement(i) for i in range(1_600)]
    settled: list[int] = []

    def progress(n: int) -> None:
        settled.append(n)
        if len(settled) == 1:
            raise KeyboardInterrupt

    # One worker: when the first chunk is reported, the second is running and the last two are still queued.
    with make_store(proxy.endpoint, tables, tmp_path, concurrency=1) as store, pytest.raises(KeyboardInterrupt):
        store.upsert("earnings", items, progress=progress)
    stored, dead = stored_keys(proxy, tables, tmp_path), dead_keys(tmp_path)
    assert len(dead) == 600 and not set(stored) & set(dead) and len(dead) == len(set(dead))
    assert sorted(stored + dead) == sorted(key_of(i) for i in items)


def test_a_sync_whose_store_worker_crashes_reports_and_dead_letters_the_assets(
    proxy: FaultProxy, tables: str, tmp_path: Path
) -> None:
    source = FakeAssetSource([alpaca_asset(f"A{i:04d}") for i in range(30)])
    with crashing_store(proxy, tables, tmp_path, crash_on=1) as store:
        report = SyncAssets(store, source, metrics=MetricsRecorder()).run()
    # The worker died on its first batch: the whole chunk is failed, named and kept, and the run goes on.
    assert not report.ok and (report.failed, report.written) == (30, 0)
    assert sum("worker bug" in e for e in report.errors) == 30
    header, dead = read_dead_letter_file(tmp_path / "dead-letters" / "assets-run.jsonl")
    assert header == ("put", "assets") and sorted(a["symbol"] for a in dead) == [f"A{i:04d}" for i in range(30)]


def test_failed_and_invalid_deletes_are_dead_lettered_as_deletes_and_load_replays_them(
    proxy: FaultProxy, tables: str, tmp_path: Path, pollen_env: dict[str, str]
) -> None:
    items = [statement(i) for i in range(40)]
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        assert store.upsert("earnings", items).written == 40
    keys = [{"symbol": s, "fiscalPeriod": p} for s, p in map(key_of, items)]
    bad_key = {"symbol": "S99999", "fiscalPeriod": 7}  # a number where the schema wants a string
    with crashing_store(proxy, tables, tmp_path, crash_on=1) as store:
        report = store.delete("earnings", [*keys, bad_key])
    assert (report.written, report.failed, report.invalid) == (0, 40, 1)
    path = tmp_path / "dead-letters" / "earnings-run.deletes.jsonl"
    header, dead = read_dead_letter_file(path)
    assert header == ("delete", "earnings")
    assert len(dead) == 41 and bad_key in dead and all(set(k) == {"symbol", "fiscalPeriod"} for k in dead)
    assert not (tmp_path / "dead-letters" / "earnings-run.jsonl").exists()  # nothing looks like a put
    assert len(stored_keys(proxy, tables, tmp_path)) == 40

    env = {**pollen_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint}
    for attempt in range(2):  # replaying twice changes nothing more: deletes are idempotent
        result = run_pollen("load", "earnings", str(path), "--json", env=env)
        assert result.returncode == 1, result.stderr  # the bad key stays invalid
        replay = json.loads(result.stdout)
        assert (replay["operation"], replay["written"], replay["invalid"]) == ("delete", 40, 1), attempt
        assert stored_keys(proxy, tables, tmp_path) == []  # deleted, not recreated as key-only items
