"""A lock with the waiting of ``threading.Condition``, whose condition exists only while
someone waits.

A ``threading.Condition`` costs about 2 KB (a waiter deque and an instance
dict holding five bound methods of its lock); a process with a thousand
started electors would keep a thousand of them, nearly always with nobody
waiting. :class:`Guard` is a plain ``threading.Lock`` plus a condition made by
the first waiter and dropped by the last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Guard"]


class Guard:
    """Used as ``threading.Condition(threading.Lock())`` is: ``with guard:``, then
    :meth:`wait_for` and :meth:`notify_all` while holding it.

    Promises what the condition does: a waiter returns once ``predicate()``
    (checked under the lock) holds, after a :meth:`notify_all` made under the
    lock since it began waiting (or ``False`` once ``timeout`` real seconds
    passed). Every waiter of a guard waits on the same condition: it is made
    and dropped under the lock, so a :meth:`notify_all` never misses one.
    """

    __slots__ = ("_condition", "_lock", "_waiting")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._condition: threading.Condition | None = None
        self._waiting = 0

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Under the lock: wait until ``predicate()`` holds; ``False`` if ``timeout`` real
        seconds passed first (the predicate's last value, as ``Condition.wait_for``)."""
        if predicate():
            return True
        condition = self._condition
        if condition is None:
            condition = self._condition = threading.Condition(self._lock)
        self._waiting += 1
        try:
            return condition.wait_for(predicate, timeout)
        finally:  # the lock is held again here, even if the wait raised
            self._waiting -= 1
            if self._waiting == 0:
                self._condition = None

    def notify_all(self) -> None:
        """Under the lock: wake every waiter (nothing to do if nobody waits)."""
        condition = self._condition
        if condition is not None:
            condition.notify_all()

    @property
    def has_condition(self) -> bool:
        """Whether a condition exists now (only while someone waits)."""
        return self._condition is not None
