"""Run every benchmark (or those named on the command line) and write bench/RESULTS.md."""

from __future__ import annotations

import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    sections: list[str] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr)
        sections.append(module.main())
        print(f"  {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr)
    results = HERE / "RESULTS.md"
    existing = _split(results.read_text()) if results.exists() else {}
    for section in sections:
        title = section.splitlines()[0]
        existing[title] = section.rstrip() + "\n"
    header = (
        "# Benchmark results\n\n"
        "Written by `./dev bench`. Each section compares ratios measured in one run on one machine "
        f"(last run: {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{platform.machine()}).\n\n"
    )
    results.write_text(header + "\n".join(existing[k] for k in sorted(existing)))
    print(results.read_text())
    return 0


def _split(text: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            if current and current[0].startswith("## "):
                sections[current[0]] = "\n".join(current).rstrip() + "\n"
            current = [line]
        elif current:
            current.append(line)
    if current and current[0].startswith("## "):
        sections[current[0]] = "\n".join(current).rstrip() + "\n"
    return sections


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
