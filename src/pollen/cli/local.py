"""`pollen local`: the embedded stack in the foreground."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType

import typer

from pollen.cli import runtime as rt
from pollen.errors import PollenError
from pollen.local import require_local_extra


def local(
    ctx: typer.Context,
    port: int = typer.Option(0, "--port", min=0, max=65535, help="DynamoDB port (0: a free one)."),
    simulator: bool = typer.Option(True, "--simulator/--no-simulator", help="Also serve the upstream simulator."),
    simulator_port: int = typer.Option(0, "--simulator-port", min=0, max=65535, help="Simulator port (0: a free one)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the simulated market."),
    day: int = typer.Option(0, "--day", min=0, help="Day of the simulated market (drift from day 0)."),
    assets: int = typer.Option(12_000, "--assets", min=100, max=500_000, help="Assets in the simulated market."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Run the embedded stack (DynamoDB with streams, upstream simulator) until Ctrl-C and print the variables
    that point at it. The simulator's knobs change at runtime: POST a JSON object to <simulator>/_sim/config."""
    runtime = rt.start(ctx, json_output)
    settings = runtime.settings
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def action() -> None:
        require_local_extra("pollen local")
        from pollen.local.stack import EmbeddedStack  # the optional extra pollen[local]

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with EmbeddedStack(
                home=settings.home,
                port=port,
                table_prefix=settings.table_prefix,
                region=settings.region,
                simulator=simulator,
                simulator_port=simulator_port,
                simulator_options={"seed": seed, "day": day, "asset_count": assets},
            ) as stack:
                env = stack.environment()
                if runtime.json_output:
                    rt.print_json(runtime, {"ok": True, "environment": env})
                else:
                    for key, value in env.items():
                        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
                    if stack.simulator is not None:
                        runtime.err.print(
                            f"simulator knobs: curl -X POST {stack.simulator.url}/_sim/config -d '{{\"day\": 1}}'",
                            highlight=False,
                            markup=False,
                        )
                    runtime.err.print("pollen local is running; Ctrl-C stops it.")
                sys.stdout.flush()
                while not stop.wait(0.5):
                    try:
                        stack.check_alive()
                    except PollenError as exc:
                        rt.fail(str(exc), json_output=False, exit_code=2)
            runtime.err.print("pollen local stopped.")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    rt.run(runtime, action)
