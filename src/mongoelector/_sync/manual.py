"""Driving the process scheduler by hand for chosen clocks: no threads, one step at a time.

For the deterministic simulation and for tests. A clock registered with
:func:`drive` is *manually driven*:

- its :func:`~mongoelector._sync.scheduler.call_at` entries start no timer
  thread; they wait until :func:`run_due` (or :func:`run_entries`) runs them;
- work (:func:`~mongoelector._sync.scheduler.submit`) and callbacks
  (:func:`~mongoelector._sync.scheduler.submit_callback`) submitted while one
  of its entries, work or callbacks runs, or inside :func:`acting_for` the
  clock (code acting for that node: a user's ``acquire()``), are queued for
  the clock instead of going to the worker and callback threads;
- :func:`run_due` runs, in the calling thread, everything due at the clock's
  current time, in order: the due entries, then the work queued (one item at
  a time, running entries that fell due meanwhile first: time may pass inside
  a store call), then the callbacks, until nothing is due; it returns when
  the clock next needs it (:func:`next_due`).

Other clocks keep their threads. Work submitted outside any manual context
goes to the threads as always. :func:`forget` ends the manual driving
and drops whatever is still scheduled or queued for the clock (a crashed
process's renewals die with it).
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from mongoelector._common.batches import clock_key
from mongoelector._sync import scheduler
from mongoelector.clock import Clock, SystemClock

__all__ = [
    "acting_for",
    "drive",
    "driven",
    "forget",
    "next_due",
    "queued",
    "run_due",
    "run_entries",
]


class _ManualTimer(scheduler._Timer):
    """A clock's entries with no thread; its queued work and callbacks (under ``_guard``)."""

    def __init__(self, key: object, clock: Clock) -> None:
        super().__init__(key, clock)
        self.work: deque[scheduler.Action] = deque()
        self.callbacks: deque[scheduler.Action] = deque()

    def push(self, entry: scheduler.Entry) -> None:
        heapq.heappush(self.heap, entry)
        self.live += 1

    def start(self) -> None:
        """A manually driven clock never has a thread."""


class _Context(threading.local):
    def __init__(self) -> None:
        self.stack: list[_ManualTimer] = []


_context = _Context()


def _divert(action: scheduler.Action, callback: bool) -> bool:
    stack = _context.stack
    if not stack:
        return False
    timer = stack[-1]
    with scheduler._guard:
        (timer.callbacks if callback else timer.work).append(action)
    return True


scheduler._divert = _divert


def drive(clock: Clock) -> None:
    """Drive ``clock``'s scheduling by hand from now on (see the module); idempotent.

    Refused (``ValueError``) for a :class:`~mongoelector.clock.SystemClock`,
    which every real lock of the process shares, and for a clock with entries
    already waiting on a timer thread.
    """
    if type(clock) is SystemClock:
        raise ValueError("the system clock cannot be driven by hand")
    key = clock_key(clock)
    with scheduler._guard:
        timer = scheduler._timers.get(key)
        if isinstance(timer, _ManualTimer):
            return
        if timer is not None and timer.live:
            raise ValueError(f"{clock!r} has entries on a timer thread already")
        scheduler._timers[key] = _ManualTimer(key, clock)


def driven(clock: Clock) -> bool:
    """True while ``clock`` is driven by hand."""
    with scheduler._guard:
        return isinstance(scheduler._timers.get(clock_key(clock)), _ManualTimer)


def forget(clock: Clock) -> None:
    """Stop driving ``clock`` by hand, dropping its entries, queued work and callbacks."""
    key = clock_key(clock)
    with scheduler._guard:
        timer = scheduler._timers.get(key)
        if isinstance(timer, _ManualTimer):
            del scheduler._timers[key]
            for entry in timer.heap:
                entry.cancelled = True
            timer.heap.clear()
            timer.live = 0
            timer.work.clear()
            timer.callbacks.clear()


def _timer(clock: Clock) -> _ManualTimer:
    with scheduler._guard:
        timer = scheduler._timers.get(clock_key(clock))
    if not isinstance(timer, _ManualTimer):
        raise ValueError(f"{clock!r} is not driven by hand (see drive())")
    return timer


@contextmanager
def acting_for(clock: Clock) -> Iterator[None]:
    """Queue the work and callbacks submitted inside the block for ``clock`` (driven by hand)."""
    timer = _timer(clock)
    _context.stack.append(timer)
    try:
        yield
    finally:
        _context.stack.pop()


def run_entries(clock: Clock) -> int:
    """Run ``clock``'s entries due at its current time, in due order; how many ran.

    Work and callbacks they submit are queued for the clock (run by :func:`run_due`).
    """
    timer = _timer(clock)
    now = clock.monotonic()
    due: list[scheduler.Entry] = []
    with scheduler._guard:
        heap = timer.heap
        while heap and (heap[0].cancelled or heap[0].due <= now):
            entry = heapq.heappop(heap)
            if not entry.cancelled:
                entry.cancelled = True  # fired: cancel() is a no-op from now on
                timer.live -= 1
                due.append(entry)
    with acting_for(clock):
        for entry in due:
            scheduler._run(entry.action)
    return len(due)


def _pop(queue: deque[scheduler.Action]) -> scheduler.Action | None:
    with scheduler._guard:
        return queue.popleft() if queue else None


def run_due(clock: Clock) -> float:
    """Run everything due for ``clock`` now (see the module); return :func:`next_due`."""
    timer = _timer(clock)
    with acting_for(clock):
        while True:
            ran = run_entries(clock)
            action = _pop(timer.work)
            if action is None:
                action = _pop(timer.callbacks)
            if action is not None:
                scheduler._run(action)
            elif not ran:
                break
    return next_due(clock)


def next_due(clock: Clock) -> float:
    """When ``clock`` next needs :func:`run_due`: ``-inf`` if work or callbacks are queued,
    else the earliest entry's time (``inf`` when none)."""
    timer = _timer(clock)
    with scheduler._guard:
        if timer.work or timer.callbacks:
            return -math.inf
    return next_entry(clock)


def next_entry(clock: Clock) -> float:
    """The earliest time an entry of ``clock`` waits for (``inf`` when none), whatever is
    queued: when a timer thread would wake up, even while the workers are busy."""
    timer = _timer(clock)
    with scheduler._guard:
        live = [entry.due for entry in timer.heap if not entry.cancelled]
    return min(live, default=math.inf)


def queued(clock: Clock) -> tuple[int, int]:
    """How many work items and callbacks wait for ``clock``'s :func:`run_due`."""
    timer = _timer(clock)
    with scheduler._guard:
        return len(timer.work), len(timer.callbacks)
