"""Checks for user-supplied values; each error names the bad value."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_key", "check_non_negative_seconds", "check_owner", "check_seconds"]

MAX_KEY_LENGTH = 1024


def check_key(key: object, *, name: str = "key") -> str:
    """Return ``key`` if it is a usable lock key: a non-empty ``str`` without NUL."""
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError(f"{name} must be a non-empty string, got {key!r}")
    if "\x00" in key:
        raise ValueError(f"{name} must not contain NUL characters, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{name} must be at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


def check_owner(owner: object, *, name: str = "owner") -> str:
    """Return ``owner`` if it is a usable owner id (same rules as a key)."""
    return check_key(owner, name=name)


def _check_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_seconds(value: Any, *, name: str) -> float:
    """Return ``value`` as float seconds if it is a finite number greater than zero."""
    seconds = _check_number(value, name)
    if seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def check_non_negative_seconds(value: Any, *, name: str) -> float:
    """Return ``value`` as float seconds if it is a finite number, zero or more."""
    seconds = _check_number(value, name)
    if seconds < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return seconds
