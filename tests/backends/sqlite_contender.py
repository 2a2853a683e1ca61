"""One contender for test_sqlite_processes.py: an elector in its own OS process.

Usage: ``python sqlite_contender.py DB LOG TTL RENEW_DEADLINE RETRY_PERIOD``

Elects through the SQLite file ``DB``. After every poll in which it leads it
appends ``leading <monotonic seconds> <token>`` to ``LOG``, the time being
read *before* asking the elector, so that every logged instant lies inside
the elector's own validity. Runs until killed, or until SIGTERM, when it
steps down and logs ``stopped``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from mongoelector import LeaderElector
from mongoelector.backends.sqlite import SQLiteBackend


def main(db: str, log: str, ttl: str, renew_deadline: str, retry_period: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(log, "a", buffering=1) as out, SQLiteBackend(db, busy_timeout=0.2) as backend:
        elector: LeaderElector | None = None

        def observe() -> None:
            assert elector is not None
            before = time.monotonic()
            token = elector.token
            if token is not None:
                out.write(f"leading {before:.6f} {token}\n")

        elector = LeaderElector(
            "processes",
            backend,
            ttl=float(ttl),
            renew_deadline=float(renew_deadline),
            retry_period=float(retry_period),
            on_loop=observe,
        )
        elector.start()
        stop.wait()
        elector.stop()
        out.write("stopped\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
