"""The operator commands at 12,000 assets, two source trees side by side: a base revision (POLLEN_BENCH_BASE,
default ``HEAD~1``) and the working tree, each on its own embedded stack (server and client of that tree), the same
command run on both in turn, several rounds; so a change's effect is a ratio from one run, on one machine's load."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from pollen.local.stack import EmbeddedStack

MARKET = 12_000
ROUNDS = int(os.environ.get("POLLEN_BENCH_ROUNDS", "3"))
BASE = os.environ.get("POLLEN_BENCH_BASE", "HEAD~1")
ROOT = Path(__file__).resolve().parent.parent
FILL: list[list[str]] = [["sync", "assets"], ["sync", "earnings"], ["stream", "sync", "--once"]]
#: In a user's order: the check follows the pollenation's writes, as in bench_commands.
COMMANDS: list[list[str]] = [
    ["sync", "assets"],
    ["sync", "earnings"],
    ["pollenate", "--next", "1"],
    ["check"],
    ["status"],
]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(arguments: list[str], env: Mapping[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``pollen ARGS --json`` in a new process."""
    cpu = children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pollen", *arguments, "--json"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"pollen {' '.join(arguments)} exited {done.returncode}: {done.stderr[-500:]}")
    return time.perf_counter() - started, children_cpu_s() - cpu


@contextlib.contextmanager
def base_tree(revision: str) -> Iterator[tuple[str, Path]]:
    """The revision's ``src`` in a temporary directory, and the revision's short name."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as where:
        archive = Path(where) / "src.tar"
        subprocess.run(["git", "archive", "-o", str(archive), revision, "src"], cwd=ROOT, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(where, filter="data")
        yield commit, Path(where) / "src"


@contextlib.contextmanager
def stack_of(source: Path | None) -> Iterator[dict[str, str]]:
    """An embedded stack whose server runs ``source`` (None: this tree); the environment for its commands."""
    extra = {"PYTHONPATH": str(source)} if source is not None else {}
    saved = os.environ.get("PYTHONPATH")
    os.environ.update(extra)
    if source is None:
        os.environ.pop("PYTHONPATH", None)
    try:
        with (
            tempfile.TemporaryDirectory() as home,
            EmbeddedStack(home=Path(home), simulator=True, simulator_options={"asset_count": MARKET}) as stack,
        ):
            yield {**os.environ, **stack.environment(), **extra}
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> str:
    rows = []
    with base_tree(BASE) as (commit, source), stack_of(source) as old, stack_of(None) as new:
        for arguments in FILL:
            timed(arguments, old)
            timed(arguments, new)
        runs: dict[str, list[tuple[str, float, float, str]]] = {" ".join(a): [] for a in COMMANDS}
        for _ in range(ROUNDS):
            for arguments in COMMANDS:
                for tree, env in (("base", old), ("new", new)):
                    load = Path("/proc/loadavg").read_text().split()[0]
                    wall, cpu = timed(arguments, env)
                    runs[" ".join(arguments)].append((tree, wall, cpu, load))
        for command, measured in runs.items():
            base = [(w, c) for t, w, c, _ in measured if t == "base"]
            ours = [(w, c) for t, w, c, _ in measured if t == "new"]
            loads = sorted(float(load) for *_, load in measured)
            best_base = (min(w for w, _ in base), min(c for _, c in base))
            best_ours = (min(w for w, _ in ours), min(c for _, c in ours))
            rows.append((command, best_base, best_ours, loads[0], loads[-1]))
    lines = [
        "## Operator commands: the working tree against a base revision, side by side",
        "",
        f"Method: the simulator's market of {MARKET:,} assets on two embedded stacks, one running the base revision "
        f"(`{commit}`, server and client) and one the working tree; each stack filled alike, then each command run "
        f"on one stack and then the other, {ROUNDS} rounds in a user's order (the check after the pollenation's "
        "writes). Best wall and CPU seconds of the command process over the rounds (CPU: its own user and system "
        "time, not the server's); the ratio is new / base. The machine's load is shown: the stacks, and whatever "
        "else ran.",
        "",
        "| command | base s | new s | new / base | base CPU s | new CPU s | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for command, (base_wall, base_cpu), (new_wall, new_cpu), low, high in rows:
        lines.append(
            f"| `pollen {command}` | {base_wall:.2f} | {new_wall:.2f} | {new_wall / base_wall:.2f}x | {base_cpu:.2f} "
            f"| {new_cpu:.2f} | {low:.1f}-{high:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
