"""Consistency validation and repair (`pollen check [--repair]`, and SyncAssets after writing).

Rules:
- ``assets``: exactly one item per symbol. With more, the newest ``lastPollenationDate`` is the key that stays and
  the most recently synced content is what it holds; the items are folded into it with ``move_sort_key`` (one
  transaction, conditional on the items being unchanged, so a reader never sees zero items for the symbol and a
  concurrent write is not overwritten). ``--repair`` holds the sync's lease.
- ``assets``: required attributes (``REQUIRED_ASSET_ATTRIBUTES``). ``volume`` (0), ``status`` (``inactive``
  until the next sync says otherwise) and ``lastSyncDate`` can be filled in; ``id``, ``class`` and ``exchange``
  only the next sync can restore, so they are reported.
- ``earningsCalendar``: one item per (symbol, fiscal_date_ending). Extra items are stale reschedules: the one
  synced last (then the later date) stays, the others are deleted. A missing or wrong ``earnings_month`` (the
  GSI's partition) is recomputed from ``earnings_date``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from pydantic import Field

from pollen.deadline import Deadline
from pollen.domain.assets import REQUIRED_ASSET_ATTRIBUTES, missing_asset_attributes
from pollen.domain.calendar import REQUIRED_CALENDAR_ATTRIBUTES, missing_calendar_attributes
from pollen.domain.values import month_of, timestamp
from pollen.errors import PollenError
from pollen.jobs.common import Clock, utc_now
from pollen.observability import MetricsRecorder
from pollen.ports import Item, ItemStore, WriteOutcome
from pollen.report import JobReport, Stopwatch, note_lease
from pollen.tables import ASSETS, EARNINGS_CALENDAR

log = logging.getLogger(__name__)

#: The lease of everything that writes ``assets`` wholesale: SyncAssets, and ``pollen check --repair``.
ASSETS_LEASE = "sync-assets"

#: Attributes a repair can fill in without upstream data.
_FILLABLE: dict[str, Any] = {"volume": Decimal(0), "status": "inactive"}


class CheckReport(JobReport):
    job: str = "check"
    repair: bool = False
    assets_checked: int = 0
    calendar_checked: int = 0
    duplicate_symbols: int = 0
    missing_attributes: int = 0
    stale_calendar: int = 0
    bad_calendar: int = 0
    repaired: int = 0
    unrepaired: int = 0
    defects: list[str] = Field(default_factory=list)

    def defect(self, line: str) -> None:
        if len(self.defects) < 100:
            self.defects.append(line[:200])


#: What the asset check reads of every item; whole items are read only for the symbols with a defect.
ASSET_CHECK_ATTRIBUTES = ("symbol", "lastPollenationDate", *REQUIRED_ASSET_ATTRIBUTES)


def scan_assets_for_check(store: ItemStore) -> Iterator[Item]:
    """The assets table projected onto what the check needs (a full Scan costs far more to move and decode)."""
    return store.scan(ASSETS.name, segments=4, attributes=ASSET_CHECK_ATTRIBUTES)


def check_assets(store: ItemStore, items: Iterable[Item], report: CheckReport, *, repair: bool, now_iso: str) -> None:
    """Check asset items (whole, or projected onto ASSET_CHECK_ATTRIBUTES); defective symbols are re-read whole
    before anything is reported or repaired, so a repair never writes a projected item."""
    by_symbol: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        report.assets_checked += 1
        by_symbol[str(item.get("symbol"))].append(item)
    for symbol, group in sorted(by_symbol.items()):
        if len(group) == 1 and not missing_asset_attributes(group[0]):
            continue
        group = list(store.query(ASSETS.name, partition=("symbol", symbol))) or group
        keeper = _fold_duplicates(store, symbol, group, report, repair=repair)
        _fill_missing(store, symbol, keeper, report, repair=repair, now_iso=now_iso)


def _fold_duplicates(store: ItemStore, symbol: str, group: list[Item], report: CheckReport, *, repair: bool) -> Item:
    if len(group) == 1:
        return group[0]
    report.duplicate_symbols += 1
    key_name = "lastPollenationDate"
    keys = sorted(str(i[key_name]) for i in group)
    newest_key = max(str(i[key_name]) for i in group)
    content = max(group, key=lambda i: (str(i.get("lastSyncDate", "")), str(i[key_name])))
    merged = {**content, key_name: newest_key}
    report.defect(f"assets {symbol}: {len(group)} items ({', '.join(keys)})")
    if not repair:
        report.unrepaired += len(group) - 1
        return merged
    try:
        # One transaction over the partition as stored when it commits (a concurrent pollenation or sync is folded
        # in, never overwritten).
        folded = store.move_sort_key(ASSETS.name, ASSETS.key_of(merged), newest_key)
    except PollenError as exc:
        report.unrepaired += len(group) - 1
        report.add_error(f"assets {symbol}: could not fold duplicates {', '.join(keys)}: {exc}")
        return merged
    report.repaired += len(group) - 1
    log.info("folded duplicate asset items", extra={"symbol": symbol, "keys": keys})
    return folded


def _fill_missing(
    store: ItemStore, symbol: str, item: Item, report: CheckReport, *, repair: bool, now_iso: str
) -> None:
    missing = missing_asset_attributes(item)
    if not missing:
        return
    report.missing_attributes += 1
    report.defect(f"assets {symbol}: missing {', '.join(missing)}")
    fillable = [name for name in missing if name in _FILLABLE or name == "lastSyncDate"]
    if not repair or not fillable:
        report.unrepaired += 1
        return
    fixed = dict(item)
    for name in fillable:
        fixed[name] = now_iso if name == "lastSyncDate" else _FILLABLE[name]
    fixed["lastSyncDate"] = now_iso
    try:
        outcome = store.upsert(ASSETS.name, [fixed])
    except PollenError as exc:
        report.unrepaired += 1
        report.add_error(f"assets {symbol}: could not fill {', '.join(fillable)}: {exc}")
        return
    if outcome.ok and len(fillable) == len(missing):
        report.repaired += 1
    else:
        report.unrepaired += 1


#: What the calendar check reads of every item; the items a repair rewrites are re-read whole first.
CALENDAR_CHECK_ATTRIBUTES = REQUIRED_CALENDAR_ATTRIBUTES


def check_calendar(store: ItemStore, items: Iterable[Item], report: CheckReport, *, repair: bool) -> None:
    """Check calendar items (whole, or projected onto CALENDAR_CHECK_ATTRIBUTES): an item whose
    ``earnings_month`` a repair recomputes is read whole by key first, so a repair never writes a projected
    item."""
    by_period, month_fixes = _check_calendar_items(items, report, repair=repair)
    stale = _stale_reschedules(by_period, report)
    if not repair:
        report.unrepaired += len(stale)
        return
    fixes = _whole_month_fixes(store, month_fixes, stale)
    _write_calendar_repairs(store, report, fixes=fixes, stale=stale)


def _check_calendar_items(
    items: Iterable[Item], report: CheckReport, *, repair: bool
) -> tuple[dict[tuple[str, str], list[Item]], list[Item]]:
    """One pass over the calendar: the items grouped by (symbol, fiscal period), and the (projected) items whose
    ``earnings_month`` a repair recomputes."""
    by_period: dict[tuple[str, str], list[Item]] = defaultdict(list)
    fixes: list[Item] = []
    for item in items:
        report.calendar_checked += 1
        missing = missing_calendar_attributes(item)
        if "fiscal_date_ending" not in missing:
            by_period[(str(item["asset_symbol"]), str(item["fiscal_date_ending"]))].append(item)
        fix = _month_fix(item, missing, report, repair=repair)
        if fix is not None:
            fixes.append(fix)
    return by_period, fixes


def _month_fix(item: Item, missing: list[str], report: CheckReport, *, repair: bool) -> Item | None:
    """Reports an item that lacks attributes or has a wrong ``earnings_month``; returns it with the month
    recomputed when a repair can fix it (nothing else is missing)."""
    expected_month = month_of(str(item.get("earnings_date", "")))
    if not missing and item.get("earnings_month") == expected_month:
        return None
    label = f"earningsCalendar {item.get('asset_symbol')} {item.get('earnings_date')}"
    report.bad_calendar += 1
    report.defect(f"{label}: missing {', '.join(missing)}" if missing else f"{label}: wrong earnings_month")
    if repair and set(missing) <= {"earnings_month", "lastSyncDate"}:
        return {**item, "earnings_month": expected_month}
    report.unrepaired += 1
    return None


def _stale_reschedules(by_period: dict[tuple[str, str], list[Item]], report: CheckReport) -> list[Item]:
    """Every item of a fiscal period but the one synced last (then the later date): stale reschedules."""
    stale: list[Item] = []
    for (symbol, fiscal), group in sorted(by_period.items()):
        if len(group) < 2:
            continue
        keep = max(group, key=lambda i: (str(i.get("lastSyncDate", "")), str(i["earnings_date"])))
        for item in group:
            if item is not keep:
                report.stale_calendar += 1
                report.defect(
                    f"earningsCalendar {symbol} {item['earnings_date']}: rescheduled to {keep['earnings_date']} "
                    f"(fiscal period {fiscal})"
                )
                stale.append(item)
    return stale


def _whole_month_fixes(store: ItemStore, fixes: list[Item], stale: list[Item]) -> list[Item]:
    """The month fixes as whole items read by key (the scan was projected), leaving out items about to be deleted."""
    stale_keys = {(i["asset_symbol"], i["earnings_date"]) for i in stale}
    fixes = [f for f in fixes if (f["asset_symbol"], f["earnings_date"]) not in stale_keys]
    if not fixes:
        return []
    months = {(f["asset_symbol"], f["earnings_date"]): f["earnings_month"] for f in fixes}
    whole = store.batch_get(EARNINGS_CALENDAR.name, [EARNINGS_CALENDAR.key_of(f) for f in fixes])
    return [{**i, "earnings_month": months[(i["asset_symbol"], i["earnings_date"])]} for i in whole]


def _write_calendar_repairs(store: ItemStore, report: CheckReport, *, fixes: list[Item], stale: list[Item]) -> None:
    """Rewrite the fixed items, then delete the stale ones."""
    table = EARNINGS_CALENDAR
    if fixes:
        _count_repair(report, "fix", len(fixes), lambda: store.upsert(table.name, fixes))
    if stale:
        _count_repair(report, "delete", len(stale), lambda: store.delete(table.name, [table.key_of(i) for i in stale]))


def _count_repair(report: CheckReport, action: str, count: int, write: Callable[[], WriteOutcome]) -> None:
    """Run one repair write; what it did not write (or all of it, when it raises) is counted as unrepaired."""
    try:
        outcome = write()
    except PollenError as exc:
        report.unrepaired += count
        report.add_error(f"earningsCalendar: could not {action} {count} items: {exc}")
        return
    report.repaired += count - outcome.failed
    report.unrepaired += outcome.failed
    for line in outcome.error_lines():
        report.add_error(f"earningsCalendar: {line}")


class ConsistencyCheck:
    """`pollen check [--repair]`: both rules sets over one projected Scan each of ``assets``
    (ASSET_CHECK_ATTRIBUTES) and ``earningsCalendar`` (CALENDAR_CHECK_ATTRIBUTES): every rule needs only those; the
    items with a defect are re-read whole before anything is repaired."""

    def __init__(
        self, store: ItemStore, *, metrics: MetricsRecorder, clock: Clock = utc_now, force_lease: bool = False
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        #: Take the lease even from a live holder (the CLI's ``--force``).
        self.force_lease = force_lease

    def run(self, *, repair: bool = False, deadline: Deadline | None = None) -> CheckReport:
        """Check (and with ``repair``, fix) both tables. A repair holds the sync's lease, so that it never writes
        beside a running SyncAssets (whose own check would race it)."""
        if not repair:
            return self._run(repair=False, deadline=deadline)
        with self.store.lease(ASSETS_LEASE, force=self.force_lease) as lease:
            report = self._run(repair=True, deadline=deadline)
        note_lease(report, lease)
        return report

    def _run(self, *, repair: bool, deadline: Deadline | None) -> CheckReport:
        watch = Stopwatch()
        report = CheckReport(repair=repair)
        now_iso = timestamp(self.clock())
        check_assets(self.store, scan_assets_for_check(self.store), report, repair=repair, now_iso=now_iso)
        if deadline is not None and deadline.expired():
            report.add_error("deadline reached before the calendar was checked")
            report.ok = False
        else:
            calendar = self.store.scan(EARNINGS_CALENDAR.name, segments=4, attributes=CALENDAR_CHECK_ATTRIBUTES)
            check_calendar(self.store, calendar, report, repair=repair)
        finish_check(report, self.metrics)
        report.duration_s = watch.elapsed_s
        return report


def finish_check(report: CheckReport, metrics: MetricsRecorder) -> None:
    if report.unrepaired or report.errors:
        report.ok = False
    report.failed = report.unrepaired
    found = report.duplicate_symbols + report.missing_attributes + report.stale_calendar + report.bad_calendar
    metrics.count("ConsistencyDefects", found, job="check")
    metrics.count("ConsistencyChecked", report.assets_checked + report.calendar_checked, job="check")
    metrics.count("ConsistencyRepaired", report.repaired, job="check")
    log.info(
        "consistency check",
        extra={"defects": found, "repaired": report.repaired, "unrepaired": report.unrepaired},
    )


__all__ = ["REQUIRED_ASSET_ATTRIBUTES", "CheckReport", "ConsistencyCheck", "check_assets", "check_calendar"]
