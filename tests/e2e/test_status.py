"""`pollen status` on the embedded stack after a few simulated days: its numbers equal independent boto3 reads of
the tables, and its page renders in a real headless Chromium (every chart with data, no console errors)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pollen import wiring
from pollen.cli.status import write_page
from pollen.jobs.pipeline import PipelineReport, run_pipeline
from pollen.jobs.status import StatusReport, percentile
from pollen.local.simulator.server import SimulatorProcess
from pollen.tables import CONTRACT_TABLES, NEVER_POLLENATED
from pollen.wiring import build_poller, build_stream_sync
from tests.conftest import run_pollen
from tests.e2e.conftest import World, make_world

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: A small market: moto walks the whole table for every Query, and four days of pipeline run here.
MARKET = 400
DAYS = (0, 1, 2)
POLLENATE_PER_DAY = 6
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Scenario:
    def __init__(self, world: World, reports: list[PipelineReport], status: StatusReport, page: Path) -> None:
        self.world = world
        self.reports = reports
        self.status = status
        self.page = page


@pytest.fixture(scope="module")
def small_simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(asset_count=MARKET) as sim:
        yield sim


@pytest.fixture(scope="module")
def scenario(endpoint: str, small_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    world = make_world(endpoint, small_simulator, tmp_path_factory.mktemp("status-home"))
    runs = wiring.build_run_log(world.settings, world.metrics, world.store, world.clock)
    reports = []
    for day in DAYS:
        world.set_day(day)
        reports.append(
            run_pipeline(
                world.store,
                world.assets,
                world.fundamentals,
                metrics=world.metrics,
                clock=world.clock,
                pollenate_count=POLLENATE_PER_DAY,
                runs=runs,
            )
        )
    sync = build_stream_sync(world.settings, world.metrics)
    try:
        streamed = build_poller(world.settings, sync).run_once()
    finally:
        sync.index.close()
    runs.record(streamed, started_at=world.clock(), source="test")
    status = wiring.build_status(world.settings, world.metrics, clock=world.clock, store=world.store).collect()
    page = world.settings.home / "status.html"
    write_page(page, status)
    return Scenario(world, reports, status, page)


def boto3_client(world: World) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=world.settings.dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items += page["Items"]
    return items


def text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value.get("S") or value.get("N"))


@pytest.mark.timeout(900)  # the module's scenario runs three days of pipeline first
def test_status_numbers_equal_independent_reads_of_the_tables(scenario: Scenario) -> None:
    world, status = scenario.world, scenario.status
    assert all(r.ok for r in scenario.reports), [r.errors for r in scenario.reports]
    client = boto3_client(world)
    prefix = world.settings.table_prefix
    now = world.clock()
    today = now.date()

    # assets: every item, the newest key per symbol
    assets = scan_all(client, f"{prefix}assets")
    newest: dict[str, dict[str, Any]] = {}
    for item in assets:
        symbol = text(item, "symbol")
        assert symbol is not None
        if symbol not in newest or text(item, "lastPollenationDate") > text(newest[symbol], "lastPollenationDate"):  # type: ignore[operator]
            newest[symbol] = item
    active = {s: str(text(i, "lastPollenationDate")) for s, i in newest.items() if text(i, "status") == "active"}
    syncs = [str(text(i, "lastSyncDate")) for i in assets]
    fresh = status.freshness
    assert fresh.asset_items == len(assets)
    assert (fresh.assets_active, fresh.assets_inactive) == (len(active), len(newest) - len(active))
    assert (fresh.tables[0].newest_sync, fresh.tables[0].oldest_sync) == (max(syncs), min(syncs))

    # item counts (moto's DescribeTable is exact) against full scans
    counted = {t.table: t.items for t in fresh.tables}
    for table in CONTRACT_TABLES:
        assert counted[table.name] == len(scan_all(client, f"{prefix}{table.name}")), table.name

    # the calendar's range and the earnings-due assets, from a full scan
    calendar = scan_all(client, f"{prefix}earningsCalendar")
    dates = [str(text(i, "earnings_date")) for i in calendar]
    assert (fresh.calendar_first, fresh.calendar_last) == (min(dates), max(dates))
    lookback = (today - dt.timedelta(days=92)).isoformat()
    earnings_due = {
        str(text(i, "asset_symbol"))
        for i in calendar
        if lookback <= str(text(i, "earnings_date")) <= today.isoformat()
        and "pollenatedAt" not in i
        and text(i, "asset_symbol") in active
        and str(text(i, "earnings_date")) > active[str(text(i, "asset_symbol"))][:10]
    }

    # pollination
    ages = sorted(
        (now - dt.datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds() / 86400
        for last in active.values()
        if last != NEVER_POLLENATED
    )
    p = status.pollination
    assert p.pollenated == len(ages) > 0
    assert p.coverage == round(len(ages) / len(active), 4)
    assert p.age_median_days == round(statistics.median(ages), 2)
    assert p.age_p90_days == round(percentile(ages, 0.9), 2)
    assert p.age_oldest_days == round(ages[-1], 2)
    assert p.due.earnings == len(earnings_due)
    assert p.due.never_pollenated == sum(
        1 for s, last in active.items() if last == NEVER_POLLENATED and s not in earnings_due
    )
    assert p.due.stale == 0  # nothing is 30 days old after three days
    pollenated = [r.steps[2] for r in scenario.reports]
    calls = sum(int(step.details["calls"]) for step in pollenated)
    done = sum(int(step.details["pollenated"]) for step in pollenated)
    assert p.calls_measured_over == done and p.calls_per_pollenation == round(calls / done, 2)

    # runs: the newest record per job, read from the control table with boto3
    for job in ("sync-assets", "sync-earnings", "pollenate", "stream-sync"):
        page = client.query(
            TableName=f"{prefix}pollenControl",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"run#{job}"}},
            ScanIndexForward=False,
            Limit=1,
        )
        (latest,) = page["Items"]
        assert status.runs.last[job].started_at == text(latest, "started_at"), job
        assert int(latest["expiresAt"]["N"]) > int(now.timestamp()) + 29 * 86400
    assert status.runs.failures_24h == 0
    assert sum(d.waiting for d in status.runs.dead_letters) == 0

    # stream sync: drained by the local poller, so nothing is pending after its checkpoints
    assert status.streams is not None and len(status.streams) == 3
    assert all(s.checkpoint and s.pending == 0 and s.lag_s == 0 for s in status.streams)
    assert status.health in ("ok", "attention") and status.health_line.startswith(f"health: {status.health}")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    found = chromium()
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing in CI (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    yield found


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_page_renders_in_headless_chromium_with_data_in_every_chart(
    scenario: Scenario, browser: str, tmp_path: Path
) -> None:
    url = scenario.page.resolve().as_uri()
    dom = run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's script ran to its end: it marks the body once it has counted the charts.
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None and 'data-ready="yes"' in body.group(0), dom.stdout[:500]
    charts = int(re.search(r'data-charts="(\d+)"', body.group(0)).group(1))  # type: ignore[union-attr]
    with_data = int(re.search(r'data-charts-with-data="(\d+)"', body.group(0)).group(1))  # type: ignore[union-attr]
    assert charts >= 4 and with_data == charts
    for name in ("coverage", "age", "items-assets", "items-companyOverview", "calls"):
        assert f'data-chart="{name}"' in dom.stdout
    assert scenario.status.health_line.split(";")[0] in dom.stdout
    # Console errors (and failed loads) are logged as CONSOLE / ERROR lines on stderr with --enable-logging.
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    result = run_chromium(
        browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,2200", "--hide-scrollbars", url
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_the_demo_summary_ends_with_the_health_line_and_how_to_open_the_page(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "ALPACA_", "ALPHAVANTAGE_", "AWS_ENDPOINT"))
    }
    env["POLLEN_HOME"] = str(tmp_path)
    env["COLUMNS"] = "200"
    result = run_pollen("demo", "--keep", "--assets", "300", "--pollenate", "3", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    health, opening = result.stdout.rstrip().splitlines()[-2:]
    assert re.match(r"health: (ok|attention|failing)\b.*\d+ active assets, \d+% pollenated, backlog \d+", health)
    page = tmp_path / "status.html"
    assert opening == f"status page: open {page.resolve().as_uri()} in a browser"
    assert 'data-chart="coverage"' in page.read_text()
