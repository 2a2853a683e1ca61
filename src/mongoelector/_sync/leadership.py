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
    TermState,
    check_timeout,
    entry_deadline,
    entry_token,
)
from mongoelector.clock import Clock
from mongoelector.core.events import LossReason

__all__ = ["Leadership", "LeadershipTerm", "LostFlag"]


def _wait(clock: Clock, deadline: float, wake: threading.Event) -> None:
    """Wait on ``clock`` until ``deadline`` or ``wake``; then clear ``wake``."""
    if math.isinf(deadline):
        wake.wait()
    else:
        clock.wait_until(deadline, wake)
    wake.clear()


class LostFlag:
    """Set once the term is over: renew deadline passed, taken over, released or stopped.

    Reads no store: :meth:`is_set` turns true at the term's renew deadline
    even while the elector's loop waits on an unresponsive store.
    """

    def __init__(self, state: TermState, elector: ElectorBase[Any]) -> None:
        self._state = state
        self._elector = elector

    def is_set(self) -> bool:
        """True once the term is over."""
        return self._state.loss() is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait on the elector's clock until the term is over; ``False`` after ``timeout`` s.

        Under a :class:`~mongoelector.testing.FakeClock` this waits for other
        threads to advance the clock, like a started elector does.
        """
        clock = self._elector.clock
        timeout = check_timeout(timeout)
        end = math.inf if timeout is None else clock.monotonic() + timeout
        wake = threading.Event()
        self._elector._add_listener(wake.set)
        try:
            while not self.is_set():
                if clock.monotonic() >= end:
                    return False
                _wait(clock, min(end, self._state.next_check()), wake)
            return True
        finally:
            self._elector._remove_listener(wake.set)

    def __repr__(self) -> str:
        return f"<LostFlag {'set' if self.is_set() else 'unset'}>"


class LeadershipTerm:
    """One term of this node's leadership, as seen from inside a ``leadership()`` block."""

    def __init__(self, state: TermState, elector: ElectorBase[Any]) -> None:
        self._state = state
        self.lost = LostFlag(state, elector)

    @property
    def token(self) -> int:
        """The term's fencing token: pass it with every write made under this leadership."""
        return self._state.token

    @property
    def reason(self) -> LossReason | None:
        """Why the term ended, ``None`` while it lasts."""
        return self._state.loss()

    def __repr__(self) -> str:
        return f"LeadershipTerm(token={self.token}, reason={self.reason})"


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
        elector._add_listener(wake.set)
        try:
            while (token := entry_token(elector, deadline, self._timeout)) is None:
                _wait(elector.clock, deadline, wake)
        finally:
            elector._remove_listener(wake.set)
        self._term = LeadershipTerm(TermState(elector, token), elector)
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
