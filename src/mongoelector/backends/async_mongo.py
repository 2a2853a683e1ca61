"""``AsyncMongoBackend``: lease records in a MongoDB collection, through ``AsyncMongoClient``.

The asyncio twin of :class:`~mongoelector.backends.MongoBackend`: the same
plans (:mod:`mongoelector.backends._mongo`), so the same commands, documents,
write paths, retries, failure judgement and server-time estimate; only the
shell that performs each I/O step (:mod:`._mongo_async`) differs. The one-write
fast path of an uncontended acquire and of a release is ``MongoBackend``'s,
awaited: the same operations decide it, and any ``PyMongoError`` goes back to
the plan at that step; a cancellation propagates as on the plan path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import pymongo
from pymongo.errors import PyMongoError

from mongoelector.backends._mongo import plans
from mongoelector.backends._mongo.commands import FindAndModify
from mongoelector.backends._mongo.server_clock import ServerTimeEstimate
from mongoelector.backends._mongo.surface import MongoBackendBase
from mongoelector.backends._mongo_async import drive, perform
from mongoelector.backends.protocol import (
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)

__all__ = ["AsyncMongoBackend"]

T = TypeVar("T")


class AsyncMongoBackend(MongoBackendBase):
    """Lease records in ``database[collection]`` (an ``AsyncDatabase``), for asyncio code.

    Implements :class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`
    and :class:`~mongoelector.backends.async_protocol.AsyncMemberStatusBackend`
    and takes the arguments of :class:`~mongoelector.backends.MongoBackend`,
    with the same meaning and defaults (``pymongo.AsyncMongoClient(uri)["app"]``
    instead of ``MongoClient(uri)["app"]``); see that class for what each
    call sends and promises. ``acquire_check`` may also be a coroutine
    function. Pauses between retries wait on ``clock`` without blocking the
    event loop (under a :class:`~mongoelector.testing.FakeClock` they advance
    it). A cancelled call propagates ``CancelledError`` at once; its write may
    have applied, which :class:`~mongoelector.aio.AsyncLock` and
    :class:`~mongoelector.aio.AsyncLeaderElector` allow for.

    Use the backend from the event loop of its client (pymongo binds an
    ``AsyncMongoClient`` to one loop).
    """

    asynchronous: ClassVar[bool] = True

    async def _run(self, plan: plans.Plan[T]) -> T:
        return await drive(plan, self._perform)

    async def _perform(self, step: plans.Step) -> object:
        # ``_hello`` is looked up on each call, so that tests may replace it on the instance.
        return await perform(step, clock=self._clock, hello=self._hello)

    # --- time -------------------------------------------------------------------------

    async def _hello(self) -> Mapping[str, Any] | None:
        """The server's ``hello`` reply, or ``None`` if it does not implement it."""
        return await self._run(plans.hello(self._database))

    async def time_estimate(self) -> ServerTimeEstimate:
        """The server's current time and how far off it may be (see ``MongoBackend``)."""
        return await self._run(self._ops.time_estimate())

    async def server_time(self) -> datetime:
        return (await self.time_estimate()).time

    async def clock_offset(self) -> tuple[float, float] | None:
        """How far the server's clock is ahead of this host's, and the uncertainty (seconds).

        ``None`` if the server cannot tell its time. Always a fresh round trip.
        """
        return await self._run(self._ops.clock_offset())

    # --- the storage protocol ---------------------------------------------------------------

    async def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        # MongoBackend.compare_and_set with await (tests/test_one_source.py keeps them so).
        ops = self._ops
        quick = ops.quick_acquire(request, force)
        if quick is None:
            return await self._run(ops.compare_and_set(request, force))
        command = quick.command
        started = self._clock.monotonic()
        try:
            document = await self._send(command)
        except PyMongoError as error:
            return await self._run(ops.acquire_after(quick, started, error))
        return ops.quick_acquired(quick, document)

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return await self._run(self._ops.renew(key, owner, token, ttl))

    async def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return await self._run(self._ops.renew_many(items))

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        # MongoBackend.release with await (tests/test_one_source.py keeps them so).
        ops = self._ops
        command = ops.quick_release(key, owner, token, force)
        if command is None:
            return await self._run(ops.release(key, owner, token, force))
        started = self._clock.monotonic()
        try:
            before = await self._send(command)
        except PyMongoError as error:
            return await self._run(ops.release_after(key, command, started, error))
        released = ops.quick_released(key, before)
        if released is None:
            assert before is not None
            return await self._run(ops.released_at(key, before, started))
        return released

    async def _send(self, command: FindAndModify) -> Mapping[str, Any] | None:
        """Send the fast path's one ``findAndModify``, bounded as the plan's first step is
        (the whole budget, server selection included); errors are the caller's to hand on."""
        with pymongo.timeout(self._ops.first_bound()):
            document: Mapping[str, Any] | None = await self._leases.find_one_and_update(
                command.filter,
                command.update,
                upsert=command.upsert,
                return_document=command.return_new,
            )
        return document

    async def get(self, key: str) -> LeaseRecord | None:
        return await self._run(self._ops.get(key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return await self._run(self._ops.get_many(keys))

    # --- member status -------------------------------------------------------------------

    async def report_member(self, member: MemberRecord) -> None:
        await self._run(self._ops.report_member(member))

    async def report_members(self, members: Sequence[MemberRecord]) -> None:
        """Every report in one bulk write (see ``ReportManyBackend.report_members``)."""
        await self._run(self._ops.report_members(members))

    async def members(self, key: str) -> list[MemberRecord]:
        return await self._run(self._ops.members(key))
