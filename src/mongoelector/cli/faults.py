"""The ``--faults`` language of ``mongoelector simulate``: parse specs, describe faults.

A spec is ``KIND:NODE:AT[:SECONDS]``; ``NODE`` is a node name (``n1``...) or
``leader`` (whoever leads when the fault starts), ``AT`` seconds from the
start. ``SECONDS`` is how long a ``pause``, ``partition`` or ``errors`` lasts
(required), or after how long a ``crash``ed or ``stop``ped node restarts
(optional: never). ``resign`` takes no ``SECONDS``. The words ``random``
(faults drawn from the seed) and ``none`` stand alone.
"""

from __future__ import annotations

import argparse
import math

from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    Fault,
    Partition,
    Pause,
    Resign,
    Stop,
    StoreErrors,
)

__all__ = ["NONE", "RANDOM", "SYNTAX", "describe", "fault_spec"]

RANDOM = "random"
NONE = "none"
SYNTAX = (
    "KIND:NODE:AT[:SECONDS] with KIND one of pause, partition, errors (SECONDS = how long), "
    "crash, stop (SECONDS = restart after), resign; NODE a node name or 'leader'; "
    "or 'random' or 'none'"
)
_WINDOWS: dict[str, type[Pause] | type[Partition] | type[StoreErrors]] = {
    "pause": Pause,
    "partition": Partition,
    "errors": StoreErrors,
}
_ENDINGS: dict[str, type[Crash] | type[Stop]] = {"crash": Crash, "stop": Stop}


def _seconds(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be seconds in {spec!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{what} must be a number >= 0 in {spec!r}")
    return value


def fault_spec(spec: str) -> Fault | str:
    """``spec`` as a :data:`Fault`, or the word ``random``/``none`` (argparse type)."""
    if spec in (RANDOM, NONE):
        return spec
    parts = spec.split(":")
    kind = parts[0]
    if kind not in (*_WINDOWS, *_ENDINGS, "resign") or not 3 <= len(parts) <= 4:
        raise argparse.ArgumentTypeError(f"bad fault {spec!r}: expected {SYNTAX}")
    node = LEADER if parts[1] == "leader" else parts[1]
    if not node:
        raise argparse.ArgumentTypeError(f"bad fault {spec!r}: NODE is empty")
    at = _seconds(parts[2], "AT", spec)
    length = _seconds(parts[3], "SECONDS", spec) if len(parts) == 4 else None
    try:
        if kind in _WINDOWS:
            if not length:
                raise argparse.ArgumentTypeError(f"{kind} needs SECONDS > 0: {spec!r}")
            return _WINDOWS[kind](node=node, at=at, duration=length)
        if kind in _ENDINGS:
            return _ENDINGS[kind](node=node, at=at, restart_after=length)
        if length is not None:
            raise argparse.ArgumentTypeError(f"resign takes no SECONDS: {spec!r}")
        return Resign(node=node, at=at)
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"bad fault {spec!r}: {error}") from None


def describe(fault: Fault) -> str:
    """``fault`` in a few words (``the leader pauses at 20s for 30s``)."""
    who = "the leader" if fault.node == LEADER else fault.node
    at = f"at {fault.at:g}s"
    if isinstance(fault, Pause):
        inside = " (inside a call)" if fault.in_call else ""
        return f"{who} pauses {at} for {fault.duration:g}s{inside}"
    if isinstance(fault, Partition):
        hang = f", calls hang {fault.hang:g}s" if fault.hang is not None else ""
        return f"{who} is cut off {at} for {fault.duration:g}s{hang}"
    if isinstance(fault, StoreErrors):
        share = f"{fault.probability:.0%} of writes"
        return f"{who} gets store errors {at} for {fault.duration:g}s ({share})"
    if isinstance(fault, (Crash, Stop)):
        verb = "crashes" if isinstance(fault, Crash) else "stops"
        after = fault.restart_after
        back = " for good" if after is None else f", back after {after:g}s"
        return f"{who} {verb} {at}{back}"
    return f"{who} resigns {at}"
