"""The asyncio task that keeps one lock holding alive (``AsyncLock(auto_renew=True)``).

The task runs the pure :class:`~mongoelector.core.renewal.Renewal` rules (as
the sync renewer does on the process scheduler; this one is a task of the running
event loop, no thread), through
:class:`~mongoelector._common.renewing.RenewalRules`): it renews when they say
so, waits on the lock's clock in between (under a
:class:`~mongoelector.testing.FakeClock` it sleeps until a test advances the
clock), and ends when the holding is released, replaced or lost, or when the
task is cancelled. A stop awaits the renewer's own work (an in-flight renew),
never a user callback the task is running (``on_lost``): that callback may be
waiting for the task that stops it (the rules are
:class:`~mongoelector._common.renewing.StopControl`'s, as for the thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable
from typing import Protocol

from mongoelector import _identity
from mongoelector._common.outcomes import Failure
from mongoelector._common.renewing import RenewalRules, StopControl
from mongoelector.aio import batches
from mongoelector.aio._time import wait_until
from mongoelector.backends.async_protocol import AsyncRenewManyBackend
from mongoelector.backends.protocol import LeaseRecord, RenewItem
from mongoelector.clock import Clock
from mongoelector.core.batching import JOIN_FRACTION
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, SleepUntil

__all__ = ["AsyncRenewer"]

logger = logging.getLogger("mongoelector.lock")


class AsyncHolder(Protocol):
    """What a renewer asks of the lock whose holding it keeps: the lock's own methods
    (one reference, not a bound method or ``functools.partial`` per call)."""

    def _renew(self, action: Renew) -> Awaitable[LeaseRecord | Failure | None]: ...

    def _renew_outcome(
        self,
        token: int,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float | None = None,
    ) -> None: ...

    def _record_loss(self, renewal: Renewal, lost: Lost) -> bool: ...

    def _renewer_lost(self, renewal: Renewal, lost: Lost) -> Awaitable[None]: ...


class AsyncRenewer:
    """Renews one holding of lock ``key`` in an asyncio task until it is lost or ended.

    The task is named ``mongoelector-renew-<key>``. ``holder`` is the lock:
    its ``_renew`` performs a ``Renew`` action (the store call alone); its
    ``_renew_outcome(token, started_at, outcome, answered_at)`` then tells the
    lock's listeners, unless the renewer was stopped meanwhile. If the holding
    is lost, its ``_record_loss(renewal, lost)`` records it (no user code;
    ``False`` if it was no longer the lock's latest holding) and
    ``_renewer_lost(renewal, lost)`` is awaited once, in the task. ``mutex``
    guards the keeper behind ``renewal`` (the lock's); it is never held across
    an ``await``.

    With ``batch_with`` (the lock's backend, when it renews in batches), and
    ``owner`` and ``ttl`` (what the lock's renewals send), the renewer
    belongs to that backend's :class:`~mongoelector.aio.batches.AsyncRenewGroup`
    on the running loop: its renewals go out together with those of the
    other holdings of that store that fall due soon (``renew_many``), and
    each outcome comes back to it as its own ``renew``'s would.
    """

    def __init__(
        self,
        *,
        key: str,
        clock: Clock,
        mutex: threading.RLock,
        renewal: Renewal,
        holder: AsyncHolder,
        batch_with: AsyncRenewManyBackend | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> None:
        if batch_with is not None and (owner is None or ttl is None):
            raise TypeError("batch_with needs the owner and ttl of the renewals")
        self._clock = clock
        self._rules = RenewalRules(key=key, clock=clock, mutex=mutex, renewal=renewal)
        self._holder = holder
        self._wakeup = asyncio.Event()
        self._control = StopControl()
        self._forks = _identity.forks  # a copy in a forked child renews nothing
        self._in_callbacks = asyncio.Event()
        self._key = key
        self._owner = owner  # with ttl, what a renewal sends besides key and token
        self._ttl = ttl
        self._sleeping_until: float | None = None  # while it waits for its own time
        self._summoned: asyncio.Future[batches.Joined] | None = None  # a batch took it
        self._group = batches.enter(self, batch_with, clock) if batch_with is not None else None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mongoelector-renew-{key}"
        )
        if self._group is not None:  # also when cancelled before it ever ran
            self._task.add_done_callback(lambda _: self._left())

    @property
    def task(self) -> asyncio.Task[None]:
        return self._task

    def request_stop(self) -> None:
        """Ask the task to end: at once if it waits, after its store call if one is in flight."""
        self._control.request_stop()
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop renewing: no store call of this renewer is in flight or starts after it returns.

        Awaits an in-flight renew (its reply is then ignored) and the recording
        of a loss the task found, never a user callback: if the task is
        awaiting ``on_lost``, it is left to finish it and then ends. Otherwise
        the task has ended when this returns. From the task itself (from
        ``on_lost``) it only asks; cancelling the caller leaves the task to end
        on its own.
        """
        self.request_stop()
        if self._task is asyncio.current_task():
            return
        while not (self._control.settled() or self._task.done()):
            entered = asyncio.ensure_future(self._in_callbacks.wait())
            try:
                await asyncio.wait({self._task, entered}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                entered.cancel()

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            logger.info("renewer of lock %r cancelled; the holding will lapse", self._rules.key)
            raise
        except Exception:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._rules.key)
        finally:
            self._control.finish()

    def _may_go_on(self) -> bool:
        """Whether to renew on: not stopped, and not a copy in a forked child (whose loop
        may go on running this task: the holding is the parent's)."""
        return self._control.may_go_on() and self._forks == _identity.forks

    async def _loop(self) -> None:
        while self._may_go_on():
            step = self._rules.next_step()
            if isinstance(step, Ended):
                return
            if isinstance(step, Lost):
                await self._lost(step)
                return
            if isinstance(step, SleepUntil):
                self._sleeping_until = step.until
                try:
                    await wait_until(self._clock, step.until, self._wakeup)
                finally:
                    self._sleeping_until = None
                self._wakeup.clear()
                summoned, self._summoned = self._summoned, None
                if summoned is not None and not await self._joined(summoned):
                    return
                continue
            if self._group is not None:
                renewed = await self._group.renew(self, step)
                if isinstance(renewed, Ended):
                    return  # stopped before the batch's call went out: nothing was sent
                if isinstance(renewed, Lost):
                    await self._lost(renewed)  # its deadline passed before the call went out
                    return
                started_at, answered_at, outcome = renewed
            else:
                started_at = self._clock.monotonic()
                outcome = await self._renew(step)
                answered_at = self._clock.monotonic()
            if not await self._renewed(step, started_at, outcome, answered_at):
                return

    async def _renewed(
        self,
        step: Renew,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float,
    ) -> bool:
        """Feed back what ``step``, sent at ``started_at`` and answered at ``answered_at``,
        came back with; whether to go on."""
        if not self._control.may_go_on():
            return False  # stopped meanwhile: the reply is ignored
        self._holder._renew_outcome(step.token, started_at, outcome, answered_at)  # plain calls
        lost = self._rules.renewed(step, started_at, outcome)
        if lost is not None:
            await self._lost(lost)
            return False
        return True

    # --- in a batch (see mongoelector.aio.batches) ---------------------------------------

    def _may_join(self, now: float) -> bool:
        """Whether the renewer waits for its own time, due soon enough to join a batch."""
        until = self._sleeping_until
        return (
            until is not None
            and self._summoned is None
            and self._may_go_on()
            and until <= now + self._rules.renewal.renew_interval * JOIN_FRACTION
        )

    def _summon(self) -> asyncio.Future[batches.Joined] | None:
        """Take the renewer out of its wait into a batch; the future its outcome goes to
        (``None`` if it no longer waits)."""
        if self._sleeping_until is None or self._summoned is not None:
            return None
        if not self._may_go_on():
            return None
        self._summoned = asyncio.get_running_loop().create_future()
        self._wakeup.set()
        return self._summoned

    async def _joined(self, summoned: asyncio.Future[batches.Joined]) -> bool:
        """Await the batch this renewer joined, and carry on with its outcome; whether to
        go on. Awaited even once stopped: its renewal may be in flight."""
        joined = await summoned
        if isinstance(joined, Ended):
            return False
        if isinstance(joined, Lost):
            await self._lost(joined)
            return False
        step, started_at, answered_at, outcome = joined
        return await self._renewed(step, started_at, outcome, answered_at)

    def _left(self) -> None:
        if self._group is not None:
            self._group.leave(self)

    def _renew_item(self, step: Renew) -> RenewItem:
        """``step`` as one item of a ``renew_many`` batch (what the lock's ``renew`` sends)."""
        assert self._owner is not None and self._ttl is not None
        return RenewItem(key=self._key, owner=self._owner, token=step.token, ttl=self._ttl)

    # --- the lock's side: what the holding's calls and losses go to ---------------------

    async def _renew(self, step: Renew) -> LeaseRecord | Failure | None:
        """The store call of ``step`` alone (the lock's ``_renew``)."""
        return await self._holder._renew(step)

    def _record_loss(self, lost: Lost) -> bool:
        """Record the loss (no user code); ``False`` if no longer the lock's latest holding."""
        return self._holder._record_loss(self._rules.renewal, lost)

    async def _report_loss(self, lost: Lost) -> None:
        """Tell the listeners about a recorded loss and await ``on_lost``."""
        await self._holder._renewer_lost(self._rules.renewal, lost)

    async def _lost(self, lost: Lost) -> None:
        if not self._record_loss(lost):
            return
        self._control.enter_callbacks()
        self._in_callbacks.set()
        try:
            await self._report_loss(lost)
        finally:
            self._in_callbacks.clear()
            self._control.leave_callbacks()

    def __repr__(self) -> str:
        return (
            f"AsyncRenewer(key={self._rules.key!r}, token={self._rules.renewal.token}, "
            f"done={self._task.done()})"
        )
