"""Every single command at 12,000 assets on the embedded stack: the wall time of `pollen ...` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pollen.local.stack import EmbeddedStack

MARKET = 12_000
#: Issue 15's limit for one command at 12,000 assets.
LIMIT_S = 3.0
#: The commands in the order a user meets them; (label, arguments, counted against the limit).
COMMANDS: list[tuple[str, list[str], bool]] = [
    ("sync assets (first run: writes the market)", ["sync", "assets"], False),
    ("sync earnings (first run)", ["sync", "earnings"], False),
    ("stream sync --once (the whole backlog)", ["stream", "sync", "--once"], False),
    ("sync assets (same day again)", ["sync", "assets"], True),
    ("sync earnings (same day again)", ["sync", "earnings"], True),
    ("pollenate --next 1", ["pollenate", "--next", "1"], True),
    ("check", ["check"], True),
    ("status", ["status"], True),
    ("assets (50 most active)", ["assets", "--limit", "50"], True),
    ("earnings (next 14 days)", ["earnings"], True),
    ("stream sync --once (drained stream)", ["stream", "sync", "--once"], True),
    ("search", ["search", "bank"], True),
]


def uptime_load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> str:
    rows = []
    with (
        tempfile.TemporaryDirectory() as home,
        EmbeddedStack(home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}) as stack,
    ):
        env = {**os.environ, **stack.environment()}
        for label, arguments, counted in COMMANDS:
            load = uptime_load()
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "pollen", *arguments, "--json"], env=env, capture_output=True, check=False
            )
            seconds = time.perf_counter() - started
            rows.append((label, arguments, counted, seconds, done.returncode, load))
    lines = [
        "## Every command at 12,000 assets on the embedded stack",
        "",
        f"Method: the simulator's market of {MARKET:,} assets and moto's server (with pollen's motopatch), each in a "
        "child process; each command run as a user runs it (`python -m pollen ... --json`, a new process, imports "
        "included), one after another on the same stack, wall time at the caller. The first three fill the store "
        "and drain the stream backlog; the rest are what an operator runs on a loaded store (limit "
        f"{LIMIT_S:.0f} s each, issue 15). Load average (1 min) read before each command: the machine's two cores "
        "are shared with other developers' work.",
        "",
        "| command | seconds | exit | load | limit |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, arguments, counted, seconds, code, load in rows:
        verdict = ("met" if seconds <= LIMIT_S else "**not met**") if counted else "-"
        lines.append(f"| `pollen {' '.join(arguments)}`: {label} | {seconds:.1f} | {code} | {load} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
