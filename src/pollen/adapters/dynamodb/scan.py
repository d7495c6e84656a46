"""Scans: the pages of one segment (filtered, projected, strongly consistent if asked), and the whole table read in
parallel segments, one client each."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.dispatch import Dispatcher
from pollen.adapters.dynamodb.schema import HASH_ATTRIBUTE, TableCatalog, TableInfo
from pollen.deadline import Deadline
from pollen.ports import Item

#: A filter expression with its attribute names and values.
Filter = tuple[str, dict[str, str], dict[str, Any]]


def plain_item(item: Mapping[str, Any], *, keep_hash: bool = False) -> Item:
    """A wire item decoded, without the content hash unless asked to keep it."""
    plain = codec.decode_item(item)
    if not keep_hash:
        plain.pop(HASH_ATTRIBUTE, None)
    return plain


def keeps_hash(attributes: Sequence[str] | None) -> bool:
    """Whether a projection names the content hash (which plain items then keep)."""
    return bool(attributes) and HASH_ATTRIBUTE in (attributes or ())


class Scanner:
    def __init__(self, dispatcher: Dispatcher, catalog: TableCatalog) -> None:
        self.dispatcher = dispatcher
        self.catalog = catalog

    def pages(
        self,
        info: TableInfo,
        *,
        segment: tuple[int, int] | None,
        filter_: Filter | None = None,
        stop: threading.Event | None = None,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
        wire: bool = False,
    ) -> Iterator[Item]:
        """Scan pages; ``wire`` yields items in DynamoDB's wire format (contentHash included). A projection that
        names ``contentHash`` keeps it in the plain items too (the versions a caller hands back to ``upsert``)."""
        for page in self.page_lists(
            info, segment=segment, filter_=filter_, stop=stop, attributes=attributes, consistent=consistent, wire=wire
        ):
            yield from page

    def page_lists(
        self,
        info: TableInfo,
        *,
        segment: tuple[int, int] | None,
        filter_: Filter | None = None,
        stop: threading.Event | None = None,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
        wire: bool = False,
    ) -> Iterator[list[Item]]:
        """:meth:`pages`, one list of items per page."""
        keep_hash = keeps_hash(attributes)
        params = _scan_params(info, segment, filter_, attributes, consistent)
        while stop is None or not stop.is_set():
            response = self.dispatcher.call("scan", Deadline.never(), **params)
            items = response.get("Items", [])
            yield items if wire else [plain_item(item, keep_hash=keep_hash) for item in items]
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def scan(
        self,
        table: str,
        *,
        segments: int = 1,
        attributes: Sequence[str] | None = None,
        consistent: bool = False,
        wire: bool = False,
    ) -> Generator[Item, None, None]:
        """Every item of a table; ``segments > 1`` reads that many segments in parallel (one client each);
        ``attributes`` projects each item onto those attributes; ``consistent`` asks for strongly consistent reads;
        ``wire`` yields the items as DynamoDB returned them (typed values, with the content hash); a projection that
        names ``contentHash`` keeps it in the plain items."""
        info = self.catalog.info(table)
        if segments <= 1:
            yield from self.pages(info, segment=None, attributes=attributes, consistent=consistent, wire=wire)
            return
        yield from _ParallelScan(self, info, segments, attributes=attributes, consistent=consistent, wire=wire).run()


def _scan_params(
    info: TableInfo,
    segment: tuple[int, int] | None,
    filter_: Filter | None,
    attributes: Sequence[str] | None,
    consistent: bool,
) -> dict[str, Any]:
    params: dict[str, Any] = {"TableName": info.physical}
    if consistent:
        params["ConsistentRead"] = True
    if segment is not None:
        params["Segment"], params["TotalSegments"] = segment
    if filter_ is not None:
        params["FilterExpression"], params["ExpressionAttributeNames"], params["ExpressionAttributeValues"] = filter_
    if attributes:
        names = {f"#p{i}": name for i, name in enumerate(dict.fromkeys(attributes))}
        params["ProjectionExpression"] = ", ".join(names)
        params["ExpressionAttributeNames"] = {**params.get("ExpressionAttributeNames", {}), **names}
    return params


class _ParallelScan:
    """Segments read by their own threads into one bounded queue, a page at a time (one hand-over per page, not per
    item: the threads take turns far less); the consumer re-raises a reader's error, and stopping early (or
    failing) stops every reader."""

    def __init__(
        self,
        scanner: Scanner,
        info: TableInfo,
        segments: int,
        *,
        attributes: Sequence[str] | None,
        consistent: bool,
        wire: bool,
    ) -> None:
        self.scanner = scanner
        self.info = info
        self.segments = segments
        self.options: dict[str, Any] = {"attributes": attributes, "consistent": consistent, "wire": wire}
        self.out: queue.Queue[Any] = queue.Queue(maxsize=segments * 2)
        self.stop = threading.Event()
        self.done = object()

    def run(self) -> Generator[Item, None, None]:
        threads = [
            threading.Thread(target=self._read, args=(s,), name=f"pollen-scan-{s}", daemon=True)
            for s in range(self.segments)
        ]
        for thread in threads:
            thread.start()
        try:
            finished = 0
            while finished < self.segments:
                entry = self.out.get()
                if entry is self.done:
                    finished += 1
                elif isinstance(entry, BaseException):
                    raise entry
                else:
                    yield from entry
        finally:
            self.stop.set()
            while any(t.is_alive() for t in threads):
                with suppress(queue.Empty):
                    self.out.get(timeout=0.05)

    def _read(self, segment: int) -> None:
        try:
            pages = self.scanner.page_lists(self.info, segment=(segment, self.segments), stop=self.stop, **self.options)
            for page in pages:
                self._hand_over(page)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.out.put(exc)
        finally:
            self.out.put(self.done)

    def _hand_over(self, page: list[Item]) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(page, timeout=0.2)
                return
            except queue.Full:
                continue
