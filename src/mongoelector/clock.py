"""The clock interface every component reads time through, and the real clock.

Nothing in mongoelector reads the system time or sleeps except
:class:`SystemClock`. Tests pass :class:`mongoelector.testing.FakeClock`
instead, which satisfies the same :class:`Clock` protocol.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of wall time and monotonic time, and a way to wait on it."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences matter."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass before returning."""
        ...

    def wait_until(self, deadline: float, wakeup: threading.Event) -> bool:
        """Block until ``monotonic() >= deadline`` or ``wakeup`` is set.

        Returns ``True`` if ``wakeup`` was set. The event may also be set by the
        clock itself to wake the waiter; callers clear it after waking.
        """
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and the system's UTC wall time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    #: ``time.monotonic`` itself, called without a frame of ours: a lock pair reads it
    #: six times (see ``Clock.monotonic``).
    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait_until(self, deadline: float, wakeup: threading.Event) -> bool:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return wakeup.is_set()
            if wakeup.wait(remaining):
                return True

    def __repr__(self) -> str:
        return "SystemClock()"
