"""Command line: ``python -m mongoelector demo [--sqlite FILE]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.demo import run_demo

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mongoelector", description="Distributed locks and leader election."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="three electors (in memory, or through a SQLite file): election, crash, handover",
        description="Three in-process electors elect a leader, replace it when it crashes, "
        "then hand over gracefully; prints a timeline with fencing tokens.",
    )
    demo.add_argument(
        "--sqlite",
        metavar="FILE",
        help="run the demo through this SQLite file instead of in memory",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        # The demo cuts a node off on purpose; its failed calls are expected, not news.
        logging.getLogger("mongoelector").setLevel(logging.ERROR)
        if args.sqlite is not None:
            with SQLiteBackend(args.sqlite, busy_timeout=1.0) as backend:
                return 0 if run_demo(backend, sys.stdout) else 1
        return 0 if run_demo(MemoryBackend(), sys.stdout) else 1
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
