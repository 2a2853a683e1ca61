"""Options shared by several commands, and argparse types that name the bad value."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from typing import TypeVar

from mongoelector.cli.errors import CliError, ExitCode

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_connection_options",
    "checked_option",
    "non_negative_int",
    "positive_int",
    "positive_seconds",
    "refuse_without_uri",
]

T = TypeVar("T")

#: Seconds to wait for a server (server selection, each command) unless ``--timeout`` says.
DEFAULT_TIMEOUT = 5.0


def positive_seconds(text: str) -> float:
    """``text`` as a positive, finite number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _integer(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``text`` as an int of at least 1 (argparse type)."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """``text`` as an int of at least 0 (argparse type)."""
    return _integer(text, 0)


def add_connection_options(
    parser: argparse.ArgumentParser, *, required: bool = True, sqlite: bool = False
) -> None:
    """``--uri``, ``--db`` and ``--timeout``: which database, and how long to wait for it.

    With ``sqlite``, also ``--sqlite FILE``, exclusive with ``--uri`` (one of
    the two is required when ``required``); ``--timeout`` then bounds the wait
    for the file's write lock too.
    """
    where: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup = parser
    if sqlite:
        where = parser.add_mutually_exclusive_group(required=required)
        where.add_argument(
            "--sqlite",
            metavar="FILE",
            help="a SQLite file written by SQLiteBackend, instead of a MongoDB server",
        )
    where.add_argument(
        "--uri",
        required=required and not sqlite,
        metavar="URI",
        help="MongoDB connection string (mongodb://..., mongodb+srv://..., or mongomock://NAME "
        "for an in-process mongomock store); its password is never printed",
    )
    parser.add_argument(
        "--db",
        metavar="NAME",
        help="database name (default: the database named in the URI)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the server (default: {DEFAULT_TIMEOUT:g})",
    )


def checked_option(check: Callable[[str], T], value: str, option: str) -> T:
    """``check(value)``; its ``ValueError``/``TypeError`` as a ``USAGE`` error naming ``option``.

    For values a command can check before it connects (a key, a collection name).
    """
    try:
        return check(value)
    except (ValueError, TypeError) as error:
        raise CliError(f"bad {option}: {error}", ExitCode.USAGE) from error


def refuse_without_uri(args: argparse.Namespace, options: Mapping[str, object]) -> None:
    """With ``--sqlite``, any of ``options`` given (not ``None`` or empty) is a usage error."""
    for option, value in options.items():
        if value is not None and value != []:
            raise CliError(
                f"{option} needs --uri (a SQLite file has no databases or collections; "
                f"got --sqlite {args.sqlite})",
                ExitCode.USAGE,
            )
