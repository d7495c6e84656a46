"""The one place a store's DynamoDB calls go through: per-thread clients, the worker pool, error translation that
knows whether DynamoDB has answered before, and the retry loop for single calls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.errors import MissingResource, translate
from pollen.adapters.dynamodb.reports import M_RETRIES, M_THROTTLES
from pollen.backoff import Backoff
from pollen.deadline import Deadline
from pollen.errors import PollenError, ServiceUnavailable, ThrottledError, TransientError
from pollen.observability import MetricsRecorder


class Dispatcher:
    """Clients, workers and calls of one store.

    ``client`` is used for every call when given without ``client_factory`` (boto3 clients are thread-safe);
    ``client_factory`` builds one client per worker thread (required for :class:`.wire.WireClient`).
    """

    def __init__(
        self,
        client: Any,
        client_factory: Callable[[], Any] | None,
        *,
        metrics: MetricsRecorder,
        retry: Backoff,
        concurrency: int,
    ) -> None:
        self._shared_client = client
        self._factory = client_factory
        self.metrics = metrics
        self.retry = retry
        self.concurrency = concurrency
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        #: Whether DynamoDB has answered this store at all: an endpoint that cannot be reached before that is
        #: configuration or an outage at the start (not retried: exit 2 at once), after it an outage mid-run.
        self.reached = False

    def client(self) -> Any:
        """This thread's client."""
        if self._factory is None:
            return self._shared_client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._factory()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="pollen-store")
            return self._executor

    def close(self) -> None:
        """Stop the workers and close the connections of the clients this store built."""
        with self._lock:
            executor, self._executor = self._executor, None
            clients, self._clients = self._clients, []
        if executor is not None:
            executor.shutdown(wait=True)
        for client in clients:
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()
        self._local = threading.local()

    def translate(self, exc: Exception, *, keys: Sequence[Mapping[str, Any]] = (), action: str = "") -> PollenError:
        """:func:`.errors.translate`, plus what the store knows: whether DynamoDB has answered it before. An
        endpoint that was never reached is not retried (exit 2, one line, at once); one that answered before and
        is now unreachable is an outage mid-run: transient, retried, and reported like any other failure."""
        err = translate(exc, keys=keys, action=action)
        if isinstance(exc, ClientError):
            self.reached = True
        elif isinstance(err, ServiceUnavailable):
            if self.reached:
                return TransientError(err.message, keys=keys, code=err.code)
            err.transient = False
        return err

    def call(
        self,
        operation: str,
        deadline: Deadline,
        keys: Sequence[Mapping[str, Any]] = (),
        retry: Backoff | None = None,
        **params: Any,
    ) -> Any:
        """One call with the retry policy (the store's, or ``retry``) for transient errors (single-item operations
        and reads)."""
        retry = retry or self.retry
        stalls = 0
        while True:
            try:
                response = getattr(self.client(), operation)(**params)
                self.reached = True
                return response
            except (ClientError, BotoCoreError, ConnectionError) as exc:
                err = self.translate(exc, keys=keys, action=camel(operation))
                if isinstance(err, MissingResource) and "index" not in err.message.lower():
                    err = _missing_table(err, params)
                if not err.transient:
                    raise err from exc
                if isinstance(err, ThrottledError):
                    self.metrics.count(M_THROTTLES, operation=camel(operation))
                stalls += 1
                if retry.exhausted(stalls) or deadline.expired():
                    raise err from exc
                self.metrics.count(M_RETRIES, operation=camel(operation))
                retry.sleep(stalls, deadline)

    def attempt(
        self,
        action: str,
        send: Callable[[Any], Any],
        *,
        explain: Callable[[ClientError], PollenError] | None = None,
    ) -> Any:
        """One try of ``send(client)``, no retry (the caller's loop decides): its response, or the translated
        error (``explain`` translates the service's answers instead, when given)."""
        try:
            response = send(self.client())
        except ClientError as exc:
            self.reached = True
            raise (explain(exc) if explain else self.translate(exc, action=action)) from exc
        except (BotoCoreError, ConnectionError) as exc:
            raise self.translate(exc, action=action) from exc
        self.reached = True
        return response


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _missing_table(err: MissingResource, params: Mapping[str, Any]) -> MissingResource:
    """Name the table in a ResourceNotFoundException (DynamoDB's message does not)."""
    names = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
    if not names:
        return err
    return MissingResource(
        f"{err.message}: table {', '.join(map(str, names))} does not exist (run `pollen tables create`)",
        keys=err.keys,
        code=err.code,
    )
