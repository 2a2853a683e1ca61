"""Runs user callbacks so that a failing callback never stops an elector."""

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


def run_callback(callback: Callable[..., Any] | None, name: str, *args: Any) -> None:
    """Call ``callback(*args)``; an exception is logged with its traceback and swallowed."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        logger.exception("%s callback %r raised; the elector keeps running", name, callback)
