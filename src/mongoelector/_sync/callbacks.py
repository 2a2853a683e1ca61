"""Runs user callbacks so that a failing callback never stops an elector or a lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["check_callback", "run_callback"]

logger = logging.getLogger("mongoelector.elector")


def check_callback(value: object, *, name: str) -> Callable[..., Any] | None:
    """Return ``value`` if it is ``None`` or callable, else raise ``TypeError`` naming it."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__} {value!r}")
    return value


def run_callback(
    callback: Callable[..., Any] | None,
    name: str,
    *args: Any,
    log: logging.Logger = logger,
    carrying_on: str = "the elector keeps running",
) -> None:
    """Call ``callback(*args)``; an exception is logged with its traceback and swallowed.

    The log record goes to ``log`` and says ``carrying_on`` about what happens next.
    """
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        log.exception("%s callback %r raised; %s", name, callback, carrying_on)
