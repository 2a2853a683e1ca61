"""The process's one scheduler for background lease work (the sync driver).

Every auto-renewed lock shares it, whatever their number, and it runs on a
small fixed set of daemon threads, each started on first use:

- one **timer** thread per clock (all :class:`~mongoelector.clock.SystemClock`
  objects count as one clock), which sleeps with ``clock.wait_until`` until
  the earliest entry is due (so under a :class:`~mongoelector.testing.FakeClock`
  it wakes when a test advances the clock) and hands due entries to the
  workers; it exits after :data:`LINGER` real seconds with nothing scheduled;
- :data:`WORKERS` **worker** threads, which make the store calls and the
  decisions around them, and never run user code;
- one **callback** thread for user code (``on_lost``, event listeners). A
  callback that blocks delays no store call and no decision of any holding.
  When callbacks have been queued for :data:`GRACE` real seconds with every
  callback thread busy, one more callback thread starts; it ends once the
  queue is empty, so extra threads exist only while callbacks block.

The scheduler knows nothing of locks: it runs functions at a clock's time
(:func:`call_at`), on a worker (:func:`submit`), or on a callback thread
(:func:`submit_callback`). Each function must return promptly except the
callbacks; an exception escaping one is logged and the thread goes on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from mongoelector.clock import Clock, SystemClock

__all__ = [
    "GRACE",
    "LINGER",
    "WORKERS",
    "Entry",
    "call_at",
    "cancel",
    "scheduled",
    "submit",
    "submit_callback",
    "threads",
]

logger = logging.getLogger("mongoelector.scheduler")

#: Worker threads making store calls for every holding of the process.
WORKERS = 2
#: Real seconds queued callbacks wait, with every callback thread busy, before one more starts.
GRACE = 0.25
#: Real seconds a timer thread stays with nothing scheduled before it exits.
LINGER = 1.0

_THREAD_NAMES = ("mongoelector-timer", "mongoelector-worker-", "mongoelector-callbacks-")

Action = Callable[[], None]


def _run(action: Action) -> None:
    try:
        action()
    except BaseException:  # a driver bug; the thread must survive it to serve the others
        logger.exception("scheduled work %r raised", action)


# --- timers: one thread per clock ------------------------------------------------------------


class Entry:
    """A function scheduled for a clock's monotonic time ``due``; see :func:`cancel`."""

    __slots__ = ("action", "cancelled", "due", "seq", "timer")

    def __init__(self, due: float, seq: int, action: Action, timer: _Timer) -> None:
        self.due = due
        self.seq = seq
        self.action = action
        self.timer = timer
        self.cancelled = False

    def __lt__(self, other: Entry) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


_guard = threading.Lock()  # the timers, their heaps and the registry below
_timers: dict[object, _Timer] = {}
_seq = itertools.count()


def _clock_key(clock: Clock) -> object:
    return SystemClock if type(clock) is SystemClock else id(clock)


class _Timer:
    """The entries of one clock and the thread that waits for them (changed under ``_guard``)."""

    def __init__(self, key: object, clock: Clock) -> None:
        self.key = key
        self.clock = clock
        self.heap: list[Entry] = []
        self.live = 0
        self.wakeup = threading.Event()
        self.thread: threading.Thread | None = None

    def push(self, entry: Entry) -> None:
        heapq.heappush(self.heap, entry)
        self.live += 1
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._loop, name="mongoelector-timer", daemon=True
            )
            self.thread.start()
        elif self.heap[0] is entry:
            self.wakeup.set()

    def remove(self, entry: Entry) -> None:
        entry.cancelled = True
        self.live -= 1
        if self.live == 0:
            self.heap.clear()
            self.wakeup.set()
        elif len(self.heap) > 64 and len(self.heap) > 2 * self.live:
            self.heap = [e for e in self.heap if not e.cancelled]
            heapq.heapify(self.heap)

    def _loop(self) -> None:
        try:
            self._wait_and_fire()
        except BaseException:  # a clock that failed to tell the time: the next push restarts it
            logger.exception("the scheduler's timer for %r crashed", self.clock)
            with _guard:
                if self.thread is threading.current_thread():
                    self.thread = None
            raise

    def _wait_and_fire(self) -> None:
        while True:
            self.wakeup.clear()
            now = self.clock.monotonic()
            due: list[Entry] = []
            with _guard:
                heap = self.heap
                while heap and (heap[0].cancelled or heap[0].due <= now):
                    entry = heapq.heappop(heap)
                    if not entry.cancelled:
                        entry.cancelled = True  # fired: cancel() is a no-op from now on
                        self.live -= 1
                        due.append(entry)
                next_due = heap[0].due if heap else None
            if due:
                for entry in due:
                    _run(entry.action)
                continue
            if next_due is not None:
                self._wait_until(next_due)
            elif not self.wakeup.wait(LINGER):
                with _guard:
                    if not self.heap:
                        self.thread = None
                        if _timers.get(self.key) is self:
                            del _timers[self.key]
                        return

    def _wait_until(self, deadline: float) -> None:
        if math.isinf(deadline):
            self.wakeup.wait()
            return
        try:
            self.clock.wait_until(deadline, self.wakeup)
        except Exception:
            logger.exception("%r failed to wait; retrying", self.clock)
            self.wakeup.wait(GRACE)


