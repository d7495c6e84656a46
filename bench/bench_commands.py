"""Every single command at 12,000 assets on the embedded stack: the wall time of `pollen ...` as a user runs it,
and how much of it is the process's start-up (its imports, and a bare `pollen --help` measured in the same run)."""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from pollen.local.stack import EmbeddedStack

MARKET = 12_000
#: Issue 15's limit for one command at 12,000 assets.
LIMIT_S = 3.0
#: Runs of each start-up figure (the best shows the cost without the machine's noise, the median with it).
STARTUP_RUNS = 5
#: Timed runs of each command counted against the limit (each run does about the same work: on a loaded store
#: they change nothing, but for `pollenate --next 1`, which takes the next asset): the median is judged, the
#: slowest shown. One more run under ``-X importtime`` gives the imports.
COMMAND_RUNS = 3
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
#: Start-up alone, in new processes: the interpreter, the CLI app's import, and the top-level help.
STARTUP: list[tuple[str, list[str]]] = [
    ("`python -c pass` (the interpreter alone)", ["-c", "pass"]),
    ("`python -c 'import pollen.cli.app'`", ["-c", "import pollen.cli.app"]),
    ("`python -m pollen --help`", ["-m", "pollen", "--help"]),
]


def uptime_load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def import_seconds(importtime_log: str) -> float:
    """What the process spent importing: the sum of the outermost imports' cumulative times in ``-X importtime``'s
    log (the lazy imports a command makes while it runs are outermost too)."""
    total_us = 0
    for line in importtime_log.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
            total_us += int(cumulative)
    return total_us / 1e6


def children_cpu_s() -> float:
    """User and system CPU of this process's finished children (the stack's servers still run, so they are not in
    it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(arguments: list[str], env: Mapping[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU seconds of ``python ARGS`` in a new process."""
    cpu = children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, children_cpu_s() - cpu, done


def startup(env: Mapping[str, str]) -> list[tuple[str, float, float, float, str]]:
    """(label, best wall, median wall, best CPU, load) of each start-up figure over STARTUP_RUNS new processes."""
    rows = []
    for label, arguments in STARTUP:
        load = uptime_load()
        runs = [timed(arguments, env) for _ in range(STARTUP_RUNS)]
        walls = [wall for wall, _, _ in runs]
        rows.append((label, min(walls), statistics.median(walls), min(cpu for _, cpu, _ in runs), load))
    return rows


Row = tuple[str, list[str], bool, float, float, float, float, int, str]


def measure(label: str, arguments: list[str], counted: bool, env: Mapping[str, str]) -> Row:
    """(label, arguments, counted, median wall, slowest wall, median CPU, imports, exit, load) of one command: a
    command that changes the store runs once, under ``-X importtime``; a counted one COMMAND_RUNS times as a user
    runs it, then once more under ``-X importtime`` (which slows imports) for the imports alone."""
    load = uptime_load()
    command = ["-m", "pollen", *arguments, "--json"]  # --json keeps stdout one object
    # -X importtime writes one line per import to stderr.
    seconds, cpu, done = timed(["-X", "importtime", *command], env)
    if not counted:
        return (label, arguments, counted, seconds, seconds, cpu, import_seconds(done.stderr), done.returncode, load)
    runs = [timed(command, env) for _ in range(COMMAND_RUNS)]
    walls = [wall for wall, _, _ in runs]
    code = max(run.returncode for _, _, run in runs)
    cpu = statistics.median(cpu for _, cpu, _ in runs)
    return (
        label,
        arguments,
        counted,
        statistics.median(walls),
        max(walls),
        cpu,
        import_seconds(done.stderr),
        code,
        load,
    )


def compile_pollen() -> None:
    """Write the bytecode of pollen's modules, as a first run of any command does (unless ``PYTHONDONTWRITEBYTECODE``
    is set, as on these machines: then every run compiled each module it imports whose bytecode is missing or older
    than its source): the figures are a user's later runs, not the compiler's."""
    import pollen

    compileall.compile_dir(str(Path(pollen.__file__).parent), quiet=1)


def main() -> str:
    compile_pollen()
    rows = []
    with (
        tempfile.TemporaryDirectory() as home,
        EmbeddedStack(home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}) as stack,
    ):
        env = {**os.environ, **stack.environment()}
        for label, arguments, counted in COMMANDS:
            rows.append(measure(label, arguments, counted, env))
        # After the commands, when the stack is idle (just after its start its server and simulator still take CPU).
        started_up = startup(env)
    lines = [
        "## Every command at 12,000 assets on the embedded stack",
        "",
        f"Method: the simulator's market of {MARKET:,} assets and moto's server (with pollen's motopatch), each in a "
        "child process; each command run as a user runs it (`python -m pollen ... --json`, a new process, imports "
        "included), one after another on the same stack, wall time at the caller. The first three fill the store "
        "and drain the stream backlog; the rest are what an operator runs on a loaded store (limit "
        f"{LIMIT_S:.0f} s each, issue 15). Those are run {COMMAND_RUNS} times in a row (each run does about the "
        "same work: they change nothing on a loaded store, except `pollenate --next 1`, which takes the next "
        "asset): `seconds` is the median, judged against the limit, `slowest` the worst run; the three that change "
        "the store run once. Load average (1 min) read before each command: the "
        "machine's two cores are shared with other developers' work.",
        "",
        "Start-up, in the same run after the commands (the stack idle): each figure over "
        f"{STARTUP_RUNS} new processes (best and median). `--help` is the floor every command pays (the interpreter, "
        "typer and the command tree); the `imports` column is what each command spent importing in all (its "
        "`-X importtime` log: the outermost imports' cumulative times, including what it imports when it runs, such "
        "as settings, logging, boto3, the store and its job), taken from one more run under `-X importtime` (which "
        "slows imports down, so the timed runs go without it); `seconds - imports` is about the command's own work. "
        "pollen's modules are compiled first (a user's later runs load their bytecode). "
        "CPU is the command process's user and system time (not the stack's): on a loaded machine it is closer to "
        "what the same process takes on a quiet one than its wall time is.",
        "",
        "| start-up | best s | median s | best CPU s | load |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {label} | {best:.2f} | {median:.2f} | {cpu:.2f} | {load} |" for label, best, median, cpu, load in started_up
    ]
    lines += [
        "",
        "| command | seconds | slowest | CPU s | imports | exit | load | limit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, arguments, counted, seconds, slowest, cpu, imports, code, load in rows:
        verdict = ("met" if seconds <= LIMIT_S else "**not met**") if counted else "-"
        lines.append(
            f"| `pollen {' '.join(arguments)}`: {label} | {seconds:.1f} | {slowest:.1f} | {cpu:.1f} | {imports:.1f} "
            f"| {code} | {load} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
