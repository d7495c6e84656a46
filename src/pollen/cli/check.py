"""`pollen check [--repair]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from pollen import wiring
from pollen.cli import runtime as rt

if TYPE_CHECKING:
    from pollen.report import JobReport


def check(
    ctx: typer.Context,
    repair: bool = typer.Option(False, "--repair", help="Fix what the check finds (holds the sync's lease)."),
    force: bool = rt.FORCE_OPTION,
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Consistency validation: one asset item per symbol, required attributes, stale rescheduled reports."""
    from pollen.jobs.check import ConsistencyCheck

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        job = ConsistencyCheck(
            wiring.build_store(runtime.settings, runtime.metrics), metrics=runtime.metrics, force_lease=force
        )
        report = job.run(repair=repair)
        rt.finish(runtime, report, render=_render)

    rt.run(runtime, action)


def _render(runtime: rt.Runtime, report: JobReport) -> None:
    from pollen.jobs.check import CheckReport

    assert isinstance(report, CheckReport)
    rt.render_report(runtime, report.model_copy(update={"defects": []}))
    for line in report.defects:
        runtime.out.print(f"  {line}", highlight=False, markup=False)
