"""Reading the records of the following ``AsyncLeaderElector``s of one store together.

The asyncio twin of :mod:`mongoelector._sync.reads`: the started electors of a
store that reads many keys in one call (``Capability.GET_MANY``) belong, while
their loop runs, to the :class:`AsyncReadGroup` of their event loop, store and
clock. When one follower's poll falls due, the group asks the pure
:func:`~mongoelector.core.batching.renew_together` which other followers
(waiting for their own time, due within half their ``follower_period``) join
it, wakes them, and reads all their records with one ``get_many`` and then the
store's time, in a task of its own (cancelling one elector never cancels the
read the others wait for). Each elector's machine then decides on its own
record whether to try (``compare_and_set``, its own call); a live leader is
noted as a refused try would report it. A follower nobody joins tries on its
own, as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from mongoelector._common.batches import Observed, observed_of
from mongoelector._common.outcomes import Failure, failure_of
from mongoelector.aio.groups import MemberGroup, Registry
from mongoelector.backends.async_protocol import AsyncGetManyBackend, AsyncStorageBackend
from mongoelector.clock import Clock
from mongoelector.core import batching
from mongoelector.core.batching import RenewTiming

__all__ = ["AsyncReadGroup", "AsyncReader", "Read", "enter", "groups"]

logger = logging.getLogger("mongoelector.elector")

#: What a follower's read came back with: when it was sent, and the record with the
#: store's time after it, or the failure.
Read = tuple[float, Observed | Failure]


class _Store(AsyncStorageBackend, AsyncGetManyBackend, Protocol):
    """An async store that reads many keys in one call."""


class AsyncReader(Protocol):
    """A member of an :class:`AsyncReadGroup`: a started elector's loop.

    A joiner (:meth:`_may_join_read` said it might) is woken by :meth:`_summon_read`
    and awaits the future it returns for its :data:`Read`.
    """

    @property
    def key(self) -> str: ...

    def read_timing(self, now: float | None = None) -> RenewTiming | None: ...

    def _may_join_read(self, now: float) -> bool: ...

    def _summon_read(self) -> asyncio.Future[Read] | None: ...


Entry = tuple[AsyncReader, "asyncio.Future[Read]"]


class AsyncReadGroup(MemberGroup[AsyncReader, _Store]):
    """The electors of one store and clock on one event loop, whose follower polls read
    their records together."""

    def gather(self, trigger: AsyncReader) -> asyncio.Future[Read] | None:
        """Start reading ``trigger``'s record with those of the followers that join it; the
        future of ``trigger``'s :data:`Read`. ``None`` (nothing started) if ``trigger`` would
        not read first or nobody joins it: it then tries on its own."""
        now = self.clock.monotonic()
        timing = trigger.read_timing(now)
        if timing is None:
            return None
        candidates = []
        for member in self._members:
            if member is trigger or not member._may_join_read(now):
                continue
            joining = member.read_timing(now)
            if joining is not None:
                candidates.append((member, joining))
        calls = batching.renew_together(now, timing, candidates)
        if calls == [[]]:
            return None
        mine: asyncio.Future[Read] = asyncio.get_running_loop().create_future()
        for number, call in enumerate(calls):
            batch: list[Entry] = [(trigger, mine)] if number == 0 else []
            for member in call:
                summoned = member._summon_read()
                if summoned is not None:
                    batch.append((member, summoned))
            if batch:
                self._start(self._call(batch), f"mongoelector-batch-of-{len(batch)}-reads")
        return mine

    async def _call(self, batch: list[Entry]) -> None:
        """One read for ``batch``; each future gets its follower's :data:`Read`."""
        try:
            batch = [entry for entry in batch if not entry[1].done()]  # cancelled: nothing
            if not batch:
                return
            keys = [reader.key for reader, _ in batch]
            started_at = self.clock.monotonic()
            outcomes = await self._read(keys)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result((started_at, outcome))
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                logger.exception("a batch of %d follower reads crashed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.cancel()
            if isinstance(error, asyncio.CancelledError):
                raise

    async def _read(self, keys: list[str]) -> list[Observed | Failure]:
        """One ``get`` (one key) or ``get_many``, then the store's time after it."""
        try:
            if len(keys) == 1:
                records: object = {keys[0]: await self.backend.get(keys[0])}
            else:
                records = await self.backend.get_many(keys)
            server_now = await self.backend.server_time()
        except Exception as error:
            return [failure_of(self.backend, error)] * len(keys)
        return observed_of(self.backend, keys, records, server_now)

    def __repr__(self) -> str:
        return f"AsyncReadGroup({self.backend!r}, members={len(self)})"


def enter(reader: AsyncReader, backend: AsyncStorageBackend, clock: Clock) -> AsyncReadGroup:
    """Add ``reader`` to the group of the running loop, ``backend``'s store and ``clock``."""
    return _registry.enter(
        reader,
        backend,
        clock,
        lambda key, loop: AsyncReadGroup(_registry, key, backend, clock, loop),  # type: ignore[arg-type]
    )


_registry: Registry[AsyncReadGroup] = Registry()


def groups(loop: asyncio.AbstractEventLoop | None = None) -> list[AsyncReadGroup]:
    """The groups with members now, of ``loop`` (every live loop's when ``None``)."""
    return _registry.snapshot(loop)
