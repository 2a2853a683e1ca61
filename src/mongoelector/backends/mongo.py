"""``MongoBackend``: lease records in a MongoDB collection, through pymongo's sync API.

Every operation is a plan of :mod:`mongoelector.backends._mongo` (shared with
:class:`~mongoelector.backends.AsyncMongoBackend`: the same commands, write
paths, retries, failure judgement and server-time estimate); this class only
runs the plans with the sync shell of :mod:`._mongo_sync`. The common case of
an acquire and of a release, one ``findAndModify``, is sent here without the
plan machinery: the operations say when that applies, what to send and what
the reply means, and any ``PyMongoError`` goes back to the plan at that step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pymongo
from pymongo.errors import PyMongoError

from mongoelector.backends._mongo import plans
from mongoelector.backends._mongo.commands import FindAndModify
from mongoelector.backends._mongo.server_clock import ServerTimeEstimate
from mongoelector.backends._mongo.surface import (
    DEFAULT_COLLECTION,
    DEFAULT_STATUS_COLLECTION,
    MongoBackendBase,
)
from mongoelector.backends._mongo_sync import drive, perform
from mongoelector.backends.protocol import (
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STATUS_COLLECTION", "MongoBackend"]

T = TypeVar("T")


class MongoBackend(MongoBackendBase):
    """Lease records in ``database[collection]``, one document per key (the 1.x layout).

    * Uncontended acquire, renew and release are one ``findAndModify`` each
      (after the first call, which also reads the server's clock and version
      and creates the indexes). On MongoDB 4.2+ the server judges expiry and
      stamps times with its own clock; elsewhere (mongomock, older servers)
      writes judge by the estimated server time with its uncertainty as a
      safety margin, and an acquire of a lease seen held (or not taken by its
      conditional upsert) reads, then compare-and-sets. ``pipeline`` forces
      one way (``None``: decide from the server's reply).
    * An acquire of a lease this backend last saw held by a live holder
      starts with a read, and a lease that is surely still held (even at the
      latest time the server's clock may show) is refused without a write
      command: a follower polling a live leader costs one read.
    * ``renew_many`` sends N renewals as one unordered bulk write (one
      ``update`` command), plus one ``find`` when the write cannot tell which
      were renewed (something was refused, the pipeline path's ``$$NOW``
      expiries, holdings not seen through this object); ``get_many`` is one
      ``find``. See ``docs/backends.md`` for the counts.
    * Lease writes use majority write concern; reads go to the primary.
    * Transient failures are retried for at most ``timeout`` seconds per call
      (the whole call, server selection included, is bounded by it); a call
      that may have applied is sent again with the same acquire id, so its
      own earlier success is recognised. Failures are raised as
      :class:`~mongoelector.errors.BackendUnavailable` or
      :class:`~mongoelector.errors.AmbiguousOutcome`.
    * ``status_collection`` holds electors' status reports (``None``: no
      :attr:`Capability.MEMBER_STATUS`).
    * ``acquire_check``, if given, is called before each acquire; a
      :class:`~mongoelector.errors.MongoElectorError` from it refuses the
      acquire as :class:`~mongoelector.errors.BackendUnavailable`.
    """

    def _run(self, plan: plans.Plan[T]) -> T:
        return drive(plan, self._perform)

    def _perform(self, step: plans.Step) -> object:
        # ``_hello`` is looked up on each call, so that tests may replace it on the instance.
        return perform(step, clock=self._clock, hello=self._hello)

    # --- time -------------------------------------------------------------------------

    def _hello(self) -> Mapping[str, Any] | None:
        """The server's ``hello`` reply, or ``None`` if it does not implement it (mongomock)."""
        return self._run(plans.hello(self._database))

    def time_estimate(self) -> ServerTimeEstimate:
        """The server's current time and how far off it may be.

        Where the server cannot tell its time (mongomock), this is the
        backend's clock with uncertainty 0: every writer then uses that clock.
        """
        return self._run(self._ops.time_estimate())

    def server_time(self) -> datetime:
        return self.time_estimate().time

    def clock_offset(self) -> tuple[float, float] | None:
        """How far the server's clock is ahead of this host's, and the uncertainty (seconds).

        ``None`` if the server cannot tell its time. Always a fresh round trip.
        """
        return self._run(self._ops.clock_offset())

    # --- the storage protocol ---------------------------------------------------------------

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        # The common case, one findAndModify whose reply settles it, without the plan
        # machinery: the operations decide when that is so, what to send and what the
        # reply means; any PyMongoError goes back to the plan at that very step.
        ops = self._ops
        quick = ops.quick_acquire(request, force)
        if quick is None:
            return self._run(ops.compare_and_set(request, force))
        command = quick.command
        started = self._clock.monotonic()
        try:
            document = self._send(command)
        except PyMongoError as error:
            return self._run(ops.acquire_after(quick, started, error))
        return ops.quick_acquired(quick, document)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return self._run(self._ops.renew(key, owner, token, ttl))

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return self._run(self._ops.renew_many(items))

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        ops = self._ops
        command = ops.quick_release(key, owner, token, force)
        if command is None:
            return self._run(ops.release(key, owner, token, force))
        started = self._clock.monotonic()
        try:
            before = self._send(command)
        except PyMongoError as error:
            return self._run(ops.release_after(key, command, started, error))
        released = ops.quick_released(key, before)
        if released is None:
            assert before is not None
            return self._run(ops.released_at(key, before, started))
        return released

    def _send(self, command: FindAndModify) -> Mapping[str, Any] | None:
        """Send the fast path's one ``findAndModify``, bounded as the plan's first step is
        (the whole budget, server selection included); errors are the caller's to hand on."""
        with pymongo.timeout(self._ops.first_bound()):
            document: Mapping[str, Any] | None = self._leases.find_one_and_update(
                command.filter,
                command.update,
                upsert=command.upsert,
                return_document=command.return_new,
            )
        return document

    def get(self, key: str) -> LeaseRecord | None:
        return self._run(self._ops.get(key))

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return self._run(self._ops.get_many(keys))

    # --- member status -------------------------------------------------------------------

    def report_member(self, member: MemberRecord) -> None:
        self._run(self._ops.report_member(member))

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        """Every report in one bulk write (see ``ReportManyBackend.report_members``)."""
        self._run(self._ops.report_members(members))

    def members(self, key: str) -> list[MemberRecord]:
        return self._run(self._ops.members(key))
