"""``python -m pollen.local.simulator``: serve the simulator in the foreground (used by SimulatorProcess).

Stops on SIGTERM/SIGINT, and by itself when ``--parent-pid`` is given and that process has gone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType

from pollen.local.child import LOOPBACK
from pollen.local.simulator.server import Simulator


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pollen.local.simulator")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="SimulatorConfig knobs as a JSON object")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Simulator(host=args.host, port=args.port, **json.loads(args.config)) as simulator:
        for key, value in simulator.environment().items():
            sys.stdout.write(f"{key}={value}\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if args.parent_pid is not None and not _alive(args.parent_pid):
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
