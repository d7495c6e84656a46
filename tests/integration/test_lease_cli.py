# ruff: noqa: F811  (pytest fixtures imported from store_support)
"""Leases as a user meets them at the command line: a live holder refuses the run and names itself, ``--force``
takes over with a warning, and ``check --repair`` waits its turn behind a sync."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pollen.adapters.dynamodb.codec import dumps_plain
from tests.conftest import run_pollen
from tests.integration.store_support import make_store, proxy, statement, tables  # noqa: F401
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def env(pollen_env: dict[str, str], proxy: FaultProxy, tables: str) -> dict[str, str]:
    return dict(pollen_env, AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint, AWS_ENDPOINT_URL_DYNAMODB_STREAMS=proxy.endpoint)


def test_force_takes_over_a_live_lease_with_a_warning(
    env: dict[str, str], tmp_path: Path, proxy: FaultProxy, tables: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(dumps_plain(statement(1)) + "\n")
    with make_store(proxy.endpoint, tables, tmp_path) as store, store.lease("load:earnings", heartbeat=False):
        refused = run_pollen("load", "earnings", str(source), env=env)
        assert refused.returncode == 1
        assert f"process {os.getpid()}" in refused.stderr and "--force" in refused.stderr
        forced = run_pollen("load", "earnings", str(source), "--force", "--json", env=env)
    assert forced.returncode == 0, forced.stderr
    report = json.loads(forced.stdout)
    assert report["written"] == 1
    (note,) = report["lease_notes"]
    assert note.startswith("forced") and f"process {os.getpid()}" in note


def test_check_repair_is_refused_while_a_sync_holds_the_lease(
    env: dict[str, str], tmp_path: Path, proxy: FaultProxy, tables: str
) -> None:
    with make_store(proxy.endpoint, tables, tmp_path) as store, store.lease("sync-assets", heartbeat=False):
        repair = run_pollen("check", "--repair", env=env)
        plain = run_pollen("check", "--json", env=env)
    assert repair.returncode == 1 and "already running" in repair.stderr, repair.stderr
    assert plain.returncode in (0, 1) and "already running" not in plain.stderr
