"""The layers hold: every import of every module under src/pollen (read with ast, function-level and TYPE_CHECKING
imports included) points down or sideways, never up, and no modules import each other in a cycle.

Layers, lowest first:

    base      errors, settings, domain, deadline, report, tables, observability, aws (the shared AWS helpers)
    ports     ports (every Protocol and the data types it speaks)
    middle    adapters | jobs, streams     (jobs and streams never import adapters, adapters never jobs or streams)
    wiring    wiring (the composition root: the one place that builds adapters)
    local     local (the embedded stack, the simulator: development tools only the CLI starts)
    entry     cli, handlers                (neither imports the other; handlers never import local)

Below the entry points only the composition root and the adapters build clients, and only settings (and the local
tools, and ``process``: the process set-up the entry points apply) read the environment.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS: list[tuple[str, ...]] = [
    (
        "pollen",
        "pollen.errors",
        "pollen.settings",
        "pollen.domain",
        "pollen.deadline",
        "pollen.report",
        "pollen.tables",
        "pollen.observability",
        "pollen.aws",
    ),
    ("pollen.ports",),
    ("pollen.adapters", "pollen.jobs", "pollen.streams"),
    ("pollen.wiring",),
    ("pollen.local",),
    ("pollen.cli", "pollen.handlers", "pollen.__main__"),
]

#: Imports forbidden between groups of one layer (importer prefix, imported prefix).
SIDEWAYS_FORBIDDEN = [
    ("pollen.jobs", "pollen.adapters"),
    ("pollen.streams", "pollen.adapters"),
    ("pollen.adapters", "pollen.jobs"),
    ("pollen.adapters", "pollen.streams"),
    ("pollen.cli", "pollen.handlers"),
    ("pollen.handlers", "pollen.cli"),
    ("pollen.handlers", "pollen.local"),
    # Jobs and domain never talk to AWS themselves.
    ("pollen.jobs", "pollen.aws"),
    ("pollen.domain", "pollen.aws"),
]

#: Cycles known and owned elsewhere: the lease reads the store's internals (its type under TYPE_CHECKING) while the
#: store hands out leases; the store split (issue 12, item 1) is to break it. Remove the entry when it is gone (a
#: test below fails once it is).
KNOWN_CYCLES: list[frozenset[str]] = []

#: Calls that build a client, and where they may appear (besides the entry points' own modules, which call wiring).
CLIENT_BUILDERS = {
    "make_client",
    "boto3.client",
    "boto3.Session",
    "boto3.session.Session",
    "httpx.Client",
    "OpenSearch",
}
CLIENT_BUILDERS_ALLOWED = ("pollen.wiring", "pollen.aws", "pollen.adapters", "pollen.local")
ENVIRONMENT_READS = {"os.environ", "os.getenv", "os.environ.get", "getenv", "environ"}
ENVIRONMENT_ALLOWED = ("pollen.settings", "pollen.local", "pollen.process")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def modules(root: Path = SRC) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((root / "pollen").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module a dotted name lands in (``pollen.a.b.Name`` -> ``pollen.a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """Every pollen module ``module`` imports, at any depth of its code (functions, TYPE_CHECKING blocks)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pollen.cli import runtime`` imports the module pollen.cli.runtime, not just the package.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for name in names:
            target = _resolve(name, known) if name.split(".")[0] == "pollen" else None
            if target is not None and target != module:
                yield Import(module, target, node.lineno)


def import_graph(root: Path = SRC) -> list[Import]:
    known = modules(root)
    edges = (edge for module, path in known.items() for edge in imports_of(module, path, known))
    return list(dict.fromkeys(edges))  # one per import statement, however many names it takes


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer): the longest matching prefix wins
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def layer_violations(edges: list[Import]) -> list[str]:
    found: list[str] = []
    for edge in edges:
        if layer_of(edge.imported) > layer_of(edge.importer):
            found.append(f"{edge.importer}:{edge.line} imports {edge.imported} (a higher layer)")
        for importer, imported in SIDEWAYS_FORBIDDEN:
            if _within(edge.importer, importer) and _within(edge.imported, imported):
                found.append(f"{edge.importer}:{edge.line} imports {edge.imported} ({importer} must not)")
    return found


