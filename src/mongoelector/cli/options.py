"""Options shared by several commands, and argparse types that name the bad value."""

from __future__ import annotations

import argparse
import math

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_connection_options",
    "non_negative_int",
    "positive_int",
    "positive_seconds",
]

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


def add_connection_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--uri``, ``--db`` and ``--timeout``: which database, and how long to wait for it."""
    parser.add_argument(
        "--uri",
        required=required,
        metavar="URI",
        help="MongoDB connection string (mongodb://... or mongodb+srv://...); "
        "its password is never printed",
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
