"""moto's server application (DynamoDB, DynamoDB Streams, SQS and every other service moto has) behind waitress.

``python -m moto.server`` runs the same application on werkzeug's development server, which closes the connection
after every response and starts a thread per connection: each call then pays a TCP handshake, a thread start and
headers written in several sends (measured here: about 3.2 ms of server CPU per GetItem). waitress keeps
connections alive, serves them from a fixed pool of threads and sends each response in one write (TCP_NODELAY): the
same GetItem cost 2.1-2.7 ms, and a client with several connections keeps the one-core server busy.
moto's state, routing and responses are unchanged: only the HTTP layer differs. DynamoDB itself runs with
:mod:`pollen.local.motopatch` applied (speed-ups with byte-identical responses, for the moto version they were
checked on only); ``--stock`` leaves moto as released, for comparisons.

Run as ``python -m pollen.local.motoserver --host 127.0.0.1 --port 5000``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

#: Worker threads: moto is CPU-bound under one GIL, so more threads only help calls that wait (SQS long polls).
DEFAULT_THREADS = 8


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
    application = DomainDispatcherApplication(create_backend_app)
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
