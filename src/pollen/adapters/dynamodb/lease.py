"""Job leases: one run of a job at a time, a crashed run's lease recovered quickly.

A lease is a lock item ``{pk: "lease#<job>", sk: "lease"}`` in ``pollenControl``, taken by a conditional put that
succeeds only when no item exists or the existing one has expired (``expiresAt``, epoch seconds, also the table's
TTL). The item names its holder precisely (:class:`.holder.Holder`: host, boot, process id and start time).

- A refused run whose holder ran on this host and is gone (its process exited or was killed) takes the lease over
  at once (a put conditional on that exact holder) and says so (``taken_over``, in the job's report). A holder on
  another host cannot be checked: its lease expires by its TTL, which is short (:data:`LEASE_TTL_S`, two minutes,
  at most :data:`MAX_LEASE_TTL_S`) because the heartbeat keeps a long run's lease alive.
- ``force=True`` (the CLI's ``--force``) takes over a live lease too, with a warning: for a holder known to be gone
  that this host cannot check.
- Every call (acquire, renew, release, the holder read) goes through the store's retry policy. A conditional call
  retried after a lost answer may find its own earlier attempt applied: an acquire finding itself the holder has the
  lease; a release finding the item gone has released it.
- Inside ``with``, a heartbeat thread renews the lease every third of its TTL (conditional on still owning it); a
  failed renewal is tried again sooner (``LeaseRenewFailure``). If the lease turns out to belong to another run, or
  is gone at release, ``lost`` says so (``LeaseLost``, an error in the job's report). A release that keeps failing
  is reported (``release_error``, ``LeaseReleaseFailure``): the lease then expires within its TTL.

Time is injected: ``clock`` (wall time, epoch seconds) is what the lease item records and what the retries of a
renewal or release are measured on, ``wait`` is how the heartbeat pauses between renewals (tests drive both).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb import codec
from pollen.adapters.dynamodb.errors import error_code, translate
from pollen.adapters.dynamodb.holder import Holder
from pollen.deadline import Clock, Deadline
from pollen.errors import LeaseHeld, PermanentError, PollenError, ThrottledError
from pollen.tables import CONTROL

if TYPE_CHECKING:
    from pollen.adapters.dynamodb.schema import TableInfo
    from pollen.backoff import Backoff
    from pollen.observability import MetricsRecorder


class LeaseStore(Protocol):
    """What a lease needs of the store (:class:`~pollen.adapters.dynamodb.store.DynamoStore`): its retry policy,
    metrics, clients, table names and its one dispatch point for single calls."""

    retry: Backoff
    metrics: MetricsRecorder

    def client(self) -> Any: ...

    def table_info(self, table: str) -> TableInfo: ...

    def _call(
        self,
        operation: str,
        deadline: Deadline,
        keys: Sequence[Mapping[str, Any]] = (),
        retry: Backoff | None = None,
        **params: Any,
    ) -> Any: ...


log = logging.getLogger(__name__)

#: A job lease's TTL: how long a crashed run on another host blocks the next one (the heartbeat renews it).
LEASE_TTL_S = 120.0
#: No lease lives longer than this without a renewal, whatever its caller asks for.
MAX_LEASE_TTL_S = 300.0
#: The heartbeat renews a held lease every this share of its TTL: two renewals in a row may fail before it expires.
HEARTBEAT_SHARE = 1 / 3
#: After a failed renewal the next attempt comes this much sooner (a share of the heartbeat's interval).
HEARTBEAT_RETRY_SHARE = 1 / 4
#: How long releasing waits for a renewal in flight (any later renewal fails its condition: nothing is revived).
HEARTBEAT_JOIN_S = 5.0
#: How long a release is retried: the lease expires by itself, and a dead holder's is taken over at once.
RELEASE_RETRY_S = 2.0
#: Rounds of acquire when the lease item changes between the refused put and the takeover.
ACQUIRE_ROUNDS = 3

M_LEASE_REFUSED = "LeaseRefused"
M_LEASE_RENEWED = "LeaseRenewed"
M_LEASE_RENEW_FAILED = "LeaseRenewFailure"
M_LEASE_LOST = "LeaseLost"
M_LEASE_TAKEN_OVER = "LeaseTakenOver"
M_LEASE_RELEASE_FAILED = "LeaseReleaseFailure"
M_RETRIES = "DynamoRetries"
M_THROTTLES = "DynamoThrottles"


#: The heartbeat's pause: wait up to the given seconds unless the event is set first; True when it was set.
HeartbeatWait = Callable[[threading.Event, float], bool]


def wait_on_event(stop: threading.Event, seconds: float) -> bool:
    """The heartbeat's pause on the wall clock."""
    return stop.wait(seconds)