def cycles(edges: list[Import]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def forbidden_calls(root: Path = SRC) -> list[str]:
    """Client construction outside the composition root and the adapters; environment reads outside settings."""
    found: list[str] = []
    for module, path in modules(root).items():
        may_build = any(_within(module, prefix) for prefix in CLIENT_BUILDERS_ALLOWED)
        may_read_env = any(_within(module, prefix) for prefix in ENVIRONMENT_ALLOWED)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and not may_build and _dotted(node.func) in CLIENT_BUILDERS:
                found.append(f"{module}:{node.lineno} builds a client ({_dotted(node.func)})")
            if isinstance(node, ast.Attribute | ast.Name) and not may_read_env and _dotted(node) in ENVIRONMENT_READS:
                found.append(f"{module}:{node.lineno} reads the environment ({_dotted(node)})")
    return sorted(set(found))


def test_no_import_runs_upward() -> None:
    assert layer_violations(import_graph()) == []


def test_no_modules_import_each_other_in_a_cycle() -> None:
    unexpected = [sorted(c) for c in cycles(import_graph()) if c not in KNOWN_CYCLES]
    assert unexpected == []


def test_the_known_cycles_still_exist() -> None:
    """A known cycle that is gone must leave KNOWN_CYCLES too, so that it cannot come back unnoticed."""
    present = cycles(import_graph())
    assert [sorted(c) for c in KNOWN_CYCLES if c not in present] == []


def test_only_the_composition_root_and_the_adapters_build_clients_and_only_settings_reads_the_environment() -> None:
    assert forbidden_calls() == []


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        layer_of(module)


# --- the checks themselves catch what they are for ------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_an_upward_import_inside_a_function_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pollen/__init__.py": "",
            "pollen/jobs/__init__.py": "",
            "pollen/jobs/x.py": "def f():\n    from pollen.adapters.y import Y\n",
            "pollen/adapters/__init__.py": "",
            "pollen/adapters/y.py": "Y = 1\n",
        },
    )
    assert layer_violations(import_graph(root)) == ["pollen.jobs.x:2 imports pollen.adapters.y (pollen.jobs must not)"]


@pytest.mark.parametrize("statement", ["from pollen import wiring", "import pollen.wiring", "from .. import wiring"])
def test_an_adapter_importing_the_composition_root_is_caught(tmp_path: Path, statement: str) -> None:
    root = _tree(
        tmp_path,
        {
            "pollen/__init__.py": "",
            "pollen/wiring.py": "",
            "pollen/adapters/__init__.py": "",
            "pollen/adapters/sqs.py": f"{statement}\n",
        },
    )
    assert layer_violations(import_graph(root)) == ["pollen.adapters.sqs:1 imports pollen.wiring (a higher layer)"]


def test_a_cycle_through_a_type_checking_import_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pollen/__init__.py": "",
            "pollen/a.py": "from pollen.b import B\n",
            "pollen/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pollen.c import C\nB = 1\n",
            "pollen/c.py": "from pollen.a import A\n",
        },
    )
    assert cycles(import_graph(root)) == [frozenset({"pollen.a", "pollen.b", "pollen.c"})]


def test_a_client_built_or_the_environment_read_in_a_job_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pollen/__init__.py": "",
            "pollen/jobs/__init__.py": "",
            "pollen/jobs/x.py": "import os\nimport boto3\nc = boto3.client('sqs')\nu = os.environ.get('URL')\n",
        },
    )
    assert forbidden_calls(root) == [
        "pollen.jobs.x:3 builds a client (boto3.client)",
        "pollen.jobs.x:4 reads the environment (os.environ)",
        "pollen.jobs.x:4 reads the environment (os.environ.get)",
    ]
