"""Renewing the auto-renewed ``AsyncLock`` holdings of one store together (the asyncio driver).

The asyncio twin of :mod:`mongoelector._sync.batches`: every
:class:`~mongoelector.aio.renewer.AsyncRenewer` whose backend renews in
batches belongs, while it runs, to the :class:`AsyncRenewGroup` of its event
loop, backend object and clock, and so does every started
:class:`~mongoelector.aio.AsyncLeaderElector` of such a backend (while it
leads, its next poll is a renewal of its lease, made in the same batches).
When one renewer's renewal falls due, the group asks the pure
:func:`~mongoelector.core.batching.renew_together` which of the others
(waiting for their own time) join it, takes each joiner's step from its own
rules, and makes one ``renew_many`` call (one plain ``renew`` when nobody
joined) in a task of its own, so that cancelling one renewer never cancels the
call the others wait for. Each renewer then gets its own outcome, exactly as
from its own ``renew``, and carries on in its own task: its listeners, its
loss, its ``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Protocol

from mongoelector._common.batches import (
    Outcome,
    Timings,
    failed_batch,
    outcomes_of,
    plan_calls,
)
from mongoelector.aio.groups import MemberGroup, Registry
from mongoelector.backends.async_protocol import AsyncRenewManyBackend
from mongoelector.backends.protocol import RenewItem
from mongoelector.clock import Clock
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost

__all__ = ["AsyncRenewGroup", "AsyncRenewer", "Joined", "enter", "groups"]

logger = logging.getLogger("mongoelector.lock")

#: What a renewer that joined a batch is handed: its step, when the call was sent and
#: answered, and its outcome; or the verdict its rules gave instead of a step (lost, ended).
Joined = tuple[Renew, float, float, Outcome] | Lost | Ended


class Rules(Timings, Protocol):
    """What a group asks a member's holding: when it is due, and whether to renew it now."""

    def renew_now(self) -> Renew | Lost | Ended: ...


class AsyncRenewer(Protocol):
    """A member of an :class:`AsyncRenewGroup`: a lock's
    :class:`~mongoelector.aio.renewer.AsyncRenewer`, or a started elector's loop while it
    leads (:mod:`mongoelector.aio.elector`).

    A joiner (:meth:`_may_join` said it might) is taken out of its wait by
    :meth:`_summon`, and awaits the future it returns; the group asks
    :meth:`_may_go_on` and its rules' ``renew_now`` again as the call goes out.
    """

    @property
    def _rules(self) -> Rules: ...

    def _may_join(self, now: float) -> bool: ...

    def _summon(self) -> asyncio.Future[Joined] | None: ...

    def _may_go_on(self) -> bool: ...

    def _renew(self, step: Renew) -> Awaitable[Outcome]: ...

    def _renew_item(self, step: Renew) -> RenewItem: ...


#: One holding of a batch: its renewer, its step, and the future its outcome goes to.
Entry = tuple[AsyncRenewer, Renew, "asyncio.Future[Joined]"]


class AsyncRenewGroup(MemberGroup[AsyncRenewer, AsyncRenewManyBackend]):
    """The renewers of one backend object and clock on one event loop, which renew together."""

    async def renew(
        self, trigger: AsyncRenewer, step: Renew
    ) -> tuple[float, float, Outcome] | Lost | Ended:
        """Renew ``trigger`` (whose ``step`` is due) with the members that join it.

        Returns when the call was sent and answered, and ``trigger``'s outcome; or,
        when nothing was sent for ``trigger``, why: :class:`Ended` (stopped before the
        call went out) or :class:`Lost` (its renew deadline passed meanwhile, reported
        by nobody else). The joiners are handed theirs (:data:`Joined`) through the
        future each awaits.
        """
        calls = plan_calls(trigger, list(self._members), self.clock.monotonic())
        mine: asyncio.Future[Joined] = asyncio.get_running_loop().create_future()
        for number, call in enumerate(calls):
            batch: list[Entry] = [(trigger, step, mine)] if number == 0 else []
            for member in call:
                joined = member._summon()
                if joined is None:
                    continue
                verdict = member._rules.renew_now()  # its own rules, ahead of its own time
                if isinstance(verdict, Renew):
                    batch.append((member, verdict, joined))
                else:
                    joined.set_result(verdict)  # it reports that itself
            if batch:
                self._start(self._call(batch), f"mongoelector-batch-of-{len(batch)}-renewals")
        joined_result = await asyncio.shield(mine)
        if isinstance(joined_result, (Lost, Ended)):
            return joined_result  # nothing was sent for it
        _, started_at, answered_at, outcome = joined_result
        return started_at, answered_at, outcome

    async def _call(self, batch: list[Entry]) -> None:
        """One store call for ``batch``; each future gets its holding's outcome.

        As the call goes out, each holding is asked again, as the sync group asks
        each on its worker: one whose renewer was stopped since it joined (its lock
        released, its holding replaced) gets :class:`Ended`, one whose renew deadline
        passed meanwhile gets its :class:`Lost`, one whose task was cancelled stays
        cancelled; nothing is sent for them.
        """
        try:
            for renewer, step, future in batch:
                if future.done():
                    continue
                if not renewer._may_go_on():
                    future.set_result(Ended(token=step.token))
                    continue
                verdict = renewer._rules.renew_now()  # its deadline, as the call goes out
                if not isinstance(verdict, Renew):
                    future.set_result(verdict)
            batch = [entry for entry in batch if not entry[2].done()]
            if not batch:
                return
            started_at = self.clock.monotonic()
            if len(batch) == 1:  # nobody joined: the store's own one-key call
                renewer, step, _ = batch[0]
                outcomes = [await renewer._renew(step)]
            else:
                outcomes = await self._renew_many(batch)
            answered_at = self.clock.monotonic()  # each holding learns the call's round trip
            for (_, step, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result((step, started_at, answered_at, outcome))
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                logger.exception("a batch of %d renewals crashed", len(batch))
            for _, _, future in batch:
                if not future.done():
                    future.cancel()  # its renewer ends: the holding lapses at its deadline
            if isinstance(error, asyncio.CancelledError):
                raise

    async def _renew_many(self, batch: list[Entry]) -> list[Outcome]:
        items: list[RenewItem] = [renewer._renew_item(step) for renewer, step, _ in batch]
        try:
            records = await self.backend.renew_many(items)
        except Exception as error:
            return failed_batch(self.backend, len(items), error)
        return outcomes_of(self.backend, len(items), records)

    def __repr__(self) -> str:
        return f"AsyncRenewGroup({self.backend!r}, members={len(self)})"


def enter(renewer: AsyncRenewer, backend: AsyncRenewManyBackend, clock: Clock) -> AsyncRenewGroup:
    """Add ``renewer`` to the group of the running loop, ``backend``'s store and ``clock``.

    The store is the backend object, or the backend an ``InlineBackend`` wraps
    (:meth:`~mongoelector.aio.groups.Registry.enter`). The renewer leaves when its task
    is done (:meth:`AsyncRenewGroup.leave`).
    """
    return _registry.enter(
        renewer,
        backend,
        clock,
        lambda key, loop: AsyncRenewGroup(_registry, key, backend, clock, loop),
    )


_registry: Registry[AsyncRenewGroup] = Registry()


def groups(loop: asyncio.AbstractEventLoop | None = None) -> list[AsyncRenewGroup]:
    """The groups with members now, of ``loop`` (every live loop's when ``None``); for tests
    and benchmarks."""
    return _registry.snapshot(loop)
