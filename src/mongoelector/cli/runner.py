"""``mongoelector run KEY -- COMMAND``: run a command while holding a lock (cron, one-offs)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from mongoelector._sync.lock import Lock
from mongoelector._validation import check_key
from mongoelector.backends._mongo.names import DEFAULT_COLLECTION
from mongoelector.backends._mongo.validation import check_collection_name
from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import StorageBackend
from mongoelector.cli.child import Child, forwarding_signals, pause
from mongoelector.cli.connect import open_database
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.options import (
    add_connection_options,
    checked_option,
    positive_seconds,
    refuse_without_uri,
)
from mongoelector.cli.sqlite_store import open_sqlite
from mongoelector.errors import AcquireTimeout, BackendError, LockExists

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_TTL",
    "DESCRIPTION",
    "HELP",
    "NAME",
    "add_arguments",
    "add_child_arguments",
    "add_collection_argument",
    "open_store",
    "run",
]

_log = logging.getLogger("mongoelector")

#: The lease ttl of ``run`` unless ``--ttl`` says (renewed every ttl * 2/15 while the command runs).
DEFAULT_TTL = 60.0
#: Seconds between SIGTERM and SIGKILL when the child must be stopped, unless ``--grace`` says.
DEFAULT_GRACE = 10.0

NAME = "run"
HELP = "run a command while holding a lock (exit 75 if it is held elsewhere)"
DESCRIPTION = """\
Take the lock KEY, run COMMAND as a child process while holding it (renewed
automatically), then release it. The child gets MONGOELECTOR_KEY and
MONGOELECTOR_TOKEN (the lock's fencing token) in its environment. Exit status:
the child's (128 + N if signal N ended it); 75 if the lock is held elsewhere
(at once, or after --wait S seconds); 70 if the lock was lost while the child
ran (the child got SIGTERM, then SIGKILL after --grace seconds); 126/127 if
COMMAND cannot be executed / is not found; 2, 3 as for every command.
SIGTERM and SIGINT are passed to the child; the lock is released when it ends.
Locks live in the mongolocker collection (MongoDB; another with --collection)
or the SQLite file.
"""


def add_collection_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--collection NAME``: the lease collection (MongoDB only), for ``run`` and ``elect``."""
    parser.add_argument(
        "--collection",
        metavar="NAME",
        help=f"the lease collection (default: {default}; MongoDB only)",
    )


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    """``--grace`` and ``-- COMMAND [ARGS...]``, shared by ``run`` and ``elect``."""
    parser.add_argument(
        "--grace",
        type=positive_seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="when the lease is lost: seconds from SIGTERM to SIGKILL "
        f"(default: {DEFAULT_GRACE:g})",
    )
    parser.add_argument(
        "argv", nargs="+", metavar="-- COMMAND [ARGS...]", help="the command to run"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="the lock to hold while COMMAND runs")
    add_connection_options(parser, sqlite=True)
    add_collection_argument(parser, DEFAULT_COLLECTION)
    parser.add_argument(
        "--ttl",
        type=positive_seconds,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"the lease's ttl; it is renewed while COMMAND runs (default: {DEFAULT_TTL:g})",
    )
    parser.add_argument(
        "--wait",
        type=positive_seconds,
        nargs="?",
        const=math.inf,
        metavar="SECONDS",
        help="if the lock is held, wait for it (at most SECONDS; forever without a number) "
        "instead of exiting 75 at once",
    )
    parser.add_argument(
        "--at-least",
        type=positive_seconds,
        metavar="SECONDS",
        help="hold the lock at least this long after taking it, even if COMMAND ends sooner "
        "(so that the same job started a little later elsewhere does not run it again)",
    )
    add_child_arguments(parser)


@contextlib.contextmanager
def open_store(
    args: argparse.Namespace, collection: str, call_budget: float, *, status: str | None = None
) -> Iterator[StorageBackend]:
    """The store of ``--sqlite`` (created if missing) or ``--uri/--db``, whose leases live in
    ``--collection`` if given, else ``collection``. Options are checked before connecting."""
    if args.sqlite is not None:
        refuse_without_uri(args, {"--db": args.db, "--collection": args.collection})
        with open_sqlite(args.sqlite, timeout=args.timeout, create=True) as backend:
            yield backend
        return
    if args.collection is not None:
        collection = checked_option(check_collection_name, args.collection, "--collection")
    with open_database(args.uri, args.db, timeout=args.timeout) as connection:
        yield MongoBackend(
            connection.database,
            collection,
            status_collection=status,
            timeout=min(args.timeout, call_budget),
        )


def _acquire(lock: Lock, wait: float | None) -> None:
    try:
        if wait is None:
            lock.acquire(blocking=False)
        else:
            lock.acquire(blocking=True, timeout=None if math.isinf(wait) else wait)
    except (LockExists, AcquireTimeout) as error:
        raise CliError(f"{lock.key!r} is held elsewhere: {error}", ExitCode.HELD) from error
    except BackendError as error:
        raise CliError(f"cannot take {lock.key!r}: {error}", ExitCode.UNREACHABLE) from error


class _Runner:
    """The supervisor loop of one ``run``: the child, the lease, the signals."""

    def __init__(self, args: argparse.Namespace, lock: Lock) -> None:
        self._args = args
        self._lock = lock
        self._child: Child | None = None
        self._signalled: int | None = None

    def on_signal(self, number: int) -> None:
        self._signalled = number
        if self._child is None:
            raise SystemExit(128 + number)  # still waiting for the lock: give up
        self._child.send(number)

    def supervise(self) -> int:
        args, lock = self._args, self._lock
        started = time.monotonic()
        token = lock.token
        assert token is not None
        self._child = child = Child(args.argv, args.key, token)
        while (status := child.status()) is None:
            if lock.lost.is_set():
                child.stop(args.grace, f"lost the lock {args.key!r} (token {token})")
                sys.stderr.write(
                    f"mongoelector run: error: lost the lock {args.key!r} while the command ran "
                    f"(exit {int(ExitCode.LOST)})\n"
                )
                return ExitCode.LOST
            pause()
        if args.at_least is not None and self._signalled is None:
            until = started + args.at_least
            while time.monotonic() < until and not lock.lost.is_set() and not self._signalled:
                pause()
        return status


def run(args: argparse.Namespace, out: TextIO) -> int:
    checked_option(check_key, args.key, "KEY")
    # Renewals retry until the renew deadline (ttl * 2/3): each call must end well inside it.
    with open_store(args, DEFAULT_COLLECTION, args.ttl / 3) as backend:
        lock = Lock(args.key, backend, ttl=args.ttl, auto_renew=True)
        runner = _Runner(args, lock)
        with forwarding_signals(runner.on_signal):
            try:
                _acquire(lock, args.wait)
                return runner.supervise()
            finally:
                try:
                    lock.release()
                except BackendError as error:
                    _log.warning(
                        "could not release %r (it lapses after its ttl): %s", args.key, error
                    )
