"""Where the command line's log records go: stderr, with secrets masked."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from mongoelector.cli.masking import MaskingFilter

__all__ = ["LOG_FORMAT", "logging_to_stderr", "quieted"]

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_LEVELS = {0: logging.WARNING, 1: logging.INFO}


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Send the ``mongoelector`` loggers' records to stderr while the block runs.

    ``verbosity`` 0 shows warnings and errors, 1 (``-v``) adds the INFO
    records (leadership changes, releases), 2 or more (``-vv``) everything.
    Every record passes through :class:`MaskingFilter` first.
    """
    logger = logging.getLogger("mongoelector")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(MaskingFilter())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(_LEVELS.get(verbosity, logging.DEBUG))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def quieted(level: int = logging.CRITICAL) -> Iterator[None]:
    """Show only records of ``level`` and above from the ``mongoelector`` loggers in the block.

    For commands whose nodes fail on purpose (the demo's crash, the
    simulation's faults): their output tells that story better.
    """
    logger = logging.getLogger("mongoelector")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
