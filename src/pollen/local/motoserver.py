"""moto's server application (DynamoDB, DynamoDB Streams, SQS and every other service moto has) behind waitress.

``python -m moto.server`` runs the same application on werkzeug's development server, which closes the connection
after every response and starts a thread per connection: each call then pays a TCP handshake, a thread start and
headers written in several sends (measured here: about 3.2 ms of server CPU per GetItem). waitress keeps
connections alive, serves them from a fixed pool of threads and sends each response in one write (TCP_NODELAY): the
same GetItem cost 2.1-2.7 ms, and a client with several connections keeps the one-core server busy.
moto's state, routing and responses are unchanged: only the HTTP layer differs, and one gap is closed: moto applies
a TransactWriteItems action by action and undoes a cancelled one by restoring a copy of the tables taken when it
started, so a write another thread made meanwhile was lost and a reader could see half a transaction. DynamoDB
serializes transactions with every other write; here a transaction runs alone (:class:`TransactionGate`).
DynamoDB itself runs with :mod:`pollen.local.motopatch` applied (speed-ups with byte-identical responses, for the
moto version they were checked on only); ``--stock`` leaves moto as released, for comparisons.

Run as ``python -m pollen.local.motoserver --host 127.0.0.1 --port 5000``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

#: Worker threads: moto is CPU-bound under one GIL, so more threads only help calls that wait (SQS long polls).
DEFAULT_THREADS = 8


class TransactionGate:
    """A readers-writer lock over DynamoDB requests: a TransactWriteItems runs alone, every other request runs
    alongside the others. Waiting transactions go first, so a steady stream of writes cannot starve them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            while self._alone or self._waiting:
                self._changed.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            while self._alone or self._running:
                self._changed.wait()
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


def gated(application: Callable[..., Iterable[bytes]], gate: TransactionGate) -> Callable[..., Iterable[bytes]]:
    """The WSGI application with DynamoDB requests through ``gate`` (the whole response is made inside it)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB_"):
            return application(environ, start_response)
        hold: AbstractContextManager[None] = gate.alone() if target.endswith(".TransactWriteItems") else gate.shared()
        with hold:
            result = application(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()

    return app


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pollen.local.motoserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--stock", action="store_true", help="run moto's DynamoDB without pollen's speed-ups")
    args = parser.parse_args(argv)

    # moto reads these when it calls itself (e.g. SQS queue URLs); set before moto is imported.
    os.environ["MOTO_PORT"] = str(args.port)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    import waitress

    if not args.stock:
        from pollen.local import motopatch

        motopatch.apply()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # waitress logs "Task queue depth is N" whenever a request waits for a thread: expected under load.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _stop)
    application = gated(DomainDispatcherApplication(create_backend_app), TransactionGate())
    waitress.serve(
        application,
        host=args.host,
        port=args.port,
        threads=args.threads,
        ident="moto",
        channel_timeout=300,
        connection_limit=1000,
        _quiet=True,
    )


if __name__ == "__main__":
    main()
