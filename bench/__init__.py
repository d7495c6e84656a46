"""Benchmarks. Each `bench/bench_*.py` module has a `main() -> str` that runs one comparison in one process
and returns a Markdown section; `python -m bench` runs them all and writes bench/RESULTS.md."""
