"""``LeaderElector.leadership()``: a ``with`` block that runs only while this node leads.

A thread cannot be interrupted, so the block is told instead: ``term.lost``
behaves like a :class:`threading.Event` that becomes set when the term ends,
and the block checks it (or sleeps with ``term.lost.wait(seconds)``, which
wakes early when leadership ends). Leaving a block whose term ended raises
:class:`~mongoelector.errors.LockLost`.
"""

from __future__ import annotations

import math
import threading
from types import TracebackType
from typing import Any

from mongoelector._common.elector_base import ElectorBase
from mongoelector._common.leadership import (
    LostFlagBase,
    TermBase,
    TermState,
    check_timeout,
    entry_deadline,
    entry_token,
)
from mongoelector.clock import Clock

__all__ = ["Leadership", "LeadershipTerm", "LostFlag"]


def _wait(clock: Clock, deadline: float, wake: threading.Event) -> None:
    """Wait on ``clock`` until ``deadline`` or ``wake``; then clear ``wake``."""
    if math.isinf(deadline):
        wake.wait()
    else:
        clock.wait_until(deadline, wake)
    wake.clear()


class LostFlag(LostFlagBase):
    """Set once the term is over, like a :class:`threading.Event` (``is_set``, ``wait``)."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait on the elector's clock until the term is over; ``False`` after ``timeout`` s.

        Under a :class:`~mongoelector.testing.FakeClock` this waits for other
        threads to advance the clock, like a started elector does.
        """
        end = self._end_of_wait(timeout)
        wake = threading.Event()
        with self._elector._listening(wake.set):
            while not self.is_set():
                if (wake_at := self._next_wake(end)) is None:
                    return False
                _wait(self._elector.clock, wake_at, wake)
            return True


class LeadershipTerm(TermBase[LostFlag]):
    """One term of this node's leadership; ``lost`` is set when it ends."""


class Leadership:
    """The context manager that :meth:`LeaderElector.leadership` returns."""

    def __init__(self, elector: ElectorBase[Any], timeout: float | None) -> None:
        self._elector = elector
        self._timeout = check_timeout(timeout)
        self._term: LeadershipTerm | None = None

    def __enter__(self) -> LeadershipTerm:
        elector = self._elector
        deadline = entry_deadline(elector, self._timeout)
        wake = threading.Event()
        with elector._listening(wake.set):
            while (token := entry_token(elector, deadline, self._timeout)) is None:
                _wait(elector.clock, deadline, wake)
        state = TermState(elector, token)
        self._term = LeadershipTerm(state, LostFlag(state, elector))
        return self._term

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        term = self._term
        assert term is not None
        if exc_type is None and term.lost.is_set():
            raise term._state.lost_error()