def call_at(clock: Clock, due: float, action: Action) -> Entry:
    """Run ``action`` (briefly, in the timer thread) once ``clock.monotonic() >= due``."""
    key = _clock_key(clock)
    with _guard:
        timer = _timers.get(key)
        if timer is None:
            timer = _timers[key] = _Timer(key, clock)
        entry = Entry(due, next(_seq), action, timer)
        timer.push(entry)
    return entry


def cancel(entry: Entry) -> bool:
    """Unschedule ``entry``; ``False`` if it has already fired (or was cancelled)."""
    with _guard:
        if entry.cancelled:
            return False
        entry.timer.remove(entry)
        return True


def scheduled(clock: Clock | None = None) -> int:
    """How many entries wait for their time on ``clock`` (all clocks when ``None``).

    For tests and benchmarks.
    """
    with _guard:
        if clock is not None:
            timer = _timers.get(_clock_key(clock))
            return timer.live if timer is not None else 0
        return sum(timer.live for timer in _timers.values())


# --- the workers: store calls and decisions --------------------------------------------------

_work: deque[Action] = deque()
_work_ready = threading.Condition(threading.Lock())
_workers: list[threading.Thread] = []


def submit(action: Action) -> None:
    """Run ``action`` on a worker thread (it must not run user code)."""
    with _work_ready:
        _work.append(action)
        if len(_workers) < WORKERS:
            thread = threading.Thread(
                target=_work_loop, name=f"mongoelector-worker-{len(_workers) + 1}", daemon=True
            )
            _workers.append(thread)
            thread.start()
        else:
            _work_ready.notify()


def _work_loop() -> None:
    while True:
        with _work_ready:
            while not _work:
                # Idle, a worker sleeps until work comes, unless callbacks wait for a thread.
                if not _work_ready.wait(GRACE if _callbacks.backlog() else None):
                    break
            action = _work.popleft() if _work else None
        _callbacks.watch()
        if action is not None:
            _run(action)


# --- the callback threads: user code ---------------------------------------------------------


class _Callbacks:
    """Callback threads: one kept, more only while every one is busy for ``GRACE`` seconds."""

    def __init__(self) -> None:
        self._queue: deque[Action] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._progress = time.monotonic()  # when a callback thread last took a callback

    def submit(self, action: Action) -> None:
        with self._ready:
            self._queue.append(action)
            if self._threads == 0:
                self._start(keep=True)
            elif self._idle:
                self._ready.notify()
            backlog = self.backlog()
        if backlog:  # the workers watch the callback threads while they are all busy
            with _work_ready:
                _work_ready.notify_all()

    def backlog(self) -> bool:
        """True while callbacks are queued and no callback thread is free (a racy read)."""
        return bool(self._queue) and not self._idle

    def watch(self) -> None:
        """Start one more callback thread if queued callbacks have waited too long."""
        with self._ready:
            if (
                self._queue
                and not self._idle
                and time.monotonic() - self._progress >= GRACE
                and self._threads > 0
            ):
                self._progress = time.monotonic()
                self._start(keep=False)

    def _start(self, *, keep: bool) -> None:
        self._threads += 1
        thread = threading.Thread(
            target=self._loop,
            args=(keep,),
            name=f"mongoelector-callbacks-{self._threads}",
            daemon=True,
        )
        thread.start()

    def _loop(self, keep: bool) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    if not keep:
                        self._threads -= 1
                        return
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                action = self._queue.popleft()
                self._progress = time.monotonic()
            _run(action)


_callbacks = _Callbacks()


def submit_callback(action: Action) -> None:
    """Run ``action`` (user code, which may block) on a callback thread."""
    _callbacks.submit(action)


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start afresh, nothing scheduled.

    (The parent's holdings are not the child's to renew, as with the renewer
    threads before.)
    """
    global _guard, _work_ready, _callbacks  # noqa: PLW0603 - fresh locks for the child
    _guard = threading.Lock()
    _timers.clear()
    _work.clear()
    _work_ready = threading.Condition(threading.Lock())
    _workers.clear()
    _callbacks = _Callbacks()


os.register_at_fork(after_in_child=_after_fork_in_child)


def threads() -> list[threading.Thread]:
    """The scheduler's threads now alive (for tests and benchmarks)."""
    return [t for t in threading.enumerate() if t.name.startswith(_THREAD_NAMES)]
