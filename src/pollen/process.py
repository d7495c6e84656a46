"""Settings of the Python process that the entry points (the ``pollen`` command, the Lambda handlers) apply once
when they start. Jobs and adapters never change process-wide state."""

from __future__ import annotations

import gc
import os

#: CPython's cycle collector runs a young-generation pass after every 700 net container allocations (2,000 from
#: Python 3.13) and, every hundred or so passes, walks every object alive. A job allocates tens of thousands of
#: long-lived objects in bursts (response pages, listings, models, items), and at those thresholds the collector
#: walks them again and again: 0.55 s of the CPU of a 2.8 s same-day `pollen sync assets` at 12,000 assets (timed
#: with ``gc.callbacks``: four full and about 560 partial passes), 0.1-0.2 s at these thresholds. Pollen's data
#: holds no reference cycles (JSON trees, dicts, models): collecting less often only lets the little cyclic garbage
#: there is (tracebacks, closed clients) wait a little longer.
COLLECTOR_THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Collect reference cycles less often: each threshold raised to :data:`COLLECTOR_THRESHOLDS` (never lowered;
    a collector switched off with a threshold of 0 stays off)."""
    current = gc.get_threshold()
    if current[0] == 0:
        return
    gc.set_threshold(*(max(now, wanted) for now, wanted in zip(current, COLLECTOR_THRESHOLDS, strict=False)))


#: pydantic's switch for its plugins: with every plugin off it never looks for any.
PYDANTIC_PLUGINS_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"


def skip_plugin_discovery() -> None:
    """Building its first model, pydantic looks for plugins in the entry points of every installed distribution
    (20-40 ms of each command's start here, more in a larger environment); pollen uses none. Switched off unless
    the variable is set already (an empty value lets every plugin load)."""
    os.environ.setdefault(PYDANTIC_PLUGINS_VARIABLE, "__all__")


def skip_final_collections() -> None:
    """For a process about to end: move every object alive out of the cycle collector's reach, so that the
    interpreter's collections at shutdown skip them (0.2 s of a `pollen sync assets` at 12,000 assets, measured
    against ``os._exit``). Nothing is freed early or left unflushed: the objects stay alive until the process ends,
    exit handlers still run, and a command has closed its files and clients before this is called."""
    gc.freeze()
