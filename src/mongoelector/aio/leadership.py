"""``AsyncLeaderElector.leadership()``: an ``async with`` block cancelled when leadership ends.

On entry the scope waits for (or refuses) a term. Inside, it cancels the task
running the block as soon as the term is over: at once when the elector
reports the loss (before the elector releases the lease or runs
``on_leader_loss``), and from a small watcher task sleeping on the elector's
clock until the term's renew deadline, in case the elector's loop is stuck in
a store call. On the way out the scope turns that cancellation into
:class:`~mongoelector.errors.LockLost` on the way out, the way
``asyncio.timeout`` turns its cancellation into ``TimeoutError``. A
cancellation coming from elsewhere passes through untouched.
"""

from __future__ import annotations

import asyncio
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
from mongoelector.aio._time import wait_until

__all__ = ["AsyncLeadership", "AsyncLeadershipTerm", "AsyncLostFlag"]


async def _wait(elector: ElectorBase[Any], deadline: float, wake: asyncio.Event) -> None:
    await wait_until(elector.clock, deadline, wake)
    wake.clear()


class AsyncLostFlag(LostFlagBase):
    """Set once the term is over, like an :class:`asyncio.Event` (``is_set``, ``await wait()``)."""

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait on the elector's clock until the term is over; ``False`` after ``timeout`` s."""
        end = self._end_of_wait(timeout)
        wake = asyncio.Event()
        with self._elector._listening(wake.set):
            while not self.is_set():
                if (wake_at := self._next_wake(end)) is None:
                    return False
                await _wait(self._elector, wake_at, wake)
            return True


class AsyncLeadershipTerm(TermBase[AsyncLostFlag]):
    """One term of this node's leadership; the block is cancelled when it ends."""


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Withdraw one cancellation request; how many remain (always 0 before Python 3.11)."""
    uncancel = getattr(task, "uncancel", None)
    return int(uncancel()) if uncancel is not None else 0


class AsyncLeadership:
    """The async context manager that :meth:`AsyncLeaderElector.leadership` returns (use once)."""

    def __init__(self, elector: ElectorBase[Any], timeout: float | None) -> None:
        self._elector = elector
        self._timeout = check_timeout(timeout)
        self._state: TermState | None = None
        self._body: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._cancelled_body = False

    async def __aenter__(self) -> AsyncLeadershipTerm:
        if self._state is not None:
            raise RuntimeError("a leadership() scope can be entered only once; call it again")
        elector = self._elector
        deadline = entry_deadline(elector, self._timeout)
        wake = asyncio.Event()
        with elector._listening(wake.set):
            while (token := entry_token(elector, deadline, self._timeout)) is None:
                await _wait(elector, deadline, wake)
        body = asyncio.current_task()
        assert body is not None
        self._state = state = TermState(elector, token)
        self._body = body
        elector._add_listener(self._check)
        self._watcher = asyncio.create_task(
            self._watch(state), name=f"mongoelector-{elector.key}-term-{token}"
        )
        return AsyncLeadershipTerm(state, AsyncLostFlag(state, elector))

    def _check(self) -> None:
        """Cancel the block as soon as its term is over (once).

        Called by the elector whenever leadership may have changed, so a loss
        it reports cancels the block before the elector goes on (to release
        the lease, or to run ``on_leader_loss``); and by the watcher at the
        term's deadline, in case the elector is stuck.
        """
        state, body = self._state, self._body
        assert state is not None and body is not None
        if not self._cancelled_body and state.loss() is not None:
            self._cancelled_body = True
            body.cancel()

    async def _watch(self, state: TermState) -> None:
        wake = asyncio.Event()
        with self._elector._listening(wake.set):
            while state.loss() is None:
                await _wait(self._elector, state.next_check(), wake)
        self._check()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        state, body, watcher = self._state, self._body, self._watcher
        assert state is not None and body is not None and watcher is not None
        self._elector._remove_listener(self._check)
        watcher.cancel()
        if self._cancelled_body:
            if _uncancel(body) > 0 and exc_type is asyncio.CancelledError:
                return False  # cancelled from outside as well: let that through
            if exc_type is None or exc_type is asyncio.CancelledError:
                raise state.lost_error() from None
            return False
        if exc_type is None and state.loss() is not None:
            raise state.lost_error()
        return False
