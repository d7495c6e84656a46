"""Lambda artifacts: each function's unzipped size (its folder from sam build plus its layers) and its handler's cold
import time under python3.13 with only boto3 installed, as in the Lambda harness (tests/lambdas)."""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

from tests.lambdas import harness

COLD_STARTS = 5
IMPORT = (
    "import importlib, sys, time\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(time.perf_counter() - wall, time.process_time() - cpu)\n"
)


def cold_import_s(python: Path, module: str, paths: list[Path], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the handler module's import in a fresh process."""
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only in Lambda
        "AWS_REGION": harness.REGION,
    }
    result = subprocess.run(
        [str(python), "-c", IMPORT, module], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    wall, cpu = result.stdout.split()
    return float(wall), float(cpu)


def main() -> str:
    python313, sam = harness.find_python313(), harness.find_sam()
    if python313 is None or sam is None:
        raise SystemExit("bench_lambda needs python3.13 and sam (./dev sam, or POLLEN_SAM)")
    build_dir = harness.build_artifacts(sam, python313)
    python = harness.runtime_venv(python313) / "bin/python"
    template = harness.load_template()
    rows = []
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        layers = [build_dir / layer["Ref"] for layer in props.get("Layers", [])]
        code_mb = harness.artifact_size(build_dir / logical) / 2**20
        layers_mb = sum(harness.artifact_size(layer) for layer in layers) / 2**20
        module = props["Handler"].rpartition(".")[0]
        paths = [build_dir / logical, *(layer / "python" for layer in layers)]
        times = [cold_import_s(python, module, paths, build_dir / logical) for _ in range(COLD_STARTS)]
        layer_names = ", ".join(layer.name for layer in layers) or "-"
        rows.append(
            f"| {logical} | {layer_names} | {code_mb:.1f} | {layers_mb:.1f} | {code_mb + layers_mb:.1f} "
            f"| {statistics.median(t[1] for t in times):.3f} | {statistics.median(t[0] for t in times):.3f} "
            f"| {max(t[0] for t in times):.3f} |"
        )
    return "\n".join(
        [
            "## Lambda artifacts: unzipped size and cold import time",
            "",
            "Method: `sam build` of an x86_64 copy of template.yaml (the harness's build, tests/lambdas/harness.py); "
            "size = every file of the function's folder plus its layers' folders (what Lambda counts unzipped); "
            f"cold import = `import` of the handler's module in a fresh python3.13 process holding only boto3, "
            f"with the artifact and its layers on the path and no bytecode writes (as on Lambda's read-only "
            f"/var/task), in {COLD_STARTS} processes: the median CPU time of the import (what it costs on an idle "
            "core; the wall time on a shared, loaded machine is mostly waiting for a core) and the wall time's "
            "median and max. Limits (issue 15): 40 MB and 0.5 s for every function but SyncAssets.",
            "",
            "| function | layers | code (MiB) | layers (MiB) | total (MiB) | import CPU (s) | import wall median (s) "
            "| wall max (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )
