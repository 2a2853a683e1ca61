"""Checks for user-supplied values; each error names the bad value."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MAX_SECONDS",
    "MIN_PERIOD",
    "MIN_RENEW_DEADLINE",
    "MIN_TTL",
    "check_key",
    "check_non_negative_seconds",
    "check_owner",
    "check_seconds",
    "check_unique_key",
]

MAX_KEY_LENGTH = 1024
_INF = math.inf

# The bounds of every duration a user sets (re-exported, with their reasons, by
# ``mongoelector.timing``; ``docs/api.md`` lists them).

#: The longest duration any setting may have: 365 days. Lease times are
#: ``datetime`` values (``datetime`` ends at year 9999, MongoDB dates at a
#: 64-bit count of milliseconds) and waits are bounded by
#: ``threading.TIMEOUT_MAX`` (about 292 years on 64-bit Linux); a year stays
#: far inside all of them, and is longer than anyone means a crashed holder
#: to block a key.
MAX_SECONDS = 365 * 24 * 3600.0
#: The shortest lease ``ttl``: 0.1 s. Stores keep times in milliseconds
#: (MongoDB) and a holder must fit an acquire round trip, a renew deadline and
#: at least one retry into one ttl; below this, round trips alone outlast the
#: lease, and an elector never leads.
MIN_TTL = 0.1
#: The shortest ``renew_deadline``: 0.05 s (a holding is trusted only this long
#: after a write is sent, so a shorter one is spent before the reply arrives).
MIN_RENEW_DEADLINE = 0.05
#: The shortest pause (``retry_period``, ``follower_poll``, an acquire's
#: ``step``): 1 ms, the resolution of stored times; a shorter one only spins.
MIN_PERIOD = 0.001


#: Keys (exact ``str`` values) that passed :func:`check_key`: a string is always equally
#: valid, so a key checked once is found here by one dict lookup. Bounded: emptied when full.
_GOOD_KEYS: dict[str, None] = {}
_GOOD_KEYS_MAX = 4096


def check_key(key: object, *, name: str = "key") -> str:
    """Return ``key`` if it is a usable lock key: a non-empty ``str`` without NUL."""
    if type(key) is str and key in _GOOD_KEYS:
        return key
    return _check_new_key(key, name)


def check_unique_key(key: object, *, name: str) -> str:
    """:func:`check_key` for a value seen once (an acquisition id): checked in full every
    time and never remembered, so that fresh ids do not crowd the keys out of the memo."""
    return _check_new_key(key, name, remember=False)


def _check_new_key(key: object, name: str, *, remember: bool = True) -> str:
    """:func:`check_key`'s full check; an exact ``str`` that passes is remembered (unless
    not ``remember``)."""
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError(f"{name} must be a non-empty string, got {key!r}")
    if "\x00" in key:
        raise ValueError(f"{name} must not contain NUL characters, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{name} must be at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    if (
        remember and type(key) is str
    ):  # a subclass may compare equal to a str it does not behave like
        if len(_GOOD_KEYS) >= _GOOD_KEYS_MAX:
            _GOOD_KEYS.clear()
        _GOOD_KEYS[key] = None
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


def _check_range(
    seconds: float, value: Any, name: str, least: float | None, most: float | None
) -> float:
    if least is not None and seconds < least:
        raise ValueError(f"{name} must be at least {least:g} seconds, got {value!r}")
    if most is not None and seconds > most:
        raise ValueError(
            f"{name} must be at most {most:.0f} seconds ({most / 86400:g} days), got {value!r}"
        )
    return seconds


def check_seconds(
    value: Any, *, name: str, least: float | None = None, most: float | None = MAX_SECONDS
) -> float:
    """Return ``value`` as float seconds if it is a finite number greater than zero and
    at most ``most`` (default :data:`MAX_SECONDS`, 365 days; ``None``: no bound).

    With ``least``, it must also be at least that. The ``ValueError`` names the
    bad value and the bound.
    """
    # The common case, a float in range, in one test (NaN and inf fail it and get the
    # full check below, which refuses them).
    if (
        type(value) is float
        and 0.0 < value < _INF
        and (least is None or value >= least)
        and (most is None or value <= most)
    ):
        return value
    seconds = _check_number(value, name)
    if seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return _check_range(seconds, value, name, least, most)


def check_non_negative_seconds(value: Any, *, name: str, most: float | None = None) -> float:
    """Return ``value`` as float seconds if it is a finite number, zero or more (and at
    most ``most`` when given)."""
    seconds = _check_number(value, name)
    if seconds < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return _check_range(seconds, value, name, None, most)
