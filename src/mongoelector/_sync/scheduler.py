"""The process's one scheduler for background lease work (the sync driver).

Every auto-renewed lock and every started ``LeaderElector`` share it,
whatever their number, and it runs on a few daemon threads, each started on
first use:

- one **timer** thread per clock (all :class:`~mongoelector.clock.SystemClock`
  objects count as one clock), which sleeps with ``clock.wait_until`` until
  the earliest entry is due (so under a :class:`~mongoelector.testing.FakeClock`
  it wakes when a test advances the clock) and runs due entries (brief, no
  I/O: a holding's decisions, a loss at its deadline); it exits after
  :data:`LINGER` real seconds with nothing scheduled and nothing waiting;
- :data:`WORKERS` kept **worker** threads, which make the store calls and the
  decisions around them, and never run user code (but logging handlers);
- one kept **callback** thread for user code (``on_lost``, an elector's
  callbacks, event listeners).
  A callback that blocks delays no store call and no decision of any holding.

The timer thread also watches, polling every ``GRACE / 2`` real seconds while
work or callbacks wait (workers may all be stuck, so they cannot watch): when
no queued call was taken for :data:`GRACE` seconds (every worker is stuck,
not merely busy), or calls have waited without a break for :data:`LATE`
seconds (the workers take calls, too slowly), as many workers start as there
are, at most one per queued call (:func:`added_workers`; added ones end after
:data:`LINGER` idle seconds); when no queued callback was taken for
:data:`GRACE` seconds, one more callback thread starts (it ends once the queue
is empty). Neither has a fixed cap: each added thread serves a holding that
waits, so there are never more than one per holding, as with the former
thread-per-lock renewers. If no timer thread runs, the system clock's starts
to watch.

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

from mongoelector._common.batches import clock_key
from mongoelector.clock import Clock, SystemClock

__all__ = [
    "GRACE",
    "LATE",
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

#: Worker threads kept for the store calls of every holding of the process (more while stuck).
WORKERS = 2
#: Real seconds work or callbacks wait, with every thread busy, before more threads start.
GRACE = 0.25
#: Real seconds a timer thread stays with nothing scheduled before it exits.
LINGER = 1.0
#: Real seconds the queue of calls may stay non-empty, however busy the workers, before
#: more workers start: the calls wait too long for the workers there are.
LATE = 1.0

_THREAD_NAMES = ("mongoelector-timer", "mongoelector-worker-", "mongoelector-callbacks-")

Action = Callable[[], None]


def _nothing() -> None:
    pass


def _run(action: Action) -> None:
    try:
        action()
    except BaseException:  # a driver bug; the thread must survive it to serve the others
        logger.exception("scheduled work %r raised", action)


def _copied(born: int) -> bool:
    """Whether this thread is a forked child's copy of one started in process ``born``: a
    worker or callback that forked returns into its loop in the child, where the queue
    holds the parent's calls and callbacks, not the child's (it has a fresh scheduler)."""
    return os.getpid() != born


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
            self.start()
        elif self.heap[0] is entry:
            self.wakeup.set()

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._loop, name="mongoelector-timer", daemon=True
            )
            self.thread.start()

    def remove(self, entry: Entry) -> None:
        entry.cancelled = True
        entry.action = _nothing  # a cancelled entry left in the heap keeps nothing alive
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
        idle_since: float | None = None  # real time since when nothing was scheduled
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
            if due or next_due is not None:
                idle_since = None
            if due:
                for entry in due:
                    _run(entry.action)
                continue
            if _watch():  # work or callbacks wait: poll in real time until none does
                _watching.polling = True
                poll = GRACE / 2
                if next_due is not None and self.key is SystemClock:
                    poll = min(poll, max(next_due - now, 0.0))
                self.wakeup.wait(poll)
                _watching.polling = False
                continue
            if next_due is not None:
                self._wait_until(next_due)
                continue
            # Nothing scheduled: end after LINGER real seconds of that, counted from when it
            # began, so that wake-ups meant for the watchers (sent to every timer) cannot
            # keep an idle timer alive for ever.
            if idle_since is None:
                idle_since = time.monotonic()
            left = LINGER - (time.monotonic() - idle_since)
            if left <= 0 or not self.wakeup.wait(left):
                with _guard:
                    if not self.heap and not self.wakeup.is_set():
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
    key = clock_key(clock)
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
            timer = _timers.get(clock_key(clock))
            return timer.live if timer is not None else 0
        return sum(timer.live for timer in _timers.values())


# --- driving by hand: the hook of mongoelector._sync.manual ----------------------------------

#: Set by :mod:`~mongoelector._sync.manual` once imported: given an action (a callback when
#: the flag is true), it queues it for the manually driven clock the calling code acts for
#: and returns True, or returns False (the threads below run it).
_divert: Callable[[Action, bool], bool] | None = None


# --- the workers: store calls and decisions --------------------------------------------------

_work: deque[Action] = deque()
_work_ready = threading.Condition(threading.Lock())


class _Pool:
    """Worker counts (changed under ``_work_ready``)."""

    def __init__(self) -> None:
        self.kept = 0  # up to WORKERS, each started on first use and kept for the process
        self.extra = 0  # added by a watcher; each ends after LINGER seconds with nothing to do
        self.idle = 0  # kept workers waiting for work and not yet woken for any
        #: When work last made progress: the queue went from empty to non-empty, a worker
        #: took a call from it, or workers were added.
        self.since = 0.0
        #: Since when the queue has had calls waiting, without a break.
        self.waiting_since = 0.0
        #: When workers were last added.
        self.added_at = -math.inf

    def took(self) -> None:
        """A worker took a queued call: the workers are not stuck (under ``_work_ready``)."""
        self.since = time.monotonic()


_pool = _Pool()


def submit(action: Action) -> None:
    """Run ``action`` on a worker thread (it must not run user code)."""
    if _divert is not None and _divert(action, False):
        return
    with _work_ready:
        if not _work:
            _pool.since = _pool.waiting_since = time.monotonic()
        _work.append(action)
        if _pool.kept < WORKERS:
            _pool.kept += 1
            _start_worker(keep=True)
            return
        if _pool.idle:
            _pool.idle -= 1  # that worker is taken: a second submit must not count on it
            _work_ready.notify()
            return
        _work_ready.notify()  # no kept worker waits: this wakes an added one, if any lingers
    _watch_needed()  # every worker is busy: a timer thread watches until the queue is empty


def _start_worker(*, keep: bool) -> None:
    number = _pool.kept + _pool.extra
    thread = threading.Thread(
        target=_work_loop, args=(keep,), name=f"mongoelector-worker-{number}", daemon=True
    )
    thread.start()


def _work_loop(keep: bool) -> None:
    born = os.getpid()
    while True:
        with _work_ready:
            while not _work:
                if not keep:  # an added worker lingers, then ends if no work came
                    _work_ready.wait(LINGER)
                    if not _work:
                        _pool.extra -= 1
                        return
                    break
                _pool.idle += 1
                _work_ready.wait()  # submit() took this worker off ``idle`` when it woke it
            action = _work.popleft()
            drained = not _work
            _pool.took()
        if drained:
            _calm()
        _run(action)
        del action  # what it refers to (a batch of holdings, say) is not kept while idle
        if _copied(born):
            return


def _watch_workers() -> bool:
    """Add workers if no queued call was taken for ``GRACE``, or if calls have waited in
    the queue without a break for ``LATE`` (at most once per ``GRACE``); True while any
    call waits.

    Called by a timer thread, never by a worker: the workers may all be stuck.
    Workers that keep taking calls are busy, not stuck, and get no help for a
    while: a short burst of many due renewals is worked through by the workers
    there are. But calls that keep waiting for ``LATE`` (a slow store, one
    worker hung and the other serving every holding) eat into every holding's
    time before its renew deadline, so then the workers are helped too.
    """
    with _work_ready:
        if not _work:
            return False
        now = time.monotonic()
        stuck = now - _pool.since >= GRACE
        behind = now - _pool.waiting_since >= LATE and now - _pool.added_at >= GRACE
        if stuck or behind:
            _pool.since = _pool.added_at = now
            for _ in range(added_workers(len(_work), _pool.kept + _pool.extra)):
                _pool.extra += 1
                _start_worker(keep=False)
        return True


def added_workers(queued: int, workers: int) -> int:
    """How many workers to add when ``queued`` calls waited ``GRACE`` with none taken.

    As many as there are (the pool doubles each stuck period), never more
    than the calls waiting: a store that hangs for some holdings is worked
    around within a few periods, with at most one thread per waiting call
    (what one thread per lock would have used), and a store that hangs for
    all of them does not get a thread per holding at once.
    """
    return min(queued, max(1, workers))


# --- the callback threads: user code ---------------------------------------------------------


class _Callbacks:
    """Callback threads: one kept, more only while every one is busy for ``GRACE`` seconds."""

    def __init__(self) -> None:
        self._queue: deque[Action] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0  # threads waiting for a callback and not yet woken for one
        self._progress = time.monotonic()  # when a thread last took a callback, or one came

    def submit(self, action: Action) -> None:
        with self._ready:
            if not self._queue:
                self._progress = time.monotonic()
            self._queue.append(action)
            if self._threads == 0:
                self._start(keep=True)
                return
            if self._idle:
                self._idle -= 1  # that thread is taken: a second submit must not count on it
                self._ready.notify()
                return
        _watch_needed()  # every callback thread is busy: a timer thread watches

    def watch(self) -> bool:
        """Start one more thread if no queued callback was taken for ``GRACE`` seconds.

        True while callbacks wait for a thread. Called by a timer thread.
        """
        with self._ready:
            if not self._queue or self._idle:
                return False
            now = time.monotonic()
            if now - self._progress >= GRACE and self._threads > 0:
                self._progress = now
                self._start(keep=False)
            return True

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
        born = os.getpid()
        while True:
            with self._ready:
                while not self._queue:
                    if not keep:
                        self._threads -= 1
                        return
                    self._idle += 1
                    self._ready.wait()  # submit() took this thread off ``idle`` when it woke it
                action = self._queue.popleft()
                self._progress = time.monotonic()
                drained = not self._queue
            if drained:
                _calm()
            _run(action)
            if _copied(born):
                return


_callbacks = _Callbacks()


def submit_callback(action: Action) -> None:
    """Run ``action`` (user code, which may block) on a callback thread."""
    if _divert is not None and _divert(action, True):
        return
    _callbacks.submit(action)


# --- watching: a timer thread adds workers and callback threads ------------------------------


class _Watch:
    def __init__(self) -> None:
        self.polling = False  # a timer thread polls every GRACE / 2 real seconds (racy read)


_watching = _Watch()


def _watch() -> bool:
    """Grow the workers or callback threads if stuck; True while work or callbacks wait."""
    workers = _watch_workers()
    return _callbacks.watch() or workers


def _watch_needed() -> None:
    """Work or callbacks wait for a busy thread: make a timer thread watch them.

    A timer thread of any clock will do; if none runs, the system clock's
    starts (with nothing scheduled it ends once nothing waits).
    """
    with _guard:
        alive = [timer for timer in _timers.values() if timer.thread is not None]
        if not alive:
            timer = _timers.get(SystemClock)
            if timer is None:
                timer = _timers[SystemClock] = _Timer(SystemClock, SystemClock())
            timer.start()
        elif not _watching.polling:
            for timer in alive:
                timer.wakeup.set()


def _calm() -> None:
    """A queue was emptied: let a polling timer go back to waiting for its clock."""
    if _watching.polling:
        with _guard:
            for timer in _timers.values():
                timer.wakeup.set()


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
    _pool.kept = _pool.extra = _pool.idle = 0
    _watching.polling = False
    _callbacks = _Callbacks()


os.register_at_fork(after_in_child=_after_fork_in_child)


def threads() -> list[threading.Thread]:
    """The scheduler's threads now alive (for tests and benchmarks)."""
    return [t for t in threading.enumerate() if t.name.startswith(_THREAD_NAMES)]
