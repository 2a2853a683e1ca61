"""The ``mongoelector`` command line (also ``python -m mongoelector``).

One module per command (``demo``, ``status``, ``release``, ``simulate``,
``run`` in ``runner``, ``elect``), each
with its ``NAME``, ``HELP`` and ``DESCRIPTION``, an ``add_arguments(parser)``,
and a ``run(args, out)`` that returns an :class:`~mongoelector.cli.errors.ExitCode`
(``run`` and ``elect`` return their command's exit status). :func:`main`
parses, runs, and turns a :class:`~mongoelector.cli.errors.CliError` into a
message on stderr and its exit code. Everything printed (results, errors, log
records, argparse's complaints) has passwords masked. See ``docs/operations.md``.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from mongoelector.cli import demo, elect, release, runner, simulate, status
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.logs import logging_to_stderr
from mongoelector.cli.masking import mask_secrets

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with secrets masked in its error messages (they may quote a URI)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, mask_secrets(f"{self.prog}: error: {message}\n"))


class _MaskedOutput(io.StringIO):
    """Passes text on to ``target`` with secrets masked (each write is masked whole)."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(mask_secrets(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line, every command included."""
    parser = _Parser(
        prog="mongoelector",
        description="Distributed locks and leader election: demo, inspect, release, simulate, "
        "run a command under a lock or while leading.",
        epilog="Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 server unreachable, "
        "4 unknown key; run: the command's own status, 70 lock lost, 75 lock held elsewhere. "
        "Run 'mongoelector COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more to stderr: -v leadership changes, -vv everything",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, status, release, simulate, runner, elect):
        sub = commands.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    out = _MaskedOutput(sys.stdout)
    with logging_to_stderr(args.verbose):
        try:
            code: int = args.run(args, out)
        except CliError as error:
            out.flush()
            sys.stderr.write(mask_secrets(f"mongoelector {args.command}: error: {error}\n"))
            return int(error.code)
        except KeyboardInterrupt:
            sys.stderr.write(f"mongoelector {args.command}: interrupted\n")
            return 130
    out.flush()
    return int(code)
