"""``mongoelector elect KEY -- COMMAND``: keep a command running only while this process leads."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from mongoelector._sync.elector import LeaderElector
from mongoelector._validation import check_key
from mongoelector.cli.child import Child, forwarding_signals, pause
from mongoelector.cli.options import add_connection_options, checked_option, positive_seconds
from mongoelector.cli.runner import add_child_arguments, add_collection_argument, open_store
from mongoelector.elector import LOCK_COLLECTION, STATUS_COLLECTION

__all__ = ["DEFAULT_TTL", "DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

#: The election's lease ttl unless ``--ttl`` says (a dead leader is replaced within about this).
DEFAULT_TTL = 15.0

NAME = "elect"
HELP = "run a command only while this process leads an election"
DESCRIPTION = """\
Take part in the election KEY and keep COMMAND running only while this
process leads it: COMMAND is started when leadership is gained, with the
term's fencing token in MONGOELECTOR_TOKEN (and KEY in MONGOELECTOR_KEY),
and stopped (SIGTERM, then SIGKILL after --grace seconds) when it is lost;
it is started again when a new term begins. If COMMAND ends by itself, this
process steps down and exits with its status (128 + N if signal N ended it),
so a process manager can restart it while another node takes over. SIGTERM
and SIGINT are passed to the running COMMAND; once it has ended this process
steps down, freeing the lease, and exits with its status (128 + N if no
COMMAND was running). Leases live in elector.locks (MongoDB; another with
--collection; member reports stay in elector.leader_status) or the SQLite file.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="the election to take part in")
    add_connection_options(parser, sqlite=True)
    add_collection_argument(parser, LOCK_COLLECTION)
    parser.add_argument(
        "--ttl",
        type=positive_seconds,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"the leader's lease ttl (default: {DEFAULT_TTL:g})",
    )
    add_child_arguments(parser)


class _Supervisor:
    def __init__(self, args: argparse.Namespace, elector: LeaderElector) -> None:
        self._args = args
        self._elector = elector
        self._child: Child | None = None
        self._signalled: int | None = None

    def on_signal(self, number: int) -> None:
        self._signalled = number
        if self._child is not None:
            self._child.send(number)

    def supervise(self) -> int:
        args = self._args
        while True:
            child = self._child
            if child is not None:
                status = child.status()
                if status is not None:
                    if self._signalled is None:
                        sys.stderr.write(
                            f"mongoelector elect: the command ended (exit {status}); "
                            "stepping down\n"
                        )
                    return status
            if self._signalled is not None and child is None:
                return 128 + self._signalled
            token = self._elector.token
            if child is not None and token != child.token and self._signalled is None:
                child.stop(args.grace, f"lost the leadership of {args.key!r} (term {child.token})")
                self._child = child = None
            if child is None and token is not None and self._signalled is None:
                sys.stderr.write(
                    f"mongoelector elect: leading {args.key!r} (token {token}); "
                    "starting the command\n"
                )
                self._child = Child(args.argv, args.key, token)
            pause()


def run(args: argparse.Namespace, out: TextIO) -> int:
    checked_option(check_key, args.key, "KEY")
    with open_store(args, LOCK_COLLECTION, args.ttl / 3, status=STATUS_COLLECTION) as backend:
        elector = LeaderElector(args.key, backend, ttl=args.ttl)
        supervisor = _Supervisor(args, elector)
        with forwarding_signals(supervisor.on_signal):
            elector.start()
            try:
                return supervisor.supervise()
            finally:
                elector.stop()
