"""The server's garbage collector runs its full collections far less often.

What CPython does: a full (oldest-generation) collection walks every tracked object. moto keeps every stored item as
objects (an ``Item``, its ``LimitedSizeDict`` and one ``DynamoType`` per attribute), and every stream record with
its images, so at 12,000 assets the server holds hundreds of thousands of tracked objects; a projected Scan of the
assets table creates tens of thousands that live until the response is written, enough to start full collections
(CPython starts one once the objects promoted since the last one exceed a quarter of the oldest generation).
Sampled during ``pollen check`` at 12,000 assets, two allocation lines of projected items took one sample in eight of
the server's samples before this part (13%) and 2% after; its busy samples halved (433 to 218).

What the part does: ``gc.freeze()`` once the tables are loaded is not an option (the server never knows when), so
it raises the thresholds: the youngest generation is collected every 50,000 allocations instead of 700, and the
oldest only after 100 collections of the middle one instead of 10.

Why it changes no response: the collector only frees unreachable cycles; moto's items and responses hold none that a
request depends on, and when they are freed shows in memory only (cycles still are collected, later).
"""

from __future__ import annotations

import gc

#: (youngest, middle, oldest) thresholds; CPython's defaults are (700, 10, 10).
THRESHOLDS = (50_000, 20, 100)


def apply() -> None:
    gc.set_threshold(*THRESHOLDS)
