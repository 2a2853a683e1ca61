"""Moving a FakeClock under started electors and auto-renewed locks, and waiting until
every one of them has caught up (``wait_idle``).

``guard`` real seconds only bound waits that a broken build would never finish: a
hang guard, not a timing assertion.
"""

from __future__ import annotations

from typing import Any

from mongoelector.testing import FakeClock

GUARD = 60.0  # real seconds


def advance(clock: FakeClock, seconds: float, holders: list[Any], *, guard: float = GUARD) -> None:
    """Move the clock one second at a time; after each, wait until every holder caught up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        settle(holders, guard=guard)


def settle(holders: list[Any], *, guard: float = GUARD) -> None:
    """Wait until every holder caught up, in two passes in a row that find none busy.

    One pass is not enough: a holder found idle may be joined into another's batch
    right after, and that batch gives it its outcome after the trigger's (the trigger
    found idle next); the second pass finds it still in the batch, and waits.
    """
    clean = 0
    while clean < 2:
        clean += 1
        for holder in holders:
            if not holder.wait_idle(0):
                clean = 0
                assert holder.wait_idle(guard), holder
