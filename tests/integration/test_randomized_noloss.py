"""Randomized, seeded runs of the write engine through the fault proxy: nothing lost, nothing wrong, nothing twice.

Each run (one seed) takes a fresh partition of the ``earnings`` table, plants some items, then upserts a few hundred
items (new ones, changed ones, unchanged ones, duplicates in the input, a few invalid ones) and deletes some planted
keys, through a random mix of faults: unprocessed requests, throttling, 500s, connection resets and a short outage,
with a small retry budget so that some items do fail. Afterwards the partition must hold exactly what the reports
say was written (a failed item keeps its old state); after replaying the run's dead-letter files as `pollen load`
does, it must hold exactly the intended state.

``POLLEN_RANDOM_RUNS`` (default 100) and ``POLLEN_RANDOM_SEED`` (default 0, the first seed) choose the runs; a
failing run's seed is in its test id and in the assertion message: replay it with
``pytest tests/integration/test_randomized_noloss.py -k "seed_17"``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pollen.adapters.deadletters import JsonlDeadLetters
from pollen.adapters.dynamodb.admin import ensure_tables
from pollen.adapters.dynamodb.reports import WriteReport
from pollen.adapters.dynamodb.store import DynamoStore
from pollen.adapters.dynamodb.wire import wire_client_factory
from pollen.backoff import Backoff
from pollen.cli.data import read_load_file
from pollen.observability import MetricsRecorder
from pollen.report import JobReport
from pollen.tables import EARNINGS
from tests.support.faultproxy import FaultProxy, Faults

RUNS = int(os.environ.get("POLLEN_RANDOM_RUNS", "100"))
FIRST_SEED = int(os.environ.get("POLLEN_RANDOM_SEED", "0"))
#: Few rounds without progress and short waits: under these fault rates some items fail, as they should here.
SHORT_RETRY = Backoff(base_s=0.002, cap_s=0.01, max_attempts=4)

Key = tuple[str, str]
#: Totals over the runs of this session, so that the suite can show it did make items fail (and replayed them).
STATS = {"runs": 0, "failed": 0, "runs_with_failures": 0}


@pytest.fixture(scope="module")
def suite(endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    prefix = f"rnd{random.SystemRandom().getrandbits(32):08x}-"
    from pollen.adapters.dynamodb.client import make_client

    ensure_tables(make_client("dynamodb", endpoint_url=endpoint), prefix, (EARNINGS,))
    with FaultProxy(endpoint) as proxy:
        yield proxy, prefix


def _store(endpoint: str, prefix: str, home: Path, run_id: str) -> DynamoStore:
    return DynamoStore(
        client_factory=wire_client_factory(region="us-east-1", endpoint_url=endpoint),
        table_prefix=prefix,
        metrics=MetricsRecorder(),
        dead_letters=JsonlDeadLetters(home / "dead-letters", run_id=run_id),
        retry=SHORT_RETRY,
        concurrency=1,  # one worker: the faults hit the same requests on every replay of a seed
    )


def _item(symbol: str, period: int, rng: random.Random, sync: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "fiscalPeriod": f"QUARTERLY#{2000 + period // 4}-{period % 4 * 3 + 1:02d}-01",
        "reportedEPS": Decimal(rng.randrange(-(10**6), 10**6)) / Decimal(1000),
        "note": rng.choice(["", "ok", "préliminaire", "x" * rng.randrange(1, 300)]),
        "detail": {"n": rng.randrange(100), "list": [Decimal("1.10"), None, True]},
        "lastSyncDate": sync,
    }


def _key(item: dict[str, Any]) -> Key:
    return (item["symbol"], item["fiscalPeriod"])


def _partition(store: DynamoStore, symbol: str) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for item in store.query("earnings", partition=("symbol", symbol)):
        assert _key(item) not in found, f"{_key(item)} returned twice"
        found[_key(item)] = item
    return found


def _replay(store: DynamoStore, files: list[Path]) -> None:
    """What `pollen load TABLE FILE` does with each dead-letter file (puts before deletes, as they happened)."""
    for path in sorted(files, key=lambda p: p.name.endswith(".deletes.jsonl")):
        loaded = read_load_file(path, JobReport(job="load"))
        if loaded.operation == "delete":
            outcome: WriteReport = store.delete("earnings", loaded.items)
        else:
            outcome = store.upsert("earnings", loaded.items)
        assert outcome.failed == 0, outcome.error_lines()


def _faults(rng: random.Random, seed: int) -> Faults:
    def share(top: float) -> float:
        return rng.choice([0.0, 0.0, rng.uniform(0, top)])

    return Faults(unprocessed=share(0.5), throttle=share(0.3), server_error=share(0.2), reset=share(0.15), seed=seed)


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + RUNS), ids=lambda s: f"seed_{s}")
def test_random_faults_lose_nothing(suite: tuple[FaultProxy, str], endpoint: str, tmp_path: Path, seed: int) -> None:
    proxy, prefix = suite
    rng = random.Random(seed)
    symbol = f"R{seed:06d}"
    where = f"seed {seed} (replay: -k seed_{seed})"
    reader = _store(endpoint, prefix, tmp_path / "reader", "reader")

    # Planted state, written without faults.
    proxy.faults = Faults()
    planted = [_item(symbol, p, rng, "2026-01-01T00:00:00Z") for p in range(rng.randrange(5, 40))]
    assert reader.upsert("earnings", planted).ok
    state: dict[Key, dict[str, Any] | None] = {_key(i): i for i in planted}

    # The run's input: changed, unchanged and new items, a few duplicates, a few invalid ones; deletes of planted keys.
    keep = {k for k in state if rng.random() < 0.5}
    doomed = [k for k in state if k not in keep and rng.random() < 0.5]
    puts: list[dict[str, Any]] = []
    for key in sorted(keep):
        current = state[key]
        assert current is not None
        changed = {**_item(symbol, 0, rng, "2026-02-01T00:00:00Z"), "fiscalPeriod": key[1]}
        puts.append(dict(current) if rng.random() < 0.3 else changed)
    puts += [_item(symbol, 200 + p, rng, "2026-02-01T00:00:00Z") for p in range(rng.randrange(10, 100))]
    rng.shuffle(puts)
    for _ in range(rng.randrange(0, 4)):  # the same key again later in the input: the later one wins
        twin = dict(rng.choice(puts))
        twin["note"] = f"twin {rng.random()}"
        puts.append(twin)
    invalid = [
        {"symbol": symbol, "note": "no sort key"},
        {"symbol": symbol, "fiscalPeriod": 12, "note": "a number where the key is a string"},
        {"symbol": symbol, "fiscalPeriod": "X#1", "n": Decimal("1E+200")},
    ][: rng.randrange(0, 4)]
    puts[rng.randrange(len(puts) + 1) : 0] = invalid
    intended: dict[Key, dict[str, Any] | None] = dict(state)
    for item in puts:
        if item not in invalid:
            intended[_key(item)] = item
    for key in doomed:
        intended[key] = None

    faults = _faults(rng, seed)
    proxy.faults = faults
    if rng.random() < 0.3:
        proxy.schedule_outage(after_requests=rng.randrange(1, 12), seconds=rng.uniform(0.05, 0.4))
    store = _store(proxy.endpoint, prefix, tmp_path, f"seed{seed}")
    try:
        upserted = store.upsert("earnings", puts)
        deleted = store.delete("earnings", [{"symbol": s, "fiscalPeriod": p} for s, p in doomed])
    finally:
        proxy.end_outage()
        proxy.faults = Faults()
        store.close()

    STATS["runs"] += 1
    STATS["failed"] += upserted.failed + deleted.failed
    STATS["runs_with_failures"] += bool(upserted.failed or deleted.failed)
    # Every input is accounted for exactly once, and the failures are named each once.
    assert upserted.total == len(puts), where
    assert upserted.invalid == len(invalid), where
    assert deleted.written + deleted.failed == len(doomed), where
    failed_puts = {(f.key["symbol"], f.key["fiscalPeriod"]) for f in upserted.failures if f.kind == "failed"}
    failed_deletes = {(f.key["symbol"], f.key["fiscalPeriod"]) for f in deleted.failures}
    assert len(failed_puts) == upserted.failed and len(failed_deletes) == deleted.failed, where

    # After the run: exactly what the reports say (a failed key keeps its old state).
    after_run = {k: v for k, v in intended.items() if k not in failed_puts | failed_deletes}
    after_run.update({k: state.get(k) for k in failed_puts | failed_deletes})
    expected = {k: v for k, v in after_run.items() if v is not None}
    assert _partition(reader, symbol) == expected, f"{where}: table differs from the reports ({faults})"

    # After replaying the dead letters: exactly the intended state; dead letters hold each failure once.
    files = sorted((tmp_path / "dead-letters").glob(f"*-seed{seed}*.jsonl"))
    files = [f for f in files if not f.name.endswith(".reasons.jsonl")]
    letters = {f.name.endswith(".deletes.jsonl"): read_load_file(f, JobReport(job="load")).items for f in files}
    dead_puts, dead_deletes = letters.get(False, []), letters.get(True, [])
    # (An invalid item that has no JSON form, like a number out of range, is kept in the reasons file only.)
    assert sorted(_key(i) for i in dead_puts if i not in invalid) == sorted(failed_puts), where
    assert len(dead_puts) - len(failed_puts) == sum(i in dead_puts for i in invalid), where
    assert sorted(map(_key, dead_deletes)) == sorted(failed_deletes), where
    _replay(reader, files)
    final = _partition(reader, symbol)
    wanted = {k: v for k, v in intended.items() if v is not None}
    # Replaying re-offers the invalid items too; they stay invalid and are not stored.
    assert final == wanted, f"{where}: table differs from the intended state after the replay ({faults})"
    reader.close()


def test_the_runs_made_items_fail_and_replayed_them() -> None:
    """Runs after the seeded ones: a suite whose faults never made an item fail would prove nothing."""
    if STATS["runs"] < 20:
        pytest.skip("only meaningful after the full set of runs")
    print(f"randomized runs: {STATS}")
    assert STATS["runs_with_failures"] >= STATS["runs"] // 8, STATS
