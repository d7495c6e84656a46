# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""`pollen load` and `pollen export` as a user runs them, against the moto server through the fault proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import read_dead_letter_file
from pollen.adapters.dynamodb.codec import dumps_plain, loads_plain
from tests.conftest import run_pollen
from tests.integration.store_support import key_of, make_store, proxy, statement, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"ok", "written", "unchanged", "failed", "invalid", "duration_s", "errors"}


@pytest.fixture
def env(pollen_env: dict[str, str], proxy: FaultProxy, tables: str) -> dict[str, str]:
    return dict(pollen_env, AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint, AWS_ENDPOINT_URL_DYNAMODB_STREAMS=proxy.endpoint)


def _write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(dumps_plain(item) + "\n" for item in items))
    return path


def test_load_then_export_round_trips_exact_numbers(env: dict[str, str], tmp_path: Path, proxy: FaultProxy) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"symbol":"IBM","fiscalPeriod":"ANNUAL#2024-12-31","reportedEPS":0.1,"big":12345678901234567890.123456789,'
        '"nested":{"l":[1,2.50,"x",null,true]},"lastSyncDate":"2026-01-01T00:00:00Z"}\n'
        "\n"
        '{"symbol":"MSFT","fiscalPeriod":"ANNUAL#2024-06-30","reportedEPS":-3.14e-5}\n'
    )
    loaded = run_pollen("load", "earnings", str(source), "--json", env=env)
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout)
    assert set(report) >= CONTRACT_KEYS
    assert (report["ok"], report["written"], report["invalid"], report["failed"]) == (True, 2, 0, 0)

    out = tmp_path / "out.jsonl"
    exported = run_pollen("export", "earnings", str(out), "--json", env=env)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["written"] == 2
    original = sorted((loads_plain(line) for line in source.read_text().splitlines() if line), key=key_of)
    assert sorted((loads_plain(line) for line in out.read_text().splitlines()), key=key_of) == original
    assert "12345678901234567890.123456789" in out.read_text()

    proxy.reset_counters()
    again = run_pollen("load", "earnings", str(out), "--json", env=env)
    assert json.loads(again.stdout)["unchanged"] == 2
    # The lease taken and released, and the run's record in pollenControl (one item): no item of the table written.
    assert proxy.write_requests() == 3 and json.loads(again.stdout)["written"] == 0


def test_bad_lines_are_invalid_and_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"symbol":"A","fiscalPeriod":"X"}\nnot json\n[1,2]\n{"symbol":"B"}\n')
    result = run_pollen("load", "earnings", str(source), "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["written"], report["invalid"], report["ok"]) == (1, 3, False)
    assert any("line 2" in e for e in report["errors"]) and any("fiscalPeriod" in e for e in report["errors"])


def test_missing_file_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run_pollen("load", "earnings", str(tmp_path / "nope.jsonl"), env=env)
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_a_second_load_of_a_table_is_refused_while_one_runs(
    env: dict[str, str], tmp_path: Path, proxy: FaultProxy, tables: str
) -> None:
    source = _write(tmp_path / "in.jsonl", [statement(1)])
    with make_store(proxy.endpoint, tables, tmp_path) as store, store.lease("load:earnings", ttl_s=60):
        result = run_pollen("load", "earnings", str(source), env=env)
    assert result.returncode == 1
    assert "already running" in result.stderr and "Traceback" not in result.stderr


def test_an_outage_that_outlasts_the_deadline_ends_the_run_with_exactly_the_unwritten_items_dead_lettered(
    env: dict[str, str], tmp_path: Path, proxy: FaultProxy, tables: str
) -> None:
    items = [statement(i) for i in range(10_000)]
    source = _write(tmp_path / "in.jsonl", items)
    proxy.faults = Faults(latency_s=0.01)
    proxy.schedule_outage(after_requests=60, seconds=float("inf"))  # until the test ends it
    result = run_pollen("load", "earnings", str(source), "--deadline", "6", "--json", env=env, timeout=120)
    run_ended_during_the_outage = proxy.in_outage  # the outage never ends by itself: the run stopped at its deadline
    proxy.end_outage()
    proxy.faults = Faults()
    assert result.returncode == 1, result.stderr
    assert run_ended_during_the_outage
    report = json.loads(result.stdout)
    assert report["failed"] > 0 and report["written"] + report["failed"] == 10_000
    (dead_file,) = (Path(p) for p in report["dead_letters"])
    dead = {key_of(item) for item in read_dead_letter_file(dead_file)[1]}
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        stored = {key_of(item) for item in store.scan("earnings", segments=4)}
    assert len(dead) == report["failed"]
    assert stored | dead == {key_of(item) for item in items} and not stored & dead

    # The run could not release its lease during the outage; its process is gone, so the replay takes it over.
    replay = run_pollen("load", "earnings", str(dead_file), "--json", env=env)
    assert replay.returncode == 0, replay.stderr
    replayed = json.loads(replay.stdout)
    assert replayed["written"] == len(dead)
    assert all("dead run" in note for note in replayed["lease_notes"])
    with make_store(proxy.endpoint, tables, tmp_path) as store:
        assert sorted(store.scan("earnings", segments=4), key=key_of) == items  # complete, content exact


def test_a_short_outage_is_ridden_out(env: dict[str, str], tmp_path: Path, proxy: FaultProxy) -> None:
    source = _write(tmp_path / "in.jsonl", [statement(i) for i in range(2_000)])
    proxy.schedule_outage(after_requests=20, seconds=2)
    result = run_pollen("load", "earnings", str(source), "--deadline", "60", "--json", env=env, timeout=90)
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert (report["written"], report["failed"]) == (2_000, 0)
    assert proxy.injected["outage"] > 0
