"""Helpers for testing asyncio code under a :class:`~mongoelector.testing.FakeClock`.

Under a fake clock, tasks that wait on it (a started ``AsyncLeaderElector``, a
``leadership()`` scope) sleep until the clock is advanced. These helpers move
time forward the way real time would, one due deadline at a time, and let the
woken tasks run before going on, so a test reads like a timeline.

For the other direction (sync test tools on an async backend), this module
also offers :class:`EventLoopThread` and :class:`BlockingBackend` (from
:mod:`mongoelector.testing.blocking`).
"""

from __future__ import annotations

import asyncio

from mongoelector._validation import check_non_negative_seconds
from mongoelector.testing.blocking import BlockingBackend, EventLoopThread
from mongoelector.testing.fake_clock import FakeClock

__all__ = ["BlockingBackend", "EventLoopThread", "run_for", "settle"]

#: Passes of the event loop that :func:`settle` makes by default.
SETTLE_ROUNDS = 20


async def settle(rounds: int = SETTLE_ROUNDS) -> None:
    """Let every task that can run, run, until it waits again.

    Makes ``rounds`` passes of the event loop; each pass runs every task that
    is ready once. Enough for the elector's loop and leadership scopes on an
    in-memory store; a test whose own tasks hop through more steps (queues,
    task chains) can ask for more.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    for _ in range(rounds):
        await asyncio.sleep(0)


async def run_for(clock: FakeClock, seconds: float, *, rounds: int = SETTLE_ROUNDS) -> None:
    """Advance ``clock`` by ``seconds``, stopping at every deadline that tasks wait for.

    At each stop the clock is exactly at the earliest waiter's deadline, and
    the woken tasks run (:func:`settle`) before time moves on, so a task sees
    the time it asked to wake at, as it would in real time.
    """
    if not isinstance(clock, FakeClock):
        raise TypeError(f"clock must be a FakeClock, got {type(clock).__name__} {clock!r}")
    end = clock.monotonic() + check_non_negative_seconds(seconds, name="seconds")
    await settle(rounds)
    while True:
        now = clock.monotonic()
        due = clock.next_deadline
        if due is None or due > end:
            clock.advance(max(0.0, end - now))
            await settle(rounds)
            return
        clock.advance(max(0.0, due - now))
        await settle(rounds)
