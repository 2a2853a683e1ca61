"""The asyncio task that keeps one lock holding alive (``AsyncLock(auto_renew=True)``).

The task runs the pure :class:`~mongoelector.core.renewal.Renewal` rules (as
the sync renewer thread does, through
:class:`~mongoelector._common.renewing.RenewalRules`): it renews when they say
so, waits on the lock's clock in between (under a
:class:`~mongoelector.testing.FakeClock` it sleeps until a test advances the
clock), and ends when the holding is released, replaced or lost, or when the
task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from mongoelector._common.outcomes import Failure
from mongoelector._common.renewing import RenewalRules
from mongoelector.aio._time import wait_until
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.clock import Clock
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, SleepUntil

__all__ = ["AsyncRenewer"]

logger = logging.getLogger("mongoelector.lock")

AsyncRenewCall = Callable[[Renew], Awaitable[LeaseRecord | Failure | None]]


class AsyncRenewer:
    """Renews one holding of lock ``key`` in an asyncio task until it is lost or ended.

    The task is named ``mongoelector-renew-<key>``. ``renew`` performs a
    ``Renew`` action; ``on_lost`` is awaited once, in the task, if the holding
    is lost. ``mutex`` guards the keeper behind ``renewal`` (the lock's); it is
    never held across an ``await``.
    """

    def __init__(
        self,
        *,
        key: str,
        clock: Clock,
        mutex: threading.RLock,
        renewal: Renewal,
        renew: AsyncRenewCall,
        on_lost: Callable[[Lost], Awaitable[None]],
    ) -> None:
        self._clock = clock
        self._rules = RenewalRules(key=key, clock=clock, mutex=mutex, renewal=renewal)
        self._renew = renew
        self._on_lost = on_lost
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mongoelector-renew-{key}"
        )

    @property
    def task(self) -> asyncio.Task[None]:
        return self._task

    def request_stop(self) -> None:
        """Ask the task to end: at once if it waits, after its store call if one is in flight."""
        self._stopping = True
        self._wakeup.set()

    async def stop(self) -> None:
        """End the task and wait until it has (unless called from the task itself).

        An in-flight store call is allowed to finish first; its reply is
        ignored if the holding has ended meanwhile. Cancelling the caller
        leaves the task to end on its own.
        """
        self.request_stop()
        if self._task is not asyncio.current_task():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            logger.info("renewer of lock %r cancelled; the holding will lapse", self._rules.key)
            raise
        except Exception:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._rules.key)

    async def _loop(self) -> None:
        while not self._stopping:
            step = self._rules.next_step()
            if isinstance(step, Ended):
                return
            if isinstance(step, SleepUntil):
                await wait_until(self._clock, step.until, self._wakeup)
                self._wakeup.clear()
                continue
            lost = step if isinstance(step, Lost) else await self._renew_once(step)
            if lost is not None:
                await self._on_lost(lost)
                return

    async def _renew_once(self, action: Renew) -> Lost | None:
        started_at = self._clock.monotonic()
        return self._rules.renewed(action, started_at, await self._renew(action))

    def __repr__(self) -> str:
        return (
            f"AsyncRenewer(key={self._rules.key!r}, token={self._rules.renewal.token}, "
            f"done={self._task.done()})"
        )
