"""User callbacks waiting their turn, run one at a time outside every elector lock (no I/O).

An elector decides under its poll lock which callbacks an event calls for,
and queues them there; it runs them only after letting the lock go. Whoever
queued callbacks (the loop, or a caller of ``poll()``, ``release()`` or
``stop()``) then tries to become the queue's *runner*: if no one else runs
this elector's callbacks it runs them itself, in order, until the queue is
empty; if someone does (another thread or task, or the caller itself, from
inside a callback) it returns at once and leaves them to that runner. So no
elector call ever waits for a user callback, callbacks never run two at a
time, and each runs once, in the order its event happened.

The queue is driver-neutral: a runner is any object (a thread, a task).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["CallbackQueue", "Kind", "Pending"]


class Kind(enum.Enum):
    """What a queued callback announces, which decides whether it is still due at its turn."""

    LEADER = "on_leader"
    LOSS = "on_leader_loss"
    NEW_LEADER = "on_new_leader"
    LOOP = "on_loop"
    #: A monitor report (log line, event listeners) that waits its turn among the callbacks.
    EVENT = "event listeners"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A callback waiting its turn: ``callback(*args)``, about term ``token`` if any."""

    kind: Kind
    callback: Callable[..., Any] | None
    args: tuple[Any, ...] = ()
    token: int | None = None

    @property
    def name(self) -> str:
        return self.kind.value


class CallbackQueue:
    """Pending callbacks in order, and the one runner allowed to take them. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A list, not a deque: it is short, and a deque's first block costs every elector
        # and lock over 600 bytes.
        self._pending: list[Pending] = []
        self._runner: object | None = None

    def put(self, calls: Iterable[Pending]) -> None:
        """Queue ``calls`` after every callback already waiting."""
        with self._lock:
            self._pending.extend(calls)

    def claim(self, runner: object) -> bool:
        """Make ``runner`` the runner if there is none; ``False`` if one (maybe it) runs already."""
        with self._lock:
            if self._runner is not None:
                return False
            self._runner = runner
            return True

    def take(self, runner: object) -> Pending | None:
        """The next callback for ``runner``; ``None`` once empty, and ``runner`` then stops running.

        Emptiness and giving up the turn are decided together, so a callback
        queued by someone who found ``runner`` at work is never left behind.
        """
        with self._lock:
            if self._runner is not runner:
                return None
            if self._pending:
                return self._pending.pop(0)
            self._runner = None
            return None

    def give_up(self, runner: object) -> None:
        """``runner`` stops running callbacks (interrupted); the rest wait for the next runner."""
        with self._lock:
            if self._runner is runner:
                self._runner = None

    def waiting(self) -> bool:
        """True if callbacks wait to be taken."""
        with self._lock:
            return bool(self._pending)

    def busy(self) -> bool:
        """True while callbacks wait or a runner runs them."""
        with self._lock:
            return bool(self._pending) or self._runner is not None

    def runs_in(self, runner: object) -> bool:
        """True while ``runner`` is the one running callbacks."""
        with self._lock:
            return self._runner is runner
