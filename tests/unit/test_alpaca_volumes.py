"""The Alpaca client's daily volumes against a scripted snapshots endpoint (httpx's MockTransport): several batches in
flight at once, the same result whatever order they finish in, a 429 that holds back every batch, a failed batch that
ends the call."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pollen.adapters.alpaca import AlpacaClient
from pollen.backoff import Backoff
from pollen.errors import PermanentError, TransientError
from pollen.observability import MemorySink, MetricsRecorder

#: How long a scripted response waits for the other requests it expects to be in flight with it (only reached when
#: they never come, i.e. when the client sends one request at a time).
RENDEZVOUS_S = 10.0

Handler = Callable[[httpx.Request], httpx.Response]


def snapshot(volume: int) -> dict[str, Any]:
    return {"dailyBar": {"t": "2026-11-02T20:00:00Z", "o": 1, "h": 1, "l": 1, "c": 1, "v": volume}}


def symbols_of(request: httpx.Request) -> list[str]:
    return request.url.params["symbols"].split(",")


def answer(request: httpx.Request) -> httpx.Response:
    """Every symbol's volume is its number (``S007`` -> 7)."""
    return httpx.Response(200, json={s: snapshot(int(s[1:])) for s in symbols_of(request)})


class Recorder:
    """What the client slept (per thread, in order with its requests) on a clock that never moves: every wait is
    seen, none is taken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, Any]] = []
        self.slept = threading.Event()

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.events.append((threading.current_thread().name, "sleep", seconds))
        self.slept.set()

    def sent(self, request: httpx.Request) -> None:
        with self.lock:
            self.events.append((threading.current_thread().name, "send", symbols_of(request)[0]))


def client(handler: Handler, *, concurrency: int, batch: int = 2, recorder: Recorder | None = None) -> AlpacaClient:
    recorder = recorder or Recorder()
    return AlpacaClient(
        "key",
        "secret",
        data_url="http://alpaca.test",
        metrics=MetricsRecorder(MemorySink()),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        backoff=Backoff(base_s=0.5, cap_s=1.0, max_attempts=3, uniform=lambda a, b: b),
        snapshot_batch=batch,
        snapshot_concurrency=concurrency,
        sleep=recorder.sleep,
        clock=lambda: 1000.0,
    )


def symbols(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def test_batches_are_fetched_several_at_once_and_the_result_does_not_depend_on_their_order() -> None:
    """Four batches must be in flight together (on the old one-at-a-time client the rendezvous never completes);
    they are answered in the reverse of the order they came in, and the volumes are those of a sequential fetch."""
    arrived = threading.Barrier(4, timeout=RENDEZVOUS_S)
    turn = threading.Condition()
    order: list[str] = []
    answered: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        first = symbols_of(request)[0]
        with turn:
            order.append(first)
        arrived.wait()
        with turn:  # the last to arrive is answered first
            assert turn.wait_for(lambda: order[::-1][len(answered)] == first, timeout=RENDEZVOUS_S)
            answered.append(first)
            turn.notify_all()
        return answer(request)

    volumes = client(handler, concurrency=4).daily_volumes(symbols(8))
    assert answered == order[::-1] and len(order) == 4
    assert volumes == {s: int(s[1:]) for s in symbols(8)}


def test_a_429_holds_back_every_batch_until_the_time_the_server_gave() -> None:
    """Two batches in flight; the first answered gets a 429 asking for 7 s. Every later request, from either
    thread, is sent only after its thread waited those 7 s: the other thread's next batch too."""
    recorder = Recorder()
    arrived = threading.Barrier(2, timeout=RENDEZVOUS_S)
    lock = threading.Lock()
    throttled: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        recorder.sent(request)
        with lock:
            first_two = len(throttled) < 2
            throttled.append(symbols_of(request)[0])
        if not first_two:
            return answer(request)
        arrived.wait()
        with lock:
            is_429 = throttled[0] == symbols_of(request)[0]
        if is_429:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "rate limit exceeded"})
        assert recorder.slept.wait(RENDEZVOUS_S), "the throttled request never backed off"
        return answer(request)

    volumes = client(handler, concurrency=2, recorder=recorder).daily_volumes(symbols(12))
    assert volumes == {s: int(s[1:]) for s in symbols(12)}
    by_thread: dict[str, list[tuple[str, Any]]] = {}
    for thread, kind, value in recorder.events:
        by_thread.setdefault(thread, []).append((kind, value))
    assert len(by_thread) == 2
    for events in by_thread.values():
        sends = [i for i, (kind, _) in enumerate(events) if kind == "send"]
        for previous, later in itertools.pairwise(sends):
            waits = [value for kind, value in events[previous:later] if kind == "sleep"]
            assert waits and max(waits) >= 7, f"a batch was sent without waiting out the 429: {events}"


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, PermanentError), (503, TransientError)],
    ids=["refused", "failing-after-retries"],
)
def test_a_failed_batch_ends_the_call_with_its_error(status: int, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "S004" in symbols_of(request):
            return httpx.Response(status, json={"message": "no"})
        return answer(request)

    source = client(handler, concurrency=3)
    with pytest.raises(error):
        source.daily_volumes(symbols(12))
    assert source.metrics.total("VolumesFetched", api="alpaca") == 0


def test_a_batch_refused_for_one_bad_symbol_is_split_across_the_workers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "S005" in symbols_of(request):
            return httpx.Response(400, json={"message": "invalid symbol: S005"})
        return answer(request)

    volumes = client(handler, concurrency=4, batch=4).daily_volumes(symbols(16))
    assert volumes == {s: int(s[1:]) for s in symbols(16) if s != "S005"}
