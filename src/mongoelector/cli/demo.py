"""``mongoelector demo``: three electors elect, survive a crash, and hand over (on any store)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mongoelector._sync.signals import stop_on_signals
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import StorageBackend
from mongoelector.cli.connect import open_database
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.logs import quieted
from mongoelector.cli.options import DEFAULT_TIMEOUT, positive_seconds
from mongoelector.cli.picture import check_writable, write_svg
from mongoelector.cli.sqlite_store import open_sqlite
from mongoelector.demo import DemoSettings, demo_recorder, run_demo
from mongoelector.elector import LOCK_COLLECTION
from mongoelector.errors import BackendError
from mongoelector.picture.recorder import LiveRecorder

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

#: The exit status after SIGTERM (128 + 15, as a shell reports a process it ended).
TERMINATED = 143

NAME = "demo"
HELP = "three electors: election, crash, handover (in memory, SQLite or MongoDB)"
DESCRIPTION = """\
Three in-process electors elect a leader, replace it when it crashes, then
hand over gracefully; prints a timeline with fencing tokens. Runs in memory,
through a SQLite file (--sqlite), or against a MongoDB server (--uri/--db,
leases in the elector.locks collection). --svg also draws the run. SIGTERM
stops every elector, freeing its lease, and exits 143.

The store and the --svg path are checked before the demo starts: a file that
cannot be opened or a server that cannot be reached stops it at once (exit 3,
or 2 for the picture's path), with the reason. If a step fails and the store
reported errors, the last of them is printed on stderr (exit 1).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--sqlite",
        metavar="FILE",
        help="run the demo through this SQLite file instead of in memory",
    )
    store.add_argument("--uri", metavar="URI", help="run the demo against this MongoDB server")
    parser.add_argument("--db", metavar="NAME", help="database for --uri (default: the URI's)")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the server at start (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--svg", metavar="FILE", help="also draw the run as an SVG timeline")


@contextlib.contextmanager
def _backend(args: argparse.Namespace, settings: DemoSettings) -> Iterator[StorageBackend]:
    if args.sqlite is not None:
        with open_sqlite(args.sqlite, timeout=1.0, create=True) as backend:
            yield backend
    elif args.uri is not None:
        with open_database(args.uri, args.db, timeout=args.timeout) as connection:
            # Every call must end well inside the renew deadline.
            yield MongoBackend(
                connection.database, LOCK_COLLECTION, timeout=settings.renew_deadline / 2
            )
    else:
        yield MemoryBackend()


def run(args: argparse.Namespace, out: TextIO) -> ExitCode:
    if args.db is not None and args.uri is None:
        raise CliError("--db needs --uri (the demo runs in memory otherwise)", ExitCode.USAGE)
    settings = DemoSettings()
    recorder: LiveRecorder | None = None
    if args.svg is not None:
        check_writable(Path(args.svg))
        recorder = demo_recorder(settings)
    # The demo cuts a node off on purpose: its failing calls are news only with -v.
    # Errors of the store itself are collected, and the last one is reported if a step fails.
    quiet = quieted(logging.ERROR) if args.verbose == 0 else contextlib.nullcontext()
    store_errors: list[BackendError] = []
    # SIGTERM (a container stopping) ends the demo as Ctrl-C does: run_demo stops every
    # elector on the way out, so each frees its lease, then the process exits 143.
    try:
        with stop_on_signals(exit_code=TERMINATED), _backend(args, settings) as backend:
            with quiet:
                ok = run_demo(
                    backend, out, settings=settings, recorder=recorder, store_errors=store_errors
                )
            if not ok and store_errors:
                raise CliError(
                    f"the demo did not complete; the store's last error "
                    f"({len(store_errors)} in all): {store_errors[-1]}",
                    ExitCode.FAILED,
                )
    except SystemExit as exiting:
        if exiting.code == TERMINATED:
            out.flush()
            sys.stderr.write("mongoelector demo: terminated (SIGTERM); every elector stopped\n")
        raise
    if recorder is not None:
        subtitle = f"{settings.nodes} electors on {type(backend).__name__}"
        write_svg(Path(args.svg), recorder.timeline("mongoelector demo", subtitle), out)
    return ExitCode.OK if ok else ExitCode.FAILED
