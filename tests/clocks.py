"""A clock that moves only when a test moves it, for leases, heartbeats and deadlines: no test waits for time to pass.

``ManualClock`` is a clock (call it for the time) and a heartbeat pause (``wait``, what ``JobLease`` waits with
between renewals). A test advances it and then ``settle``s: that returns once every heartbeat thread has finished what
the advance set off (it is paused again until a later time, or it has ended), so what the test checks next does not
depend on how fast threads run on a busy machine.
"""

from __future__ import annotations

import threading
import time

#: How long ``settle`` waits for heartbeat threads before it fails the test (only a hung thread gets near it).
SETTLE_LIMIT_S = 60.0
#: How often a paused heartbeat looks at its stop event (set by a release, which does not notify this clock).
_STOP_POLL_S = 0.01


class ManualClock:
    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self._now = start
        self._changed = threading.Condition()
        self._paused_until: dict[threading.Thread, float] = {}
        self._threads: set[threading.Thread] = set()

    def __call__(self) -> float:
        with self._changed:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Pause until this clock has advanced by ``seconds`` or ``stop`` is set; True when stopped."""
        me = threading.current_thread()
        with self._changed:
            until = self._now + seconds
            self._threads.add(me)
            self._paused_until[me] = until
            self._changed.notify_all()
            try:
                while not stop.is_set() and self._now < until:
                    self._changed.wait(_STOP_POLL_S)
            finally:
                del self._paused_until[me]
                self._changed.notify_all()
        return stop.is_set()

    def _settled(self, paused: int) -> bool:
        alive = [thread for thread in self._threads if thread.is_alive()]
        waiting = [thread for thread in alive if self._paused_until.get(thread, self._now) > self._now]
        return len(alive) == len(waiting) == paused

    def settle(self, paused: int = 1) -> None:
        """Return once exactly ``paused`` threads that ever paused on this clock are alive, each paused until a time
        still to come (a thread that ended counts as settled)."""
        limit = time.monotonic() + SETTLE_LIMIT_S
        with self._changed:
            while not self._settled(paused):
                alive = sum(thread.is_alive() for thread in self._threads)
                assert time.monotonic() < limit, f"heartbeats did not settle: {alive} alive, {paused} expected"
                self._changed.wait(_STOP_POLL_S)  # a thread's end is not notified
