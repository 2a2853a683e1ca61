"""``MongoBackend``: lease records in a MongoDB collection, through pymongo's sync API.

This module is the protocol's shell: what to send, how to read the replies,
how to judge failures and estimate server time live in the pure modules of
:mod:`mongoelector.backends._mongo` (shared with the async backend), and the
sync calls, retries and clock readings in :mod:`._mongo_sync`.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pymongo import ReadPreference, ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from mongoelector.backends._mongo import commands
from mongoelector.backends._mongo.documents import (
    ID,
    member_from_document,
    record_from_document,
)
from mongoelector.backends._mongo.failures import RetryPolicy
from mongoelector.backends._mongo.indexes import IndexSpec, lease_indexes, status_indexes
from mongoelector.backends._mongo.seen import SeenLeases
from mongoelector.backends._mongo.server_clock import ServerTimeEstimate
from mongoelector.backends._mongo.validation import (
    check_collection_name,
    check_database,
    check_metadata,
)
from mongoelector.backends._mongo_sync import (
    ServerClock,
    call_with_retries,
    create_indexes,
    hello_of,
)
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
)
from mongoelector.backends.validation import (
    check_key,
    check_member,
    check_owner,
    check_request,
    check_ttl,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.errors import BackendError, BackendUnavailable, MongoElectorError
from mongoelector.timing import DEFAULT_MAX_DRIFT

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STATUS_COLLECTION", "MongoBackend"]

#: Where 1.x ``MongoLocker`` keeps its locks by default.
DEFAULT_COLLECTION = "mongolocker"
#: Where 1.x ``MongoLeaderElector`` keeps its members' status reports.
DEFAULT_STATUS_COLLECTION = "elector.leader_status"
#: Wire version of MongoDB 4.2, the first with pipeline updates and ``$$NOW``.
_PIPELINE_WIRE_VERSION = 8
#: How often to try again to create indexes that failed for want of a server.
_INDEX_RETRY_SECONDS = 60.0
#: Compare-and-set rounds of the classic acquire before reporting contention.
_CLASSIC_ROUNDS = 4

T = TypeVar("T")


def _check_token(token: object) -> int:
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"token must be an int, got {type(token).__name__} {token!r}")
    return token


class MongoBackend:
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

    def __init__(
        self,
        database: Any,
        collection: str = DEFAULT_COLLECTION,
        *,
        status_collection: str | None = DEFAULT_STATUS_COLLECTION,
        clock: Clock | None = None,
        pipeline: bool | None = None,
        timeout: float = 5.0,
        create_indexes: bool = True,
        max_drift: float = DEFAULT_MAX_DRIFT,
        acquire_check: Callable[[], object] | None = None,
    ) -> None:
        self._database = check_database(database)
        self._collection_name = check_collection_name(collection)
        self._status_name = (
            None
            if status_collection is None
            else check_collection_name(status_collection, name="status_collection")
        )
        if pipeline is not None and not isinstance(pipeline, bool):
            raise TypeError(f"pipeline must be a bool or None, got {pipeline!r}")
        if not isinstance(create_indexes, bool):
            raise TypeError(f"create_indexes must be a bool, got {create_indexes!r}")
        if acquire_check is not None and not callable(acquire_check):
            raise TypeError(f"acquire_check must be callable or None, got {acquire_check!r}")
        self._policy = RetryPolicy(budget=check_ttl(timeout, name="timeout"))
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._acquire_check = acquire_check
        self._leases = database.get_collection(
            collection,
            read_preference=ReadPreference.PRIMARY,
            write_concern=WriteConcern(w="majority"),
        )
        self._status = (
            None
            if status_collection is None
            else database.get_collection(status_collection, read_preference=ReadPreference.PRIMARY)
        )
        self._mutex = threading.Lock()
        # Late-bound, so that tests may replace ``_hello`` on the instance.
        hello = lambda: self._hello()  # noqa: E731, PLW0108
        self._server_clock = ServerClock(hello, self._clock, self._policy, max_drift)
        self._pipeline_setting = pipeline
        self._use_pipeline: bool | None = None
        self._seen = SeenLeases()
        self._lease_indexes_done = not create_indexes
        self._status_indexes_done = not create_indexes
        self._index_retry_at = -math.inf

    # --- what this backend is -------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self._status is None:
            return frozenset()
        return frozenset({Capability.MEMBER_STATUS})

    @property
    def database(self) -> Any:
        """The database given at construction."""
        return self._database

    @property
    def collection(self) -> Any:
        """The lease collection (majority write concern, primary reads)."""
        return self._leases

    @property
    def status_collection(self) -> Any:
        """The status collection, or ``None``."""
        return self._status

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def uses_pipeline(self) -> bool | None:
        """True if lease writes are server-side pipelines; ``None`` until the first call."""
        return self._use_pipeline

    # --- time -------------------------------------------------------------------------

    def _hello(self) -> Mapping[str, Any] | None:
        """The server's ``hello`` reply, or ``None`` if it does not implement it (mongomock)."""
        return hello_of(self._database)

    def _ensure_ready(self) -> None:
        """Learn (once) whether the server tells time and runs pipelines; create indexes."""
        if self._use_pipeline is None:
            reply = self._server_clock.read()
            if self._pipeline_setting is not None:
                self._use_pipeline = self._pipeline_setting
            else:
                wire = reply.get("maxWireVersion", 0) if reply is not None else 0
                self._use_pipeline = isinstance(wire, int) and wire >= _PIPELINE_WIRE_VERSION
        if not self._lease_indexes_done:
            self._lease_indexes_done = self._make_indexes(self._leases, lease_indexes())

    def time_estimate(self) -> ServerTimeEstimate:
        """The server's current time and how far off it may be.

        Where the server cannot tell its time (mongomock), this is the
        backend's clock with uncertainty 0: every writer then uses that clock.
        """
        self._ensure_ready()
        return self._server_clock.estimate()

    def server_time(self) -> datetime:
        return self.time_estimate().time

    def clock_offset(self) -> tuple[float, float] | None:
        """How far the server's clock is ahead of this host's, and the uncertainty (seconds).

        ``None`` if the server cannot tell its time. Always a fresh round trip.
        """
        return self._server_clock.host_offset()

    # --- the storage protocol ---------------------------------------------------------------

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        check_request(request)
        check_metadata(request.metadata)
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {force!r}")
        self._ensure_ready()
        if self._acquire_check is not None:
            try:
                self._acquire_check()
            except BackendError:
                raise
            except MongoElectorError as error:
                raise BackendUnavailable(
                    f"acquire of {request.key!r} refused: {error}", original=error
                ) from error
        acquire_id = uuid.uuid4().hex
        what = f"acquire of {request.key!r}"
        if self._use_pipeline:
            result = self._run(
                what, lambda: self._acquire_by_pipeline(request, acquire_id, force), write=True
            )
        else:
            estimate = self.time_estimate()
            result = self._run(
                what,
                lambda: self._acquire_classic(request, acquire_id, force, estimate),
                write=True,
            )
        self._note(result.record)
        return result

    def _acquire_by_pipeline(
        self, request: LeaseRequest, acquire_id: str, force: bool
    ) -> CasResult:
        if not force and self._held_until(request.key) is not None:
            estimate = self.time_estimate()
            if self._expects_held(request.key, estimate.time):
                # A holder was seen: a read that finds it surely live refuses, as the
                # pipeline would, without a write command.
                current = self._leases.find_one({ID: request.key})
                latest = estimate.time + timedelta(seconds=estimate.uncertainty)
                if current is not None and commands.is_held(current, latest):
                    return CasResult(acquired=False, record=record_from_document(current))
        command = commands.acquire_pipeline(
            request, acquire_id=acquire_id, force=force, least_token=self._least(request.key)
        )
        try:
            document = self._find_and_modify(command)
        except DuplicateKeyError:
            # Another upsert inserted the document first; now it exists, so ask again.
            document = self._find_and_modify(command)
        return commands.read_acquire_reply(document, request, acquire_id)

    def _acquire_classic(
        self, request: LeaseRequest, acquire_id: str, force: bool, estimate: ServerTimeEstimate
    ) -> CasResult:
        call = commands.ClassicAcquire(
            request=request,
            acquire_id=acquire_id,
            force=force,
            now=estimate.time,
            uncertainty=estimate.uncertainty,
            least_token=self._least(request.key),
        )
        if not self._expects_held(request.key, estimate.time):
            try:
                document = self._find_and_modify(commands.optimistic_classic_acquire(call))
            except DuplicateKeyError:
                pass  # held, or the time floor did not raise the token: read, then decide
            else:
                return commands.read_acquire_reply(document, request, acquire_id)
        current: Mapping[str, Any] | None = None
        for _ in range(_CLASSIC_ROUNDS):
            current = self._leases.find_one({ID: request.key})
            step = commands.plan_classic_acquire(current, call)
            if isinstance(step, commands.Refuse):
                return CasResult(acquired=False, record=step.record)
            if isinstance(step, commands.Confirmed):
                return CasResult(acquired=True, record=step.record)
            if isinstance(step, commands.Insert):
                try:
                    self._leases.insert_one(step.document)
                except DuplicateKeyError:
                    continue
                return CasResult(acquired=True, record=record_from_document(step.document))
            after = self._leases.find_one_and_update(
                step.filter, step.update, return_document=ReturnDocument.AFTER
            )
            if after is not None:
                return CasResult(acquired=True, record=record_from_document(after))
        # Others kept changing the document under us: report the latest holder.
        current = self._leases.find_one({ID: request.key})
        return CasResult(
            acquired=False, record=record_from_document(current) if current is not None else None
        )

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        check_key(key)
        check_owner(owner)
        _check_token(token)
        seconds = check_ttl(ttl)
        self._ensure_ready()
        if self._use_pipeline:
            command = commands.renew_command(key, owner, token, seconds, now=None)
        else:
            estimate = self.time_estimate()
            command = commands.renew_command(
                key, owner, token, seconds, now=estimate.time, margin=estimate.uncertainty
            )
        document = self._run(
            f"renew of {key!r}", lambda: self._find_and_modify(command), write=True
        )
        record = record_from_document(document) if document is not None else None
        self._note(record)
        return record

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        check_key(key)
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {force!r}")
        if not force:
            check_owner(owner)
        if token is not None:
            _check_token(token)
        self._ensure_ready()
        now = None if self._use_pipeline else self.time_estimate().time
        command = commands.release_command(key, owner, token, force=force, now=now)
        before = self._run(
            f"release of {key!r}", lambda: self._find_and_modify(command), write=True
        )
        if before is None:
            return False
        record = record_from_document(before)
        self._note(record)
        with self._mutex:
            self._seen.note_released(key)
        return record.owner is not None and record.is_held(self.time_estimate().time)

    def get(self, key: str) -> LeaseRecord | None:
        check_key(key)
        self._ensure_ready()
        document = self._run(
            f"read of {key!r}", lambda: self._leases.find_one({ID: key}), write=False
        )
        record = record_from_document(document) if document is not None else None
        self._note(record)
        return record

    # --- member status -------------------------------------------------------------------

    def _status_collection(self) -> Any:
        if self._status is None:
            raise RuntimeError(
                "this MongoBackend has no status collection (status_collection=None)"
            )
        return self._status

    def report_member(self, member: MemberRecord) -> None:
        check_member(member)
        check_owner(member.uuid, name="member.uuid")
        status = self._status_collection()
        self._ensure_ready()
        if not self._status_indexes_done:
            self._status_indexes_done = self._make_indexes(status, status_indexes(member.ttl))
        now = None if self._use_pipeline else self.time_estimate().time
        query, update = commands.member_update(member, now=now)
        self._run(
            f"status report of {member.key!r}",
            lambda: status.update_one(query, update, upsert=True),
            write=True,
        )

    def members(self, key: str) -> list[MemberRecord]:
        check_key(key)
        status = self._status_collection()
        self._ensure_ready()
        documents = self._run(
            f"status read of {key!r}", lambda: list(status.find({"key": key})), write=False
        )
        now = self.time_estimate().time
        live = []
        for document in documents:
            member = member_from_document(document)
            if member is None or member.timestamp is None:
                continue
            if member.timestamp + timedelta(seconds=member.ttl) > now:
                live.append(member)
        live.sort(key=lambda m: m.timestamp or now, reverse=True)
        return live

    # --- plumbing --------------------------------------------------------------------------

    def _find_and_modify(self, command: commands.FindAndModify) -> Any:
        return self._leases.find_one_and_update(
            command.filter,
            command.update,
            upsert=command.upsert,
            return_document=ReturnDocument.AFTER if command.return_new else ReturnDocument.BEFORE,
        )

    def _least(self, key: str) -> int:
        with self._mutex:
            return self._seen.least_token(key)

    def _held_until(self, key: str) -> datetime | None:
        with self._mutex:
            return self._seen.held_until(key)

    def _expects_held(self, key: str, now: datetime) -> bool:
        with self._mutex:
            return self._seen.expects_held(key, now)

    def _note(self, record: LeaseRecord | None) -> None:
        """Remember what the store holds for a key: the next token must exceed its token."""
        with self._mutex:
            self._seen.note(record)

    def _make_indexes(self, collection: Any, specs: list[IndexSpec]) -> bool:
        """Create ``specs`` unless a recent attempt found no server; ``True`` once settled."""
        if self._clock.monotonic() < self._index_retry_at:
            return False
        if create_indexes(collection, specs, budget=self._policy.budget):
            return True
        self._index_retry_at = self._clock.monotonic() + _INDEX_RETRY_SECONDS
        return False

    def _run(self, what: str, attempt: Callable[[], T], *, write: bool) -> T:
        return call_with_retries(self._clock, self._policy, what, attempt, write=write)

    def __repr__(self) -> str:
        return (
            f"MongoBackend(database={getattr(self._database, 'name', '?')!r}, "
            f"collection={self._collection_name!r}, status_collection={self._status_name!r})"
        )