#: When a lease is free: no lease item, or its expiry has passed (what ``acquire`` puts under, and what a write
#: guarded by a lease checks).
FREE_CONDITION = "attribute_not_exists(pk) OR expiresAt < :now"


def lease_key(job: str) -> dict[str, str]:
    """The key of ``job``'s lease item in ``pollenControl``."""
    return {"pk": f"lease#{job}", "sk": "lease"}


def free_check(physical_table: str, job: str, now: float) -> dict[str, Any]:
    """A TransactWriteItems ConditionCheck that holds only while ``job``'s lease is free at ``now`` (wall time, epoch
    seconds): a transaction carrying it cannot commit while a run holds the lease. On failure it returns the lease
    item (who holds it, until when)."""
    return {
        "ConditionCheck": {
            "TableName": physical_table,
            "Key": codec.encode_item(lease_key(job)),
            "ConditionExpression": FREE_CONDITION,
            "ExpressionAttributeValues": {":now": {"N": f"{now:.3f}"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class JobLease:
    """The lease of one job for one run (see the module's description). Satisfies ``pollen.ports.Lease``."""

    def __init__(
        self,
        store: LeaseStore,
        job: str,
        ttl_s: float = LEASE_TTL_S,
        *,
        heartbeat: bool = True,
        force: bool = False,
        clock: Clock = time.time,
        wait: HeartbeatWait = wait_on_event,
        holder: Holder | None = None,
    ) -> None:
        self.store = store
        self.job = job
        self.ttl_s = min(ttl_s, MAX_LEASE_TTL_S)
        self.force = force
        self.clock = clock
        self.wait = wait
        self.holder = holder or Holder.current()
        self.owner = f"{self.holder.host}:{self.holder.pid}:{uuid.uuid4().hex[:12]}"
        self.key = lease_key(job)
        self.held = False
        #: Why the lease was lost while this run held it (another run may have overlapped), else None.
        self.lost: str | None = None
        #: Whose lease this run took over, and why (a dead holder on this host, or ``--force``), else None.
        self.taken_over: str | None = None
        #: Why the lease could not be released (it expires by itself), else None.
        self.release_error: str | None = None
        self.renewals = 0
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def notes(self) -> list[str]:
        """What a job's report says about its lease besides a loss (see :func:`pollen.report.note_lease`)."""
        return [note for note in (self.taken_over, self.release_error) if note]

    def __enter__(self) -> JobLease:
        self.acquire()
        if self.heartbeat:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name=f"pollen-lease-{self.job}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _physical(self) -> str:
        return self.store.table_info(CONTROL.name).physical

    # --- calls -----------------------------------------------------------------------------------------------------

    def _conditional(self, operation: str, action: str, deadline: Deadline, **params: Any) -> tuple[bool, int]:
        """One conditional call through the store's retry policy: (whether its condition held, attempts made).
        An attempt after a transient failure may meet the effect of the one before it."""
        retry = self.store.retry
        stalls = 0
        while True:
            try:
                getattr(self.store.client(), operation)(TableName=self._physical(), **params)
                return True, stalls + 1
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False, stalls + 1
                err = translate(exc, action=action)
                cause: Exception = exc
            except (BotoCoreError, ConnectionError) as exc:
                err = translate(exc, action=action)
                cause = exc
            if not err.transient:
                raise err from cause
            if isinstance(err, ThrottledError):
                self.store.metrics.count(M_THROTTLES, operation=operation)
            stalls += 1
            if retry.exhausted(stalls) or deadline.expired():
                raise err from cause
            self.store.metrics.count(M_RETRIES, operation=operation)
            retry.sleep(stalls, deadline)

    def _read(self) -> dict[str, Any] | None:
        """The lease item as stored now (strongly consistent, through the retry policy)."""
        response = self.store._call(
            "get_item",
            Deadline.never(),
            keys=[self.key],
            TableName=self._physical(),
            Key=codec.encode_item(self.key),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return codec.decode_item(item) if item else None

    # --- acquire ---------------------------------------------------------------------------------------------------

    def _item(self) -> dict[str, Any]:
        now = self.clock()
        expires = now + self.ttl_s
        return {
            **self.key,
            "owner": self.owner,
            **self.holder.attributes(),
            "expiresAt": Decimal(f"{expires:.3f}"),
            "expiresAtIso": _iso(expires),
            "acquiredAt": _iso(now),
        }

    def acquire(self) -> None:
        """Take the lease: free or expired, or held by a dead process on this host, or (``force``) held by anyone.
        Raises LeaseHeld when another live run holds it."""
        action = f"lease {self.job}"
        current: dict[str, Any] | None = None
        for _ in range(ACQUIRE_ROUNDS):
            item = self._item()
            taken, _attempts = self._conditional(
                "put_item",
                action,
                Deadline.never(),
                Item=codec.encode_item(item),
                ConditionExpression=FREE_CONDITION,
                ExpressionAttributeValues={":now": {"N": f"{self.clock():.3f}"}},
            )
            if taken:
                return self._taken()
            current = self._read()
            if current is None:
                continue  # expired and removed meanwhile: try again
            if current.get("owner") == self.owner:
                return self._taken()  # an earlier attempt of the put was applied, its answer lost
            why = self._takeover_reason(current)
            if why is None:
                break
            taken, _attempts = self._conditional(
                "put_item",
                action,
                Deadline.never(),
                Item=codec.encode_item(self._item()),
                ConditionExpression="#o = :old",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":old": {"S": str(current.get("owner", ""))}},
            )
            if not taken:
                # Changed meanwhile, unless the put was applied and only its answer lost.
                again = self._read()
                if again is None or again.get("owner") != self.owner:
                    continue
            self.taken_over = why
            self.store.metrics.count(M_LEASE_TAKEN_OVER, job=self.job)
            log.warning("lease taken over", extra={"job": self.job, "owner": self.owner, "detail": why})
            return self._taken()
        self.store.metrics.count(M_LEASE_REFUSED, job=self.job)
        current = current or {}
        holder = Holder.from_item(current)
        who = holder.describe() if holder else str(current.get("owner", "another run"))
        raise LeaseHeld(
            f"job {self.job!r} is already running (lease held by {who} until "
            f"{current.get('expiresAtIso', 'its expiry')}); wait for it to finish or for the lease to expire, "
            "or use --force if you know that run is gone",
            code="LeaseHeld",
        )

    def _takeover_reason(self, current: dict[str, Any]) -> str | None:
        """Why this run may take over the lease ``current`` (not expired, another owner), or None."""
        holder = Holder.from_item(current)
        since = current.get("acquiredAt", "?")
        if holder is not None and holder.is_dead():
            return (
                f"took over the lease of job {self.job!r} from a dead run ({holder.describe()}, started {since}, "
                "is gone); continuing where it stopped"
            )
        if self.force:
            who = holder.describe() if holder is not None else str(current.get("owner", "another run"))
            return (
                f"forced: took over the lease of job {self.job!r} held by {who} (since {since}, until "
                f"{current.get('expiresAtIso', '?')}); if that run is still alive the two runs overlap"
            )
        return None

    def _taken(self) -> None:
        self.held = True
        self.lost = None
        log.info("lease taken", extra={"job": self.job, "owner": self.owner, "ttl_s": self.ttl_s})

    # --- renew -----------------------------------------------------------------------------------------------------

    def renew(self, ttl_s: float | None = None) -> None:
        """Extend the lease to ``ttl_s`` (default: its TTL) from now, if this run still owns it, retrying transient
        failures until the lease would expire. Raises LeaseHeld with code ``LeaseLost`` when another run has taken
        it over (and sets ``lost``), a translated PollenError (``.transient`` for throttling, 5xx, resets) when the
        retries ran out, PermanentError when it is not held."""
        if self.lost is not None:
            raise LeaseHeld(self.lost, code="LeaseLost")
        if not self.held:
            raise PermanentError(f"job {self.job!r}: the lease is not held, so it cannot be renewed", code="NotHeld")
        expires = self.clock() + min(ttl_s or self.ttl_s, MAX_LEASE_TTL_S)
        renewed, _attempts = self._conditional(
            "update_item",
            f"renew lease {self.job}",
            Deadline.after(self.ttl_s * HEARTBEAT_SHARE, clock=self.clock),
            Key=codec.encode_item(self.key),
            UpdateExpression="SET expiresAt = :e, expiresAtIso = :iso",
            ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={
                ":e": {"N": f"{expires:.3f}"},
                ":iso": {"S": _iso(expires)},
                ":me": {"S": self.owner},
            },
        )
        if not renewed:
            if not self.held:  # released while this renewal was in flight: the release removed the item
                raise PermanentError(f"job {self.job!r}: the lease was released", code="NotHeld")
            self._lose(f"now held by {self._holder()}")
            raise LeaseHeld(self.lost or "lease lost", code="LeaseLost")
        self.renewals += 1
        self.store.metrics.count(M_LEASE_RENEWED, job=self.job)

    def _beat(self) -> None:
        interval = max(0.05, self.ttl_s * HEARTBEAT_SHARE)
        wait = interval
        while not self.wait(self._stop, wait):
            try:
                self.renew()
            except PollenError as exc:
                if self._stop.is_set() or exc.code in ("LeaseLost", "NotHeld"):
                    return
                self.store.metrics.count(M_LEASE_RENEW_FAILED, job=self.job)
                log.warning("could not renew the lease", extra={"job": self.job, "error": exc.message[:200]})
                wait = interval * HEARTBEAT_RETRY_SHARE
                continue
            wait = interval

    def _holder(self) -> str:
        """Who holds the lease item now (for messages)."""
        try:
            item = self._read()
        except PollenError:
            return "another run"
        if not item:
            return "nobody (the lease item is gone: it expired)"
        return str(item.get("owner", "another run"))

    def _lose(self, how: str) -> None:
        self.held = False
        self.lost = f"lease of job {self.job!r} lost ({how}); another run may have overlapped this one"
        self.store.metrics.count(M_LEASE_LOST, job=self.job)
        log.error("lease lost", extra={"job": self.job, "owner": self.owner, "detail": how})

    # --- release ---------------------------------------------------------------------------------------------------

    def release(self) -> None:
        """Stop the heartbeat, then delete the lease item if this run still owns it (retried; a release that fails
        is reported in ``release_error`` and never masks the job's result)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=HEARTBEAT_JOIN_S)
        if not self.held:
            return
        self.held = False
        try:
            deleted, _attempts = self._conditional(
                "delete_item",
                f"release lease {self.job}",
                Deadline.after(RELEASE_RETRY_S, clock=self.clock),
                Key=codec.encode_item(self.key),
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except PollenError as exc:
            self.release_error = (
                f"could not release the lease of job {self.job!r} ({exc.message[:120]}); it expires by itself "
                f"within {self.ttl_s:.0f} s"
            )
            self.store.metrics.count(M_LEASE_RELEASE_FAILED, job=self.job)
            log.warning("could not release lease", extra={"job": self.job, "error": exc.message[:200]})
            return
        if deleted:
            return
        holder = self._holder()
        if holder.startswith("nobody"):
            # An earlier attempt deleted it and only its answer was lost (a retry, or the transport's uncounted
            # resend on a dropped kept-alive connection). A takeover by another run would have been seen by the
            # heartbeat's renewals; at release, nobody holding it is what release wanted.
            return
        self._lose(f"at release it was held by {holder}")
