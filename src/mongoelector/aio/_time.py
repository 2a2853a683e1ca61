"""Waiting on a :class:`~mongoelector.clock.Clock` from asyncio code, without blocking the loop.

A clock that has coroutine methods ``async_sleep`` and ``async_wait_until``
(as :class:`~mongoelector.testing.FakeClock` has) is asked to wait itself, so
that fake time decides when a task wakes. Any other clock (such as
:class:`~mongoelector.clock.SystemClock`) is taken to run in real time and is
waited on with the event loop's own timers.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol, runtime_checkable

from mongoelector.clock import Clock

__all__ = ["AsyncWaitClock", "sleep", "wait_until"]


@runtime_checkable
class AsyncWaitClock(Protocol):
    """A clock that knows how asyncio tasks wait on it."""

    async def async_sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass for the calling task."""
        ...

    async def async_wait_until(self, deadline: float, wakeup: asyncio.Event) -> bool:
        """Suspend until ``monotonic() >= deadline`` or ``wakeup`` is set (``True`` if set)."""
        ...


async def sleep(clock: Clock, seconds: float) -> None:
    """Let ``seconds`` of ``clock``'s time pass for the calling task.

    Under a :class:`~mongoelector.testing.FakeClock` this advances the clock
    (as the sync ``sleep`` does) and lets other tasks run once; with a real
    clock it is :func:`asyncio.sleep`.
    """
    if isinstance(clock, AsyncWaitClock):
        await clock.async_sleep(seconds)
    else:
        await asyncio.sleep(max(0.0, seconds))


async def wait_until(clock: Clock, deadline: float, wakeup: asyncio.Event) -> bool:
    """Suspend until ``clock`` reaches monotonic ``deadline`` or ``wakeup`` is set.

    Returns ``True`` if ``wakeup`` was set. Never moves the clock: under a
    :class:`~mongoelector.testing.FakeClock` the task wakes only when someone
    advances the clock past ``deadline``. ``wakeup`` may also be set by the
    clock to wake the task; callers clear it after waking. An infinite
    ``deadline`` waits for ``wakeup`` alone. Always yields to the loop.
    """
    if isinstance(clock, AsyncWaitClock):
        return await clock.async_wait_until(deadline, wakeup)
    if math.isinf(deadline):
        await wakeup.wait()
        return True
    while True:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            await asyncio.sleep(0)
            return wakeup.is_set()
        try:
            await asyncio.wait_for(wakeup.wait(), remaining)
        except asyncio.TimeoutError:
            continue
        return True
