"""The batch writer: puts and deletes in BatchWriteItem calls of at most 25 requests and 16 MB, until each is written
or failed.

Unprocessed requests go back in the queue and fill the next batch with fresh ones (so retries cost few extra
requests); throttling, 5xx, resets and timeouts are retried with the store's backoff, and the retry budget counts
rounds *without progress*. A ValidationException is isolated to its item by sending the halves of the batch on their
own until the offending item is alone, so its neighbours are written. Every batch feeds the shared AIMD rate limiter
(throttling errors and the unprocessed share of a 200 response). At the deadline no new batch starts."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.batching import take_batch
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.records import Write
from pollen.adapters.dynamodb.reports import (
    M_BATCH_COUNT,
    M_BATCH_FAILED,
    M_BATCH_MS,
    M_RETRIES,
    M_RETRY_EXHAUSTED,
    M_THROTTLES,
    M_UNITS,
)
from pollen.adapters.dynamodb.retry import AdaptiveRateLimiter
from pollen.adapters.dynamodb.schema import TableInfo
from pollen.adapters.dynamodb.settlement import ChunkResult
from pollen.deadline import Deadline
from pollen.errors import PollenError, ThrottledError

_write_signature = attrgetter("signature")
_write_size = attrgetter("size")


@dataclass
class _SentCounts:
    batches: int = 0
    units: int = 0


class BatchWriter:
    """Sends the writes of any number of callers through one dispatcher and one rate limiter."""

    def __init__(self, dispatcher: Dispatcher, limiter: AdaptiveRateLimiter) -> None:
        self.dispatcher = dispatcher
        self.limiter = limiter

    def send(self, info: TableInfo, writes: list[Write], deadline: Deadline, result: ChunkResult) -> None:
        """Send the writes until each is written (counted in ``result``) or failed (settled in ``result``)."""
        _Sending(self, info, writes, deadline, result).run()


class _Sending:
    """One call of :meth:`BatchWriter.send`: its queue, the halves of batches under suspicion, its stalls."""

    def __init__(
        self, writer: BatchWriter, info: TableInfo, writes: list[Write], deadline: Deadline, result: ChunkResult
    ) -> None:
        self.dispatcher = writer.dispatcher
        self.limiter = writer.limiter
        self.metrics = writer.dispatcher.metrics
        self.retry = writer.dispatcher.retry
        self.info = info
        self.deadline = deadline
        self.result = result
        self.waiting: deque[Write] = deque(writes)
        self.suspects: list[list[Write]] = []
        self.stalls = 0
        self.sent = _SentCounts()
        self.table_json = codec.wire_json(info.physical)

    def run(self) -> None:
        try:
            while self.waiting or self.suspects:
                batch = self.suspects.pop() if self.suspects else _next_batch(self.waiting)
                if not self._send_batch(batch):
                    return
        finally:  # counted once per call, not per batch (each count takes the recorder's lock)
            if self.sent.batches:
                self.metrics.count(M_BATCH_COUNT, self.sent.batches, table=self.info.logical)
            if self.sent.units:
                self.metrics.count(M_UNITS, self.sent.units, table=self.info.logical)

    def _send_batch(self, batch: list[Write]) -> bool:
        """Send one batch and settle what its answer settles; False when the call gave up on everything left."""
        units = sum(w.units for w in batch)
        if self.deadline.expired() or not self.limiter.acquire(units, self.deadline):
            self._give_up(batch, "deadline reached before the item was written", at_deadline=True)
            return False
        generation = self.limiter.generation  # the response tells about the rate this batch was sent at
        started = time.perf_counter()
        try:
            response = self.dispatcher.attempt("BatchWriteItem", self._request(batch))
        except PollenError as err:
            self._sent_one(started)
            self.metrics.count(M_BATCH_FAILED, table=self.info.logical)
            if not err.transient:
                self._refused(batch, err)
                return True
            return self._retry_later(batch, err, units, generation)
        self._sent_one(started)
        unprocessed = response.get("UnprocessedItems", {}).get(self.info.physical, [])
        if not unprocessed:
            self.limiter.record(units, 0, generation)
            self.sent.units += units
            self.result.report.written += len(batch)
            self.result.done.update(w.signature for w in batch)
            self.stalls = 0
            return True
        return self._partly_written(batch, unprocessed, units, generation)

    def _request(self, batch: Sequence[Write]) -> Callable[[Any], Any]:
        """The BatchWriteItem of ``batch``: a ready JSON body for clients that take one, else boto3's parameters."""

        def send(client: Any) -> Any:
            call_json = getattr(client, "call_json", None)
            if call_json is not None:
                body = '{"RequestItems":{' + self.table_json + ":[" + ",".join([w.json for w in batch]) + "]}}"
                return call_json("BatchWriteItem", body)
            return client.batch_write_item(RequestItems={self.info.physical: [w.request for w in batch]})

        return send

    def _sent_one(self, started: float) -> None:
        self.metrics.timing_ms(M_BATCH_MS, (time.perf_counter() - started) * 1000, table=self.info.logical)
        self.sent.batches += 1

    def _refused(self, batch: list[Write], err: PollenError) -> None:
        """A permanent error: the batch is halved until the offending item is alone, and that item failed."""
        if err.exit_code == 2:  # the job cannot run at all (no table, no service)
            raise err
        if err.code == "ValidationException" and len(batch) > 1:
            half = len(batch) // 2
            self.suspects.extend([batch[half:], batch[:half]])
        else:
            self.result.fail_writes(batch, err.message)

    def _retry_later(self, batch: list[Write], err: PollenError, units: int, generation: int) -> bool:
        """A transient error: the batch goes back to the front of the queue after a backoff."""
        if isinstance(err, ThrottledError):
            self.limiter.record(units, units, generation)
            self.metrics.count(M_THROTTLES, table=self.info.logical)
        self.stalls += 1
        if self.retry.exhausted(self.stalls):
            self._give_up(batch, f"gave up after {self.stalls} rounds without progress: {err.message}")
            return False
        self.waiting.extendleft(reversed(batch))
        self.metrics.count(M_RETRIES, table=self.info.logical)
        self.retry.sleep(self.stalls, self.deadline)
        return True

    def _partly_written(
        self, batch: list[Write], unprocessed: list[Mapping[str, Any]], units: int, generation: int
    ) -> bool:
        """A 200 response with unprocessed items: those go back in the queue after a backoff."""
        left = {codec.key_signature(_request_key(u), self.info.key_names) for u in unprocessed}
        pending = [w for w in batch if w.signature in left]
        pending_units = sum(w.units for w in pending)
        self.limiter.record(units, pending_units, generation)
        self.sent.units += units - pending_units
        self.metrics.count(M_THROTTLES, table=self.info.logical)
        self.result.report.written += len(batch) - len(pending)
        self.result.done.update(w.signature for w in batch if w.signature not in left)
        self.stalls = 0 if len(pending) < len(batch) else self.stalls + 1
        if self.retry.exhausted(self.stalls):
            self._give_up(pending, f"still unprocessed after {self.stalls} rounds without progress")
            return False
        self.waiting.extend(pending)
        self.metrics.count(M_RETRIES, table=self.info.logical)
        self.retry.sleep(self.stalls, self.deadline)
        return True

    def _give_up(self, batch: Sequence[Write], reason: str, *, at_deadline: bool = False) -> None:
        """Fail the batch and everything still queued."""
        rest = [*batch, *self.waiting, *(w for s in self.suspects for w in s)]
        self.waiting.clear()
        self.suspects.clear()
        if not at_deadline:
            self.metrics.count(M_RETRY_EXHAUSTED, len(rest), table=self.info.logical)
        self.result.fail_writes(rest, reason, deadline=at_deadline)


def _next_batch(waiting: deque[Write]) -> list[Write]:
    return take_batch(waiting, key=_write_signature, size=_write_size)


def _request_key(request: Mapping[str, Any]) -> Mapping[str, Any]:
    if "PutRequest" in request:
        return request["PutRequest"]["Item"]  # type: ignore[no-any-return]
    return request["DeleteRequest"]["Key"]  # type: ignore[no-any-return]
