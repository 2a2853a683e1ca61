"""A clock that only moves when told to, for deterministic tests."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol

from mongoelector._validation import check_non_negative_seconds

__all__ = ["FakeClock"]

_DEFAULT_START = datetime(2030, 1, 1, tzinfo=timezone.utc)
_NANOS = 1_000_000_000


class _Wakeable(Protocol):
    def set(self) -> None: ...


class _LoopEventSetter:
    """Sets an :class:`asyncio.Event` from whichever thread advances the clock.

    From the event loop's own thread the event is set at once, so the waiter is
    runnable as soon as ``advance()`` returns; from another thread it is set
    through ``call_soon_threadsafe``.
    """

    __slots__ = ("_event", "_loop")

    def __init__(self, event: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        self._event = event
        self._loop = loop

    def set(self) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._event.set)


def _first_tick_reaching(deadline: float) -> int:
    """The first nanosecond ``n`` with ``n / 1e9 >= deadline`` (as ``monotonic()`` reads it).

    Rounding ``deadline`` to the nearest nanosecond instead could wake a waiter
    a hair before ``monotonic() >= deadline`` holds; a driver that then finds
    nothing due would wait for the same deadline again, and spin.
    """
    ticks = math.ceil(deadline * _NANOS)
    while ticks / _NANOS < deadline:
        ticks += 1
    while (ticks - 1) / _NANOS >= deadline:
        ticks -= 1
    return ticks


class FakeClock:
    """A clock frozen until :meth:`advance` moves it forward.

    ``now()`` starts at ``start`` (timezone-aware; default 2030-01-01 UTC) and
    ``monotonic()`` at ``0.0``; both move together by exactly the amount
    advanced. Time is kept in whole nanoseconds, so repeated small advances add
    up exactly. Safe to read and advance from several threads.

    Waiting under a fake clock:

    * :meth:`sleep` *is* an advance: a blocking call made in the caller's own
      thread (such as ``Lock.acquire(timeout=...)``) finishes at once and moves
      the clock by the time it would have slept.
    * :meth:`wait_until` never moves the clock: a background thread (a started
      elector) stays asleep until some other thread advances the clock past its
      deadline, or until it is woken (for example by ``stop()``).
    * :meth:`async_sleep` and :meth:`async_wait_until` are the same two kinds of
      wait for asyncio tasks: the first advances the clock and lets other tasks
      run once; the second suspends the task (never blocking the event loop)
      until the clock is advanced past its deadline, from any thread, or its
      event is set. :attr:`next_deadline` tells a test where the earliest
      waiter is due.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = _DEFAULT_START
        if not isinstance(start, datetime):
            raise TypeError(f"start must be a datetime, got {type(start).__name__} {start!r}")
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start must be timezone-aware, got naive {start!r}")
        self._start = start.astimezone(timezone.utc)
        self._elapsed_ns = 0
        self._cond = threading.Condition()
        self._waiters: dict[_Wakeable, int] = {}

    def now(self) -> datetime:
        with self._cond:
            elapsed = self._elapsed_ns
        return self._start + timedelta(microseconds=elapsed // 1000)

    def monotonic(self) -> float:
        with self._cond:
            return self._elapsed_ns / _NANOS

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (zero or more) and wake due waiters."""
        seconds = check_non_negative_seconds(seconds, name="seconds")
        with self._cond:
            self._elapsed_ns += round(seconds * _NANOS)
            due = [
                event for event, deadline in self._waiters.items() if deadline <= self._elapsed_ns
            ]
            for event in due:
                del self._waiters[event]
        for event in due:
            event.set()

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (negative values count as zero)."""
        self.advance(max(0.0, seconds))

    def wait_until(self, deadline: float, wakeup: threading.Event) -> bool:
        """Block (in real time) until the clock reaches ``deadline`` or ``wakeup`` is set.

        Reaching means :meth:`monotonic` ``>= deadline``, compared as floats.
        """
        deadline_ns = _first_tick_reaching(deadline)
        with self._cond:
            if self._elapsed_ns >= deadline_ns:
                return wakeup.is_set()
            self._waiters[wakeup] = deadline_ns
        try:
            wakeup.wait()
        finally:
            with self._cond:
                self._waiters.pop(wakeup, None)
                reached = self._elapsed_ns >= deadline_ns
        return not reached

    async def async_sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (as :meth:`sleep` does), then yield to the loop once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    async def async_wait_until(self, deadline: float, wakeup: asyncio.Event) -> bool:
        """Suspend the calling task until the clock reaches ``deadline`` or ``wakeup`` is set.

        Returns ``True`` if ``wakeup`` was set before the deadline was reached.
        Like :meth:`wait_until`, the clock sets ``wakeup`` itself to wake the
        waiter; callers clear it after waking. Always yields to the event loop
        at least once, even when the deadline has already passed. An infinite
        ``deadline`` waits for ``wakeup`` alone.
        """
        if math.isinf(deadline):
            await wakeup.wait()
            return True
        deadline_ns = _first_tick_reaching(deadline)
        setter = _LoopEventSetter(wakeup, asyncio.get_running_loop())
        with self._cond:
            if self._elapsed_ns >= deadline_ns:
                already = True
            else:
                already = False
                self._waiters[setter] = deadline_ns
        if already:
            await asyncio.sleep(0)
            return wakeup.is_set()
        try:
            await wakeup.wait()
        finally:
            with self._cond:
                self._waiters.pop(setter, None)
                reached = self._elapsed_ns >= deadline_ns
        return not reached

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline (monotonic seconds) anyone waits for, ``None`` if nobody waits."""
        with self._cond:
            if not self._waiters:
                return None
            return min(self._waiters.values()) / _NANOS

    @property
    def waiters(self) -> int:
        """How many threads and tasks are waiting for this clock to reach their deadline."""
        with self._cond:
            return len(self._waiters)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()}, monotonic={self.monotonic():.9f})"
