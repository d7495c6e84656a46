"""PollenateAsset (seed 002): one symbol's fundamentals into five tables, then the asset's sort key moves.

1. OVERVIEW first. When its ``LatestQuarter`` equals the stored overview's (the asset has been pollenated before)
   and a table already holds ``QUARTERLY#<LatestQuarter>``, that table's call (EARNINGS, CASH_FLOW,
   BALANCE_SHEET, INCOME_STATEMENT) is skipped: the Alpha Vantage quota is the scarcest resource.
2. Each table is written on its own (error isolation): a failing call or write marks that table failed and the
   others go on; the result names every table's outcome. ``{}`` from the API (no data) and ``Error Message``
   (NotFound) mean there is nothing to write, which is a success. Invalid reports are counted and skipped.
3. Only when all five succeeded: ``move_sort_key`` to the new ``lastPollenationDate`` (delete old key, put new
   key, one transaction, conditional on the asset being unchanged since the store read it: a sync that wrote
   meanwhile is moved along, never overwritten). Otherwise the asset keeps its key and stays due.
   The move is also conditional on SyncAssets' lease being free (``unless_leased``): a sync writes every asset at
   the sort key its Scan read, so a move committed during a sync would be undone by a second item at the old key.
   While a sync runs the move is refused (LeaseBlocked); the job waits (``sync_wait``, the project's backoff, up
   to the deadline) and tries again. If the sync still holds the lease then, the asset's result is not ok and says
   why (``move_deferred``, counted): its five tables stay written, it keeps its old sort key and stays due (the
   Lambda returns its message to the queue; the scheduler picks it again).
4. Calendar entries of the symbol dated on or before the pollenation day get ``pollenatedAt`` (processed).

QuotaExhausted, AuthError and ConfigError end the run (the asset stays due); other errors stay with their table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from pollen.backoff import Backoff
from pollen.deadline import Deadline
from pollen.domain.calendar import POLLENATED_AT
from pollen.domain.fundamentals import (
    ParsedReports,
    earnings_items,
    fiscal_period,
    overview_item,
    statement_items,
)
from pollen.domain.values import timestamp, validate_symbol
from pollen.errors import (
    AuthError,
    ConfigError,
    DeadLettersLost,
    InvalidRecord,
    LeaseBlocked,
    NotFound,
    PollenError,
    QuotaExhausted,
)
from pollen.jobs.check import ASSETS_LEASE
from pollen.jobs.common import Clock, utc_now
from pollen.observability import MetricsRecorder
from pollen.ports import FundamentalsSource, Item, ItemStore, StatementFunction
from pollen.report import JobReport, Stopwatch
from pollen.tables import (
    ASSETS,
    BALANCE_SHEET,
    CASH_FLOW,
    COMPANY_OVERVIEW,
    EARNINGS,
    EARNINGS_CALENDAR,
    INCOME_STATEMENT,
    NEVER_POLLENATED,
)

log = logging.getLogger(__name__)

JOB = "PollenateAsset"
SORT_KEY = "lastPollenationDate"
Outcome = Literal["written", "unchanged", "skipped", "no data", "failed", "invalid", "not started"]
SUCCESS: frozenset[str] = frozenset({"written", "unchanged", "skipped", "no data"})
STATEMENTS: dict[str, StatementFunction] = {
    CASH_FLOW.name: "CASH_FLOW",
    BALANCE_SHEET.name: "BALANCE_SHEET",
    INCOME_STATEMENT.name: "INCOME_STATEMENT",
}
TABLE_ORDER = (COMPANY_OVERVIEW.name, EARNINGS.name, *STATEMENTS)
#: The report tables after OVERVIEW, each with its Alpha Vantage function, in call order.
REPORT_FUNCTIONS: tuple[tuple[str, str], ...] = ((EARNINGS.name, "EARNINGS"), *STATEMENTS.items())
#: Calendar entries this far back are marked processed when the asset was never pollenated.
MARK_LOOKBACK_DAYS = 92
#: Errors that end a whole run rather than one table.
RUN_ENDING = (QuotaExhausted, AuthError, ConfigError)
#: How a move refused by a running SyncAssets waits before it tries again (a sync takes seconds to minutes); the
#: run's deadline or the attempts end the waiting.
SYNC_WAIT = Backoff(base_s=1.0, cap_s=10.0, max_attempts=30)


class TableResult(BaseModel):
    outcome: Outcome = "not started"
    written: int = 0
    unchanged: int = 0
    invalid: int = 0
    failed: int = 0
    error: str | None = None


class AssetResult(BaseModel):
    symbol: str
    ok: bool = False
    #: pollenated | stays due | already pollenated | unknown asset | invalid symbol
    status: str = "stays due"
    tables: dict[str, TableResult] = Field(default_factory=dict)
    calls: int = 0
    calls_skipped: int = 0
    previous_pollenation: str | None = None
    last_pollenation: str | None = None
    calendar_marked: int = 0
    #: The move was refused until the end because SyncAssets held its lease (the asset stays due).
    move_deferred: bool = False
    error: str | None = None


class PollenateReport(JobReport):
    job: str = "pollenate"
    requested: int = 0
    pollenated: int = 0
    stays_due: int = 0
    calls: int = 0
    calls_skipped: int = 0
    #: Assets written but not moved: SyncAssets held its lease until their deadline (they stay due).
    moves_deferred: int = 0
    stopped: str | None = None
    not_started: list[str] = Field(default_factory=list)
    assets: list[AssetResult] = Field(default_factory=list)

    def add(self, result: AssetResult) -> None:
        self.assets.append(result)
        self.calls += result.calls
        self.calls_skipped += result.calls_skipped
        for table in result.tables.values():
            self.written += table.written
            self.unchanged += table.unchanged
            self.invalid += table.invalid
        self.moves_deferred += result.move_deferred
        if result.status == "pollenated":
            self.pollenated += 1
        elif result.status == "invalid symbol":
            self.invalid += 1
        if not result.ok:
            self.ok = False
            self.failed += 1
            self.stays_due += result.status == "stays due"
            self.add_error(f"{result.symbol}: {result.error or result.status}")


def _parse_reports(table: str, payload: dict[str, Any], *, symbol: str, last_sync: str) -> ParsedReports:
    if table == EARNINGS.name:
        return earnings_items(payload, symbol=symbol, last_sync=last_sync)
    return statement_items(payload, kind=table, symbol=symbol, last_sync=last_sync)


class _RunEnded(Exception):
    def __init__(self, error: PollenError, result: AssetResult) -> None:
        self.error = error
        self.result = result


class PollenateAsset:
    def __init__(
        self,
        store: ItemStore,
        source: FundamentalsSource,
        *,
        metrics: MetricsRecorder,
        clock: Clock = utc_now,
        sync_wait: Backoff | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.metrics = metrics
        self.clock = clock
        #: How a move refused while SyncAssets runs waits before it tries again (its sleeper injected in tests).
        self.sync_wait = sync_wait or SYNC_WAIT

    # --- a run over several symbols ----------------------------------------------------------------------------
    def run(
        self,
        symbols: Sequence[str],
        deadline: Deadline | None = None,
        *,
        on_result: Callable[[AssetResult], None] | None = None,
    ) -> PollenateReport:
        """Pollenate symbols in order; quota exhaustion or the deadline stop the run cleanly (reported)."""
        deadline = deadline or Deadline.never()
        watch = Stopwatch()
        report = PollenateReport(requested=len(symbols))
        for index, symbol in enumerate(symbols):
            if deadline.expired():
                report.stopped = "deadline"
                report.not_started = list(symbols[index:])
                break
            try:
                result = self.pollenate(symbol, deadline)
            except QuotaExhausted as exc:
                report.stopped = "quota"
                report.not_started = list(symbols[index:])
                report.add_error(f"Alpha Vantage quota exhausted: {exc}")
                self.metrics.count("QuotaExhausted", 1, job=JOB)
                break
            report.add(result)
            if on_result is not None:
                on_result(result)
        if report.stopped is not None:
            report.ok = False
            log.warning("pollenation run stopped", extra={"reason": report.stopped, "left": len(report.not_started)})
        report.duration_s = watch.elapsed_s
        return report

    # --- one symbol ---------------------------------------------------------------------------------------------
    def pollenate(
        self, symbol: str, deadline: Deadline | None = None, *, not_pollenated_since: str | None = None
    ) -> AssetResult:
        """Pollenate one symbol. Raises QuotaExhausted, AuthError or ConfigError (the asset stays due);
        every other problem is in the result. With ``not_pollenated_since`` (a queued request's time), an asset
        pollenated since then is left alone."""
        deadline = deadline or Deadline.never()
        result = AssetResult(symbol=symbol)
        try:
            validate_symbol(symbol)
        except ValueError as exc:
            result.status = "invalid symbol"
            result.error = str(exc)
            return result
        with self.metrics.timer("PollenateDuration", job=JOB):
            try:
                self._pollenate(symbol, result, deadline, not_pollenated_since)
            except _RunEnded as ended:
                self._count(ended.result)
                raise ended.error from None
        self._count(result)
        log.info(
            "pollenate finished",
            extra={
                "symbol": symbol,
                "status": result.status,
                "tables": {t: r.outcome for t, r in result.tables.items()},
                "calls": result.calls,
            },
        )
        return result

    def _count(self, result: AssetResult) -> None:
        self.metrics.count("Pollenated" if result.status == "pollenated" else "PollenationNotDone", 1, job=JOB)
        self.metrics.count("UpstreamCallsSkipped", result.calls_skipped, job=JOB)
        for table, outcome in result.tables.items():
            self.metrics.count("TableOutcome", 1, job=JOB, table=table, outcome=outcome.outcome)

    def _pollenate(
        self, symbol: str, result: AssetResult, deadline: Deadline, not_pollenated_since: str | None
    ) -> None:
        current = self._current_asset(symbol)
        if current is None:
            result.status = "unknown asset"
            result.error = f"{symbol} is not in assets (run pollen sync assets first)"
            return
        previous = str(current[SORT_KEY])
        result.previous_pollenation = previous
        if not_pollenated_since is not None and previous >= not_pollenated_since:
            result.ok = True
            result.status = "already pollenated"
            return
        now_iso = timestamp(self.clock())
        result.tables = {name: TableResult() for name in TABLE_ORDER}

        held = self._pollenate_overview(result, symbol, previous, now_iso, deadline)
        for table, function in REPORT_FUNCTIONS:
            if table in held:
                result.tables[table].outcome = "skipped"
                result.calls_skipped += 1
                continue
            self._pollenate_reports(result, table, function, symbol, now_iso, deadline)

        failed = [t for t, r in result.tables.items() if r.outcome not in SUCCESS]
        if failed:
            result.error = f"stays due: {', '.join(f'{t} {result.tables[t].outcome}' for t in failed)}"
            return
        self._move(result, current, now_iso, deadline)
        if result.status == "pollenated":
            self._mark_calendar(result, symbol, previous, now_iso)

    def _pollenate_overview(
        self, result: AssetResult, symbol: str, previous: str, now_iso: str, deadline: Deadline
    ) -> set[str]:
        """Fetch and write OVERVIEW; returns the report tables whose calls can be skipped (see the module doc).

        The stored overview is read before the new one is written: its LatestQuarter is what the skip compares.
        """
        prior_overview = self._read(COMPANY_OVERVIEW.name, {"symbol": symbol})
        overview = self._fetch(result, COMPANY_OVERVIEW.name, "OVERVIEW", symbol, deadline, self.source.overview)
        latest_quarter = overview.get("LatestQuarter") if isinstance(overview, dict) else None
        if overview is not None and result.tables[COMPANY_OVERVIEW.name].outcome == "not started":
            try:
                item = overview_item(overview, symbol=symbol, last_sync=now_iso)
            except InvalidRecord as exc:
                self._table_failed(result, COMPANY_OVERVIEW.name, "invalid", str(exc))
            else:
                self._write(result, COMPANY_OVERVIEW.name, [item], deadline)
        return self._held_quarter_tables(symbol, previous, prior_overview, latest_quarter)

    def _pollenate_reports(
        self, result: AssetResult, table: str, function: str, symbol: str, now_iso: str, deadline: Deadline
    ) -> None:
        """One report table (EARNINGS or a statement): fetch, parse, write; the outcome lands in ``result``."""
        payload = self._fetch(result, table, function, symbol, deadline, self._report_call(table))
        if payload is None or result.tables[table].outcome != "not started":
            return
        try:
            parsed = _parse_reports(table, payload, symbol=symbol, last_sync=now_iso)
        except InvalidRecord as exc:
            self._table_failed(result, table, "invalid", str(exc))
            return
        self._write_reports(result, table, parsed, deadline)

    def _report_call(self, table: str) -> Callable[[str], dict[str, Any] | None]:
        if table == EARNINGS.name:
            return self.source.earnings
        return functools.partial(self._statement, STATEMENTS[table])

    def _statement(self, function: StatementFunction, symbol: str) -> dict[str, Any] | None:
        return self.source.statement(function, symbol)

    def _current_asset(self, symbol: str) -> Item | None:
        items = list(self.store.query(ASSETS.name, partition=("symbol", symbol)))
        if len(items) > 1:
            log.warning("asset has more than one item", extra={"symbol": symbol, "count": len(items)})
        return max(items, key=lambda i: str(i[SORT_KEY])) if items else None

    def _read(self, table: str, key: dict[str, Any]) -> Item | None:
        try:
            return self.store.get(table, key)
        except PollenError as exc:
            log.warning("read failed", extra={"table": table, "error": str(exc)})
            return None

    def _held_quarter_tables(
        self, symbol: str, previous: str, prior_overview: Item | None, latest_quarter: Any
    ) -> set[str]:
        """Tables whose call can be skipped: LatestQuarter unchanged and the quarter already stored."""
        if (
            previous == NEVER_POLLENATED
            or prior_overview is None
            or not isinstance(latest_quarter, str)
            or prior_overview.get("LatestQuarter") != latest_quarter
        ):
            return set()
        period = fiscal_period("quarterly", latest_quarter)
        return {
            table
            for table in (EARNINGS.name, *STATEMENTS)
            if self._read(table, {"symbol": symbol, "fiscalPeriod": period}) is not None
        }

    def _fetch(
        self,
        result: AssetResult,
        table: str,
        function: str,
        symbol: str,
        deadline: Deadline,
        call: Callable[[str], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        if deadline.expired():
            self._table_failed(result, table, "not started", "deadline reached")
            return None
        result.calls += 1
        self.metrics.count("UpstreamCalls", 1, job=JOB, function=function)
        try:
            with self.metrics.timer("UpstreamDuration", job=JOB, function=function):
                payload = call(symbol)
        except NotFound as exc:
            result.tables[table].outcome = "no data"
            result.tables[table].error = str(exc)[:200]
            return None
        except RUN_ENDING as exc:
            self._table_failed(result, table, "failed", str(exc))
            raise _RunEnded(exc, result) from exc
        except PollenError as exc:
            self._table_failed(result, table, "failed", str(exc))
            return None
        if not payload:
            result.tables[table].outcome = "no data"
            return None
        return payload

    def _table_failed(self, result: AssetResult, table: str, outcome: Outcome, error: str) -> None:
        entry = result.tables[table]
        entry.outcome = outcome
        entry.error = error[:200]
        if outcome == "invalid":
            entry.invalid += 1
        log.warning("table not pollenated", extra={"symbol": result.symbol, "table": table, "error": error[:200]})

    def _write_reports(self, result: AssetResult, table: str, parsed: ParsedReports, deadline: Deadline) -> None:
        result.tables[table].invalid += len(parsed.invalid)
        for line in parsed.invalid[:5]:
            log.warning("invalid report skipped", extra={"symbol": result.symbol, "table": table, "error": line})
        if not parsed.items:
            result.tables[table].outcome = "no data"
            return
        self._write(result, table, parsed.items, deadline)

    def _write(self, result: AssetResult, table: str, items: list[Item], deadline: Deadline) -> None:
        entry = result.tables[table]
        # The store names and dead-letters every item it does not write. What it raises for the whole call fails
        # this table only (one table failing never stops the others), unless the run cannot go on at all.
        try:
            with self.metrics.timer("WriteDuration", job=JOB, table=table):
                outcome = self.store.upsert(table, items, deadline=deadline)
        except PollenError as exc:
            if exc.exit_code == 2 or isinstance(exc, DeadLettersLost):
                raise
            entry.failed += len(items)
            self._table_failed(result, table, "failed", str(exc))
            return
        entry.written += outcome.written
        entry.unchanged += outcome.unchanged
        entry.invalid += outcome.invalid
        entry.failed += outcome.failed
        if outcome.failed or outcome.invalid:
            entry.outcome = "failed"
            entry.error = "; ".join(outcome.error_lines()[:3])[:200] or f"{outcome.failed} items not written"
        else:
            entry.outcome = "written" if outcome.written else "unchanged"

    def _move(self, result: AssetResult, current: Item, now_iso: str, deadline: Deadline) -> None:
        if now_iso <= str(current[SORT_KEY]):
            # Pollenated again within the same second (or a clock behind the stored key): the key stands.
            result.ok = True
            result.status = "pollenated"
            result.last_pollenation = str(current[SORT_KEY])
            return
        try:
            with self.metrics.timer("MoveDuration", job=JOB):
                moved = self._move_after_sync(ASSETS.key_of(current), now_iso, deadline)
        except LeaseBlocked as exc:
            result.move_deferred = True
            result.error = (
                f"stays due: sort key not moved: SyncAssets was still running at the deadline ({exc}); the tables "
                "are written, the asset is pollenated again later"
            )[:300]
            self.metrics.count("MoveDeferred", 1, job=JOB)
            log.warning("sort key not moved: SyncAssets still running", extra={"symbol": result.symbol})
            return
        except PollenError as exc:
            if exc.exit_code == 2:
                raise
            result.error = f"stays due: sort key not moved: {exc}"[:300]
            self.metrics.count("MoveFailed", 1, job=JOB)
            return
        result.ok = True
        result.status = "pollenated"
        result.last_pollenation = str(moved[SORT_KEY])

    def _move_after_sync(self, key: Item, now_iso: str, deadline: Deadline) -> Item:
        """The move, committed only while SyncAssets does not hold its lease: refused moves wait (``sync_wait``)
        and try again until they go through, or raise LeaseBlocked at the deadline or when the attempts run out.

        Moves whatever the asset holds when the move commits (a sync may have written since it was read), never the
        copy read before; a concurrent newer pollenation date is kept."""
        refusals = 0
        while True:
            try:
                return self.store.move_sort_key(ASSETS.name, key, now_iso, unless_leased=ASSETS_LEASE)
            except LeaseBlocked as exc:
                refusals += 1
                if self.sync_wait.gives_up(exc, refusals, deadline):
                    raise
                self.metrics.count("MoveWaitedForSync", 1, job=JOB)
                log.info("sort-key move waits for SyncAssets", extra={"symbol": key.get("symbol"), "wait": refusals})
                self.sync_wait.sleep(refusals, deadline)

    def _mark_calendar(self, result: AssetResult, symbol: str, previous: str, now_iso: str) -> None:
        """Mark the symbol's calendar entries up to today as processed (bookkeeping; failures only logged)."""
        today = now_iso[:10]
        if previous == NEVER_POLLENATED:
            start = (self.clock() - timedelta(days=MARK_LOOKBACK_DAYS)).date().isoformat()
        else:
            start = previous[:10]
        try:
            entries = [
                {**entry, POLLENATED_AT: now_iso}
                for entry in self.store.query(
                    EARNINGS_CALENDAR.name, partition=("asset_symbol", symbol), sort_between=(start, today)
                )
                if POLLENATED_AT not in entry
            ]
            if entries:
                outcome = self.store.upsert(EARNINGS_CALENDAR.name, entries)
                result.calendar_marked = outcome.written
        except PollenError as exc:
            log.warning("calendar entries not marked", extra={"symbol": symbol, "error": str(exc)})
