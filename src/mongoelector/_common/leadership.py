"""Leadership as a scope: the decisions both drivers' ``leadership()`` share (no I/O).

Entering waits for a term (or refuses); inside, the term is valid while the
elector still leads with the term's fencing token, which it checks against
its own renew deadline, so a term ends on time even while the elector's loop
is stuck in a store call.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

from mongoelector._common.elector_base import ElectorBase
from mongoelector._validation import MAX_SECONDS, check_non_negative_seconds
from mongoelector.core.events import LossReason
from mongoelector.errors import AcquireTimeout, LockLost, NotLeader

__all__ = [
    "LostFlagBase",
    "TermBase",
    "TermState",
    "check_timeout",
    "entry_deadline",
    "entry_token",
]


def check_timeout(timeout: object) -> float | None:
    """``timeout`` if it is ``None`` or a number of seconds from zero to ``MAX_SECONDS``."""
    if timeout is None:
        return None
    return check_non_negative_seconds(timeout, name="timeout", most=MAX_SECONDS)


def entry_deadline(elector: ElectorBase[Any], timeout: float | None) -> float:
    """The monotonic time until which entering may wait (``inf`` for no ``timeout``)."""
    return math.inf if timeout is None else elector.clock.monotonic() + timeout


def entry_token(elector: ElectorBase[Any], deadline: float, timeout: float | None) -> int | None:
    """The token of the term to enter, or ``None`` to keep waiting.

    Raises :class:`NotLeader` if this node does not lead and its elector is not
    running (it could never become leader), and :class:`AcquireTimeout` once
    ``deadline`` has passed.
    """
    token = elector.token
    if token is not None:
        return token
    if not elector.running:
        raise NotLeader(
            f"this node does not lead {elector.key!r} and its elector is not running "
            f"(start() it, or poll() it until it leads, before entering leadership())"
        )
    if elector.clock.monotonic() >= deadline:
        raise AcquireTimeout(
            f"this node did not become leader of {elector.key!r} within timeout={timeout!r} seconds"
        )
    return None


class TermState:
    """One term of leadership as a scope sees it: valid while the elector leads with ``token``.

    Once over, it stays over; :meth:`loss` says why.
    """

    def __init__(self, elector: ElectorBase[Any], token: int) -> None:
        self._elector = elector
        self.token = token
        self._reason: LossReason | None = None

    def loss(self) -> LossReason | None:
        """Why the term is over, or ``None`` while it lasts (reads no store)."""
        reason = self._elector._term_loss(self.token)
        if reason is not None:
            self._reason = reason
        return self._reason

    def next_check(self) -> float:
        """The monotonic time at which the term ends unless the elector renews it first."""
        return self._elector._term_valid_until(self.token)

    def lost_error(self) -> LockLost:
        """The error that leaving a block whose term ended early raises."""
        reason = self.loss() or LossReason.DEADLINE
        return LockLost(
            f"leadership of {self._elector.key!r} (token {self.token}) ended before the block "
            f"did: {reason.value}"
        )


class LostFlagBase:
    """Set once the term is over: renew deadline passed, taken over, released or stopped.

    Reads no store: :meth:`is_set` turns true at the term's renew deadline
    even while the elector's loop waits on an unresponsive store. Drivers add
    a ``wait(timeout)`` that sleeps on the elector's clock.
    """

    def __init__(self, state: TermState, elector: ElectorBase[Any]) -> None:
        self._state = state
        self._elector = elector

    def is_set(self) -> bool:
        """True once the term is over."""
        return self._state.loss() is not None

    def _end_of_wait(self, timeout: float | None) -> float:
        timeout = check_timeout(timeout)
        return entry_deadline(self._elector, timeout)

    def _next_wake(self, end: float) -> float | None:
        """When a waiter must look again (``end`` at the latest); ``None`` to stop: timed out."""
        if self._elector.clock.monotonic() >= end:
            return None
        return min(end, self._state.next_check())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'set' if self.is_set() else 'unset'}>"


FlagT = TypeVar("FlagT", bound=LostFlagBase)


class TermBase(Generic[FlagT]):
    """One term of this node's leadership, as seen from inside a ``leadership()`` block."""

    def __init__(self, state: TermState, lost: FlagT) -> None:
        self._state = state
        self.lost = lost

    @property
    def token(self) -> int:
        """The term's fencing token: pass it with every write made under this leadership."""
        return self._state.token

    @property
    def reason(self) -> LossReason | None:
        """Why the term ended, ``None`` while it lasts."""
        return self._state.loss()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token={self.token}, reason={self.reason})"
