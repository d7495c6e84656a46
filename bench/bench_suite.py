"""The test suite on stock moto against the embedded stack's speed-ups (pollen.local.motopatch), in one run.

Run with ``./dev bench bench_suite``. The same tests run twice, back to back, with the same number of xdist workers:
first with ``POLLEN_TEST_STOCK_MOTO=1`` (every moto server the tests start runs moto's DynamoDB as released, see
tests/conftest.py), then as ``./dev test`` runs them (with the speed-ups). The Lambda harness tier (tests/lambdas) is
left out by default: it builds and runs the SAM artifacts, work that does not depend on moto. The motopatch
differential test runs both servers in either mode.

``POLLEN_BENCH_SUITE_PATHS`` (space-separated) chooses other test paths; ``POLLEN_TEST_WORKERS`` the workers (2).
A whole run takes ten minutes or more per mode: run it on a quiet machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = os.environ.get("POLLEN_BENCH_SUITE_PATHS", "tests").split()
IGNORED = ["--ignore=tests/lambdas"] if PATHS == ["tests"] else []
WORKERS = os.environ.get("POLLEN_TEST_WORKERS", "2")
#: A hung run ends here rather than blocking the benchmarks forever.
TIMEOUT_S = 3 * 3600
#: How many of the slowest tests (on stock moto) the section lists.
SLOWEST = 10


@dataclass
class SuiteRun:
    """One run of the tests: wall time, pytest's summary and each test's own time (from its JUnit report)."""

    mode: str
    seconds: float
    exit_code: int
    summary: str
    load_before: str
    load_after: str
    tests: dict[str, float] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)

    def tier_seconds(self) -> dict[str, float]:
        tiers: dict[str, float] = defaultdict(float)
        for name, seconds in self.tests.items():
            tiers[_tier(name)] += seconds
        return tiers


def _tier(test_id: str) -> str:
    parts = test_id.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _summary(output: str) -> str:
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return lines[-1] if lines else "no summary (see the run's output)"


def _read_junit(path: Path) -> tuple[dict[str, float], set[str]]:
    tests: dict[str, float] = {}
    skipped: set[str] = set()
    if not path.exists():
        return tests, skipped
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        tests[name] = float(case.get("time", "0") or 0)
        if case.find("skipped") is not None:
            skipped.add(name)
    return tests, skipped


def run_suite(mode: str, scratch: Path) -> SuiteRun:
    env = {k: v for k, v in os.environ.items() if k != "POLLEN_TEST_STOCK_MOTO"}
    if mode == "stock":
        env["POLLEN_TEST_STOCK_MOTO"] = "1"
    report = scratch / f"{mode}.xml"
    command = [sys.executable, "-m", "pytest", "-n", WORKERS, "-q", "-p", "no:cacheprovider"]
    command += [f"--junitxml={report}", *IGNORED, *PATHS]
    print(f"  {mode}: {' '.join(command[1:])}", file=sys.stderr)
    load_before = _load()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - started
    tests, skipped = _read_junit(report)
    run = SuiteRun(mode, seconds, done.returncode, _summary(done.stdout), load_before, _load(), tests, skipped)
    print(f"  {mode}: {seconds:.0f} s, {run.summary}", file=sys.stderr)
    if done.returncode != 0:
        print(done.stdout[-4000:], file=sys.stderr)
    return run


def _ratio(stock: float, patched: float) -> str:
    return f"{stock / patched:.2f}x" if patched > 0 else "-"


def render(stock: SuiteRun, patched: SuiteRun) -> str:
    lines = [
        "## The suite: stock moto vs the embedded speed-ups",
        "",
        f"Method: `pytest -n {WORKERS} {' '.join([*IGNORED, *PATHS])}` run twice back to back on this machine, "
        "first with `POLLEN_TEST_STOCK_MOTO=1` (every moto server the tests start runs moto 5.2.5's DynamoDB as "
        "released; each test's time limit six times its own), then with pollen's motopatch as `./dev test` runs it. Wall time of each whole run (start-up and "
        f"collection included); per tier, the sum of the tests' own times from pytest's JUnit report (spread over "
        f"{WORKERS} workers). Load average (1 min) read before and after each run.",
        "",
        "| run | seconds | speed-up | exit | result | load before/after |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for run in (stock, patched):
        ratio = _ratio(stock.seconds, run.seconds) if run is patched else "-"
        lines.append(
            f"| {run.mode} | {run.seconds:.0f} | {ratio} | {run.exit_code} | {run.summary} "
            f"| {run.load_before} / {run.load_after} |"
        )
    stock_tiers, patched_tiers = stock.tier_seconds(), patched.tier_seconds()
    lines += ["", "| tier | stock s | patched s | speed-up |", "| --- | ---: | ---: | ---: |"]
    for tier in sorted(set(stock_tiers) | set(patched_tiers)):
        s, p = stock_tiers.get(tier, 0.0), patched_tiers.get(tier, 0.0)
        lines.append(f"| {tier} | {s:.0f} | {p:.0f} | {_ratio(s, p)} |")
    slowest = sorted(stock.tests, key=lambda name: stock.tests[name], reverse=True)[:SLOWEST]
    lines += [
        "",
        f"The {SLOWEST} slowest tests on stock moto:",
        "",
        "| test | stock s | patched s | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in slowest:
        p = patched.tests.get(name, 0.0)
        lines.append(
            f"| `{name.removeprefix('tests.')}` | {stock.tests[name]:.1f} | {p:.1f} | {_ratio(stock.tests[name], p)} |"
        )
    only_stock = sorted(stock.skipped - patched.skipped)
    if only_stock:
        lines += ["", "Skipped on stock moto only: " + ", ".join(f"`{n.removeprefix('tests.')}`" for n in only_stock)]
    return "\n".join(lines) + "\n"


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="pollen-bench-suite-") as scratch:
        stock = run_suite("stock", Path(scratch))
        patched = run_suite("patched", Path(scratch))
    return render(stock, patched)


if __name__ == "__main__":
    print(main())
