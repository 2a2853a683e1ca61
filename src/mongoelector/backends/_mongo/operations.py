"""The storage protocol on MongoDB, written once as plans for the sync and async backends.

:class:`MongoOperations` holds what a backend learns as it goes (the server's
clock and version, whether its indexes exist, the least next token per key)
and turns each protocol operation into a plan (see :mod:`.plans`): which
commands to send, on which write path, with which retries, and what the
replies mean. The backends' shells only perform the steps.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from mongoelector._identity import new_release_id
from mongoelector._value import Value
from mongoelector.backends._mongo import commands
from mongoelector.backends._mongo.clock_reader import ServerClock
from mongoelector.backends._mongo.documents import (
    ID,
    OWNER,
    TOKEN,
    member_from_document,
    record_from_document,
    token_and_holder_expiry,
)
from mongoelector.backends._mongo.failures import RetryPolicy, classify, driver_retries_writes
from mongoelector.backends._mongo.indexes import IndexSpec, lease_indexes, status_indexes
from mongoelector.backends._mongo.plans import (
    Bounded,
    BulkUpdate,
    BulkUpsert,
    Call,
    FindMany,
    FindOne,
    InsertOne,
    Plan,
    UpdateMatching,
    UpsertOne,
    create_indexes,
    modify,
    retried_step,
    with_retries,
)
from mongoelector.backends._mongo.seen import SeenLeases
from mongoelector.backends._mongo.server_clock import ServerTimeEstimate
from mongoelector.backends._mongo.validation import check_metadata
from mongoelector.backends.protocol import (
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)
from mongoelector.backends.validation import (
    check_key,
    check_keys,
    check_member,
    check_members,
    check_owner,
    check_renew_items,
    check_request,
    check_ttl,
)
from mongoelector.clock import Clock
from mongoelector.errors import (
    AmbiguousOutcome,
    BackendError,
    BackendUnavailable,
    MongoElectorError,
)

__all__ = ["MongoOperations", "QuickAcquire"]

T = TypeVar("T")

#: Wire version of MongoDB 4.2, the first with pipeline updates and ``$$NOW``.
PIPELINE_WIRE_VERSION = 8
#: How often to try again to create indexes that failed for want of a server.
INDEX_RETRY_SECONDS = 60.0
#: Compare-and-set rounds of the classic acquire before reporting contention.
CLASSIC_ROUNDS = 4


def _check_token(token: object) -> int:
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"token must be an int, got {type(token).__name__} {token!r}")
    return token


def _check_force(force: object) -> bool:
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {force!r}")
    return force


class QuickAcquire(Value):
    """An acquire that is one write: ``command``, for ``request`` (``force``).

    ``call`` and ``estimate`` are the classic path's (``None`` on the pipeline
    path). See :meth:`MongoOperations.quick_acquire`.
    """

    __slots__ = ("call", "command", "estimate", "force", "request")

    def __init__(
        self,
        request: LeaseRequest,
        force: bool,
        command: commands.FindAndModify,
        call: commands.ClassicAcquire | None,
        estimate: ServerTimeEstimate | None,
    ) -> None:
        self.request = request
        self.force = force
        self.command = command
        self.call = call
        self.estimate = estimate


class MongoOperations:
    """The storage protocol on ``leases`` (and ``status``, if not ``None``), as plans.

    * The first operation reads the server's clock and version (``hello``)
      and creates the indexes; the write path is the pipeline one if
      ``pipeline`` says so, or (``None``) if the server is MongoDB 4.2+.
    * Each store call is retried within ``policy``; a call that may have
      applied is sent again with the same acquire id, so its own earlier
      success is recognised.
    * ``acquire_check``, if given, runs before each acquire; a
      :class:`~mongoelector.errors.MongoElectorError` from it refuses the
      acquire as :class:`~mongoelector.errors.BackendUnavailable`.

    Safe to share between threads and tasks: what it learns is kept under a lock.
    """

    def __init__(
        self,
        *,
        leases: Any,
        status: Any,
        clock: Clock,
        policy: RetryPolicy,
        pipeline: bool | None,
        create_indexes: bool,
        max_drift: float,
        acquire_check: Callable[[], object] | None,
    ) -> None:
        self._leases = leases
        # pymongo's own collections send a batch as one bulk write; a lookalike
        # (mongomock, whose bulk_write cannot take pymongo 4.9+'s UpdateOne) sends
        # it as one bulk operation of pymongo 3's API if it has it (mongomock
        # does), else one update_one per item, with the same per-item meaning.
        self._bulk_writes = isinstance(leases, (Collection, AsyncCollection))
        # (A lookalike may answer any attribute with a sub-collection: only a routine counts.)
        self._legacy_bulk = not self._bulk_writes and inspect.isroutine(
            getattr(leases, "initialize_unordered_bulk_op", None)
        )
        self._driver_retries = driver_retries_writes(leases)
        self._status = status
        self._clock = clock
        self._policy = policy
        self._first_bound = max(policy.remaining(0.0), 0.001)  # the policy is frozen
        self._pipeline_setting = pipeline
        self._acquire_check = acquire_check
        self._server_clock = ServerClock(clock, policy, max_drift)
        self._mutex = threading.Lock()
        self._seen = SeenLeases()
        self.use_pipeline: bool | None = None
        self._lease_indexes_done = not create_indexes
        self._status_indexes_done = not create_indexes
        self._index_retry_at = -math.inf

    # --- time -------------------------------------------------------------------------

    def ensure_ready(self) -> Plan[None]:
        """Learn (once) whether the server tells time and runs pipelines; create indexes."""
        if self.use_pipeline is None:
            reply = yield from self._server_clock.read()
            if self._pipeline_setting is not None:
                self.use_pipeline = self._pipeline_setting
            else:
                wire = reply.get("maxWireVersion", 0) if reply is not None else 0
                self.use_pipeline = isinstance(wire, int) and wire >= PIPELINE_WIRE_VERSION
        if not self._lease_indexes_done:
            self._lease_indexes_done = yield from self._make_indexes(self._leases, lease_indexes())

    def time_estimate(self, started: float | None = None) -> Plan[ServerTimeEstimate]:
        """The server's current time and how far off it may be (the clock, where it cannot
        tell). With ``started``, a read it needs has what is left of the budget of a call
        begun then (monotonic): a release's last step stays within the release's bound."""
        yield from self.ensure_ready()
        return (yield from self._server_clock.estimate(started))

    def clock_offset(self) -> Plan[tuple[float, float] | None]:
        """How far the server's clock is ahead of this host's, and the uncertainty (seconds)."""
        return (yield from self._server_clock.host_offset())

    def _classic_now(self) -> Plan[ServerTimeEstimate | None]:
        """``None`` on the pipeline path (the server stamps times), else the estimated time.

        Call after :meth:`ensure_ready`. (The hot paths test :meth:`_ready` and
        :attr:`use_pipeline` and ask ``ServerClock.current`` first, and come here
        only when a round trip may be needed.)
        """
        if self.use_pipeline:
            return None
        return (yield from self._server_clock.estimate())

    def _ready(self) -> bool:
        """True once :meth:`ensure_ready` has nothing left to do."""
        return self.use_pipeline is not None and self._lease_indexes_done

    # --- the storage protocol ---------------------------------------------------------------

    # --- the one-write fast paths (a shell sends the command itself; see MongoBackend) ----

    def quick_acquire(self, request: LeaseRequest, force: bool) -> QuickAcquire | None:
        """The acquire :meth:`compare_and_set` would send first, when that is one write
        whose reply settles the call; ``None`` when the call needs the plan.

        The arguments are checked here (as :meth:`compare_and_set` checks them).
        The fast path applies once the backend is ready, without an
        ``acquire_check``, with a current server-time estimate (classic), and
        when no live holder of the key was seen (not ``force``): then the
        plan's first step is exactly this command. The shell sends it within
        :meth:`first_bound`; its reply goes to :meth:`quick_acquired`, and a
        ``PyMongoError`` to :meth:`acquire_after`.
        """
        check_request(request)
        check_metadata(request.metadata)
        _check_force(force)
        if self._acquire_check is not None or not self._ready():
            return None
        key = request.key
        if self.use_pipeline:
            if not force and self._held_until(key) is not None:
                return None
            command = commands.acquire_pipeline(
                request, acquire_id=request.acquisition, force=force, least_token=self._least(key)
            )
            return QuickAcquire(request, force, command, None, None)
        estimate = self._server_clock.current()
        if estimate is None:
            return None
        with self._mutex:  # _expects_held and _least, in one section
            seen = self._seen
            if seen.expects_held(key, estimate.time):
                return None
            least_token = seen.least_token(key)
        call = commands.ClassicAcquire(
            request=request,
            acquire_id=request.acquisition,
            force=force,
            now=estimate.time,
            uncertainty=estimate.uncertainty,
            least_token=least_token,
        )
        return QuickAcquire(
            request, force, commands.optimistic_classic_acquire(call), call, estimate
        )

    def first_bound(self) -> float:
        """Seconds the first step of a call may take (what :func:`.plans.with_retries` gives
        it: the whole budget)."""
        return self._first_bound

    def quick_acquired(self, quick: QuickAcquire, document: Mapping[str, Any] | None) -> CasResult:
        """What the plan makes of the reply ``document`` to ``quick.command``."""
        request = quick.request
        result = commands.read_acquire_reply(document, request, request.acquisition)
        self._note(result.record)
        return result

    def acquire_after(
        self, quick: QuickAcquire, started: float, error: PyMongoError
    ) -> Plan[CasResult]:
        """Go on with the acquire whose ``quick.command``, sent at monotonic time ``started``,
        raised ``error``: the plan of :meth:`compare_and_set` from that step on (a
        duplicate key reads and decides, anything else is judged and retried)."""
        request = quick.request
        acquire_id = request.acquisition
        force = quick.force
        call = quick.call
        estimate = quick.estimate
        first: list[Plan[CasResult]]
        if call is None or estimate is None:
            first = [self._acquire_by_pipeline(request, acquire_id, force, sent=quick.command)]

            def again() -> Plan[CasResult]:
                return self._acquire_by_pipeline(request, acquire_id, force)
        else:
            first = [self._acquire_classic(request, acquire_id, force, estimate, sent=call)]

            def again() -> Plan[CasResult]:
                return self._acquire_classic(request, acquire_id, force, estimate)

        result = yield from with_retries(
            self._clock,
            self._policy,
            f"acquire of {request.key!r}",
            lambda: first.pop() if first else again(),
            write=True,
            driver_retries=self._driver_retries,
            started=started,
            thrown=error,
        )
        self._note(result.record)
        return result

    def quick_release(
        self, key: str, owner: str | None, token: int | None, force: bool
    ) -> commands.FindAndModify | None:
        """The one write :meth:`release` sends, when it needs no round trip first; ``None``
        when the call needs the plan. The arguments are checked here.

        Its reply goes to :meth:`quick_released`, a ``PyMongoError`` to
        :meth:`release_after`.
        """
        check_key(key)
        if not _check_force(force):
            check_owner(owner)
        if token is not None:
            _check_token(token)
        if not self._ready():
            return None
        if self.use_pipeline:
            now = None
        else:
            estimate = self._server_clock.current()
            if estimate is None:
                return None
            now = estimate.time
        return commands.release_command(
            key, owner, token, force=force, now=now, release_id=new_release_id()
        )

    def quick_released(self, key: str, before: Mapping[str, Any] | None) -> bool | None:
        """What :meth:`release` makes of the reply ``before``; ``None`` when that needs the
        server's time and the estimate is stale (then :meth:`released_at` it)."""
        if before is None:
            return False
        token, expires = token_and_holder_expiry(before)  # _noted_release, lean
        with self._mutex:
            seen = self._seen
            seen.note_token(key, token)
            seen.note_released(key)
        if expires is None:
            return False
        after = self._server_clock.current()
        return None if after is None else expires > after.time

    def released_at(self, key: str, before: Mapping[str, Any], started: float) -> Plan[bool]:
        """The end of :meth:`quick_released` when it needs a round trip for the time, within
        what is left of the budget of the release sent at monotonic ``started``."""
        record = record_from_document(before)
        after = yield from self.time_estimate(started)
        return record.owner is not None and record.is_held(after.time)

    def release_after(
        self,
        key: str,
        command: commands.FindAndModify,
        started: float,
        error: PyMongoError,
    ) -> Plan[bool]:
        """Go on with the release whose ``command``, sent at monotonic time ``started``,
        raised ``error``: the plan of :meth:`release` from that step on.

        The command is sent again within the budget. A later send that matches
        nothing while an earlier one may have applied (its reply was lost)
        proves nothing about that one, which may have released the holding
        itself: then the record is read and answers (see
        :meth:`_settle_lost_release`).
        """
        what = f"release of {key!r}"
        driver_retries = self._driver_retries
        maybe_applied = False

        def attempt() -> Plan[Mapping[str, Any] | None]:
            nonlocal maybe_applied
            try:
                before: Mapping[str, Any] | None = yield modify(self._leases, command)
            except PyMongoError as failure:
                maybe_applied = maybe_applied or _maybe_applied(
                    failure, what=what, driver_retries=driver_retries
                )
                raise
            return before

        before = yield from with_retries(
            self._clock,
            self._policy,
            what,
            attempt,
            write=True,
            driver_retries=driver_retries,
            started=started,
            thrown=error,
        )
        if before is None and maybe_applied:
            return (yield from self._settle_lost_release(key, command, started))
        return (yield from self._released(key, before, started))

    def compare_and_set(self, request: LeaseRequest, force: bool) -> Plan[CasResult]:
        check_request(request)
        check_metadata(request.metadata)
        _check_force(force)
        if not self._ready():
            yield from self.ensure_ready()
        if self._acquire_check is not None:
            try:
                yield Call(self._acquire_check)
            except BackendError:
                raise
            except MongoElectorError as error:
                raise BackendUnavailable(
                    f"acquire of {request.key!r} refused: {error}", original=error
                ) from error
        acquire_id = request.acquisition
        what = f"acquire of {request.key!r}"
        estimate = None if self.use_pipeline else self._server_clock.current()
        if estimate is None:
            estimate = yield from self._classic_now()
        if estimate is None:
            result = yield from self._run(
                what, lambda: self._acquire_by_pipeline(request, acquire_id, force), write=True
            )
        else:
            result = yield from self._run(
                what,
                lambda: self._acquire_classic(request, acquire_id, force, estimate),
                write=True,
            )
        self._note(result.record)
        return result

    def _acquire_by_pipeline(
        self,
        request: LeaseRequest,
        acquire_id: str,
        force: bool,
        sent: commands.FindAndModify | None = None,
    ) -> Plan[CasResult]:
        """One attempt; ``sent``: the upsert to send first, with no check before it (the
        fast path's, already sent once)."""
        if sent is None and not force and self._held_until(request.key) is not None:
            estimate = yield from self.time_estimate()
            if self._expects_held(request.key, estimate.time):
                # A holder was seen: a read that finds it surely live refuses, as the
                # pipeline would, without a write command.
                current = yield FindOne(self._leases, {ID: request.key})
                latest = estimate.time + timedelta(seconds=estimate.uncertainty)
                if current is not None and commands.is_held(current, latest):
                    return CasResult(acquired=False, record=record_from_document(current))
        command = (
            sent
            if sent is not None
            else commands.acquire_pipeline(
                request, acquire_id=acquire_id, force=force, least_token=self._least(request.key)
            )
        )
        try:
            document = yield modify(self._leases, command)
        except DuplicateKeyError:
            # Another upsert inserted the document first; now it exists, so ask again.
            document = yield modify(self._leases, command)
        return commands.read_acquire_reply(document, request, acquire_id)

    def _acquire_classic(
        self,
        request: LeaseRequest,
        acquire_id: str,
        force: bool,
        estimate: ServerTimeEstimate,
        sent: commands.ClassicAcquire | None = None,
    ) -> Plan[CasResult]:
        """One attempt; ``sent``: the call whose optimistic upsert to send first, with no
        check before it (the fast path's, already sent once)."""
        call = (
            sent
            if sent is not None
            else commands.ClassicAcquire(
                request=request,
                acquire_id=acquire_id,
                force=force,
                now=estimate.time,
                uncertainty=estimate.uncertainty,
                least_token=self._least(request.key),
            )
        )
        if sent is not None or not self._expects_held(request.key, estimate.time):
            try:
                document = yield modify(self._leases, commands.optimistic_classic_acquire(call))
            except DuplicateKeyError:
                pass  # held, or the time floor did not raise the token: read, then decide
            else:
                return commands.read_acquire_reply(document, request, acquire_id)
        current: Mapping[str, Any] | None = None
        for _ in range(CLASSIC_ROUNDS):
            current = yield FindOne(self._leases, {ID: request.key})
            step = commands.plan_classic_acquire(current, call)
            if isinstance(step, commands.Refuse):
                return CasResult(acquired=False, record=step.record)
            if isinstance(step, commands.Confirmed):
                return CasResult(acquired=True, record=step.record)
            if isinstance(step, commands.Insert):
                try:
                    yield InsertOne(self._leases, step.document)
                except DuplicateKeyError:
                    continue
                return CasResult(acquired=True, record=record_from_document(step.document))
            replace = commands.FindAndModify(filter=step.filter, update=step.update)
            after = yield modify(self._leases, replace)
            if after is not None:
                return CasResult(acquired=True, record=record_from_document(after))
        # Others kept changing the document under us: report the latest holder.
        current = yield FindOne(self._leases, {ID: request.key})
        return CasResult(
            acquired=False, record=record_from_document(current) if current is not None else None
        )

    def renew(self, key: str, owner: str, token: int, ttl: float) -> Plan[LeaseRecord | None]:
        check_key(key)
        check_owner(owner)
        _check_token(token)
        seconds = check_ttl(ttl)
        if not self._ready():
            yield from self.ensure_ready()
        estimate = None if self.use_pipeline else self._server_clock.current()
        if estimate is None:
            estimate = yield from self._classic_now()
        if estimate is None:
            command = commands.renew_command(key, owner, token, seconds, now=None)
        else:
            command = commands.renew_command(
                key, owner, token, seconds, now=estimate.time, margin=estimate.uncertainty
            )
        with self._mutex:  # until answered, the expiry seen may not be the one stored
            self._seen.renewing(key, owner, token)
        document = yield from self._run_step(
            lambda: f"renew of {key!r}", modify(self._leases, command), write=True
        )
        record = record_from_document(document) if document is not None else None
        with self._mutex:
            self._seen.note(record)
            self._seen.renewed(key, owner, token)
        return record

    def renew_many(self, items: Sequence[RenewItem]) -> Plan[list[LeaseRecord | None]]:
        """Every renewal in one bulk write; a read only where the write cannot tell.

        Each item's update is the one :meth:`renew` sends (same filter, same
        expiry rule). The write's reply counts the documents matched, not
        which: when it matched every item, the classic path knows each new
        expiry and returns the holdings it has seen with it, reading only
        those it has not; the pipeline path cannot know ``$$NOW`` and reads
        every key. When it matched fewer, one read of every key tells which
        were renewed: a document still showing the item's holding was
        renewed (a holding never comes back once ended); any other was
        refused, or renewed and then ended by another writer before the
        read, which is reported as refused (the holding is over either way).
        A failure of that read, after the write, is ``AmbiguousOutcome``.
        """
        checked = check_renew_items(items)
        if not checked:
            return []
        yield from self.ensure_ready()
        estimate = yield from self._classic_now()
        commands_sent = [
            commands.renew_command(item.key, item.owner, item.token, float(item.ttl), now=None)
            if estimate is None
            else commands.renew_command(
                item.key,
                item.owner,
                item.token,
                float(item.ttl),
                now=estimate.time,
                margin=estimate.uncertainty,
            )
            for item in checked
        ]
        updates = tuple((command.filter, command.update) for command in commands_sent)
        what = f"renewal of {len(checked)} keys"
        with self._mutex:  # until answered, the expiries seen may not be the ones stored
            for item in checked:
                self._seen.renewing(item.key, item.owner, item.token)
        matched = yield from self._run(what, lambda: self._update_each(updates), write=True)
        results: list[LeaseRecord | None] = [None] * len(checked)
        unknown = list(range(len(checked)))
        if estimate is not None and matched >= len(checked):
            unknown = []
            for index, item in enumerate(checked):
                with self._mutex:
                    seen = self._seen.holding(item.key, item.owner, item.token)
                if seen is None:
                    unknown.append(index)
                else:
                    expiry = commands.renew_expiry(
                        estimate.time, float(item.ttl), estimate.uncertainty
                    )
                    results[index] = replace(seen, expires_at=expiry)
                    self._note(results[index])
        if unknown:
            keys = [checked[index].key for index in unknown]
            try:
                documents = yield from self._run(
                    f"read after the {what}", lambda: self._find_many(keys), write=False
                )
            except BackendUnavailable as error:
                raise AmbiguousOutcome(
                    f"{what}: {matched} of {len(checked)} matched, but the read that tells "
                    f"which failed: {error}",
                    original=error.original,
                ) from error
            by_key = {document[ID]: document for document in documents}
            for document in documents:
                self._note(record_from_document(document))
            for index in unknown:
                item = checked[index]
                now_stored = by_key.get(item.key)
                if now_stored is not None and commands.holds(now_stored, item.owner, item.token):
                    results[index] = record_from_document(now_stored)
        with self._mutex:  # every item answered: renewed with the expiry noted, or refused
            for item in checked:
                self._seen.renewed(item.key, item.owner, item.token)
        return results

    def release(self, key: str, owner: str | None, token: int | None, force: bool) -> Plan[bool]:
        check_key(key)
        if not _check_force(force):
            check_owner(owner)
        if token is not None:
            _check_token(token)
        if not self._ready():
            yield from self.ensure_ready()
        estimate = None if self.use_pipeline else self._server_clock.current()
        if estimate is None:
            estimate = yield from self._classic_now()
        now = None if estimate is None else estimate.time
        command = commands.release_command(
            key, owner, token, force=force, now=now, release_id=new_release_id()
        )
        # The first send as the fast path makes it (MongoBackend.release); a failure goes
        # on exactly as there.
        started = self._clock.monotonic()
        try:
            before = yield Bounded(modify(self._leases, command), self._first_bound)
        except PyMongoError as error:
            return (yield from self.release_after(key, command, started, error))
        return (yield from self._released(key, before, started))

    def _settle_lost_release(
        self, key: str, command: commands.FindAndModify, started: float
    ) -> Plan[bool]:
        """The answer of a release whose last send of ``command`` matched nothing after an
        earlier send, at monotonic time ``started`` or later, may have applied.

        One read of the record tells (:func:`.commands.lost_release_outcome`)
        whether that earlier send ended a live holding. When the record cannot
        tell, or the read fails, the release is ``AmbiguousOutcome``: the
        holding is over either way, but whether this call ended it live is
        unknown.
        """
        what = f"release of {key!r}"
        query = command.filter
        with self._mutex:  # before the read below is noted
            held_until = self._seen.expiry_of(key, query.get(OWNER), query.get(TOKEN))
        try:
            # Within what is left of the release's budget (``timeout`` bounds the call).
            document = yield from self._run_step(
                lambda: f"read after the {what}",
                FindOne(self._leases, {ID: key}),
                write=False,
                started=started,
            )
        except BackendUnavailable as error:
            raise AmbiguousOutcome(
                f"{what}: an earlier send may have applied, and the read that tells "
                f"failed: {error}",
                original=error.original,
            ) from error
        self._note(record_from_document(document) if document is not None else None)
        now = self._server_clock.current()
        if now is None:
            now = yield from self.time_estimate(started)
        # The server's time when the first send left: now, less the time since, less
        # how far off the estimate may be.
        since = self._clock.monotonic() - started
        sent = now.time - timedelta(seconds=since + now.uncertainty)
        outcome = commands.lost_release_outcome(
            command, document, sent=sent, now=now.time, held_until=held_until
        )
        if outcome is None:
            raise AmbiguousOutcome(
                f"{what}: a later send matched nothing after an earlier one may have "
                f"applied, and the record cannot tell whether that one ended a live "
                f"holding (it is gone, another holding replaced it, or the release leaves "
                f"no mark of its own: classic, forced or without a token)"
            )
        if outcome:
            with self._mutex:
                self._seen.note_released(key)
        return outcome

    def _released(self, key: str, before: Mapping[str, Any] | None, started: float) -> Plan[bool]:
        """Whether the release whose reply is ``before`` ended a live holding (a read of the
        server's time has what is left of the budget of the release sent at ``started``)."""
        record = self._noted_release(key, before)
        if record is None:
            return False
        after = self._server_clock.current()
        if after is None:
            after = yield from self.time_estimate(started)
        return record.is_held(after.time)

    def _noted_release(self, key: str, before: Mapping[str, Any] | None) -> LeaseRecord | None:
        """Note the release reply ``before``; the holding it ended (``None``: none)."""
        if before is None:
            return None
        record = record_from_document(before)
        with self._mutex:
            self._seen.note(record)
            self._seen.note_released(key)
        return record if record.owner is not None else None

    def get(self, key: str) -> Plan[LeaseRecord | None]:
        check_key(key)
        if not self._ready():
            yield from self.ensure_ready()
        document = yield from self._run_step(
            lambda: f"read of {key!r}", FindOne(self._leases, {ID: key}), write=False
        )
        record = record_from_document(document) if document is not None else None
        self._note(record)
        return record

    def get_many(self, keys: Sequence[str]) -> Plan[dict[str, LeaseRecord | None]]:
        """Every key's record from one ``find`` (``_id`` in the keys), from the primary."""
        distinct = check_keys(keys)
        if not distinct:
            return {}
        yield from self.ensure_ready()
        documents = yield from self._run(
            f"read of {len(distinct)} keys", lambda: self._find_many(distinct), write=False
        )
        records = {document[ID]: record_from_document(document) for document in documents}
        found: dict[str, LeaseRecord | None] = {}
        for key in distinct:
            found[key] = records.get(key)
            self._note(found[key])
        return found

    # --- member status -------------------------------------------------------------------

    def _status_collection(self) -> Any:
        if self._status is None:
            raise RuntimeError("this backend has no status collection (status_collection=None)")
        return self._status

    def report_member(self, member: MemberRecord) -> Plan[None]:
        check_member(member)
        check_owner(member.uuid, name="member.uuid")
        status = self._status_collection()
        yield from self.ensure_ready()
        if not self._status_indexes_done:
            self._status_indexes_done = yield from self._make_indexes(
                status, status_indexes(member.ttl)
            )
        estimate = yield from self._classic_now()
        query, update = commands.member_update(
            member, now=None if estimate is None else estimate.time
        )

        def attempt() -> Plan[object]:
            return (yield UpsertOne(status, query, update))

        yield from self._run(f"status report of {member.key!r}", attempt, write=True)

    def report_members(self, members: Sequence[MemberRecord]) -> Plan[None]:
        """Every report in one bulk write of the upserts :meth:`report_member` sends (the
        last report of a member wins), stamped with the server's time as one report is."""
        checked = check_members(members)
        for index, member in enumerate(checked):
            check_owner(member.uuid, name=f"members[{index}].uuid")
        if not checked:
            return
        latest = {member.uuid: member for member in checked}  # a member's last report wins
        status = self._status_collection()
        yield from self.ensure_ready()
        if not self._status_indexes_done:
            self._status_indexes_done = yield from self._make_indexes(
                status, status_indexes(checked[0].ttl)
            )
        estimate = yield from self._classic_now()
        now = None if estimate is None else estimate.time
        updates = tuple(commands.member_update(member, now=now) for member in latest.values())

        def attempt() -> Plan[object]:
            return (yield from self._upsert_each(status, updates))

        yield from self._run(f"status report of {len(latest)} members", attempt, write=True)

    def _upsert_each(
        self, collection: Any, updates: tuple[tuple[dict[str, Any], Any], ...]
    ) -> Plan[object]:
        """Send the upserts ``updates``: one bulk write (a lookalike without pymongo 4's bulk
        API: one bulk operation of pymongo 3's API if it has one, else one by one)."""
        if self._bulk_writes:
            return (yield BulkUpsert(collection, updates))
        if self._legacy_bulk:
            return (yield Call(lambda: _legacy_bulk_upsert(collection, updates)))
        for query, update in updates:
            yield UpsertOne(collection, query, update)
        return None

    def members(self, key: str) -> Plan[list[MemberRecord]]:
        check_key(key)
        status = self._status_collection()
        yield from self.ensure_ready()

        def attempt() -> Plan[list[Mapping[str, Any]]]:
            found: list[Mapping[str, Any]] = yield FindMany(status, {"key": key})
            return found

        documents = yield from self._run(f"status read of {key!r}", attempt, write=False)
        now = (yield from self.time_estimate()).time
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

    def _send(self, command: commands.FindAndModify) -> Plan[Any]:
        return (yield modify(self._leases, command))

    def _find_one(self, key: str) -> Plan[Any]:
        return (yield FindOne(self._leases, {ID: key}))

    def _find_many(self, keys: list[str]) -> Plan[list[Mapping[str, Any]]]:
        found: list[Mapping[str, Any]] = yield FindMany(self._leases, {ID: {"$in": keys}})
        return found

    def _update_each(self, updates: tuple[tuple[dict[str, Any], Any], ...]) -> Plan[int]:
        """Send ``updates``; the number of documents they matched."""
        if self._bulk_writes:
            reply = yield BulkUpdate(self._leases, updates)
            return int(reply.matched_count)
        if self._legacy_bulk:
            leases = self._leases
            counted = yield Call(lambda: _legacy_bulk_update(leases, updates))
            return int(counted)
        matched = 0
        for index, (query, update) in enumerate(updates):
            try:
                reply = yield UpdateMatching(self._leases, query, update)
            except PyMongoError as error:
                if not matched:
                    raise  # nothing renewed yet: classified (and retried) as one write
                # Earlier statements renewed their holdings: not "nothing renewed", and
                # (like a bulk write's statement error) not retried.
                raise AmbiguousOutcome(
                    f"renewal of {len(updates)} keys: statement {index} failed after "
                    f"{matched} renewed: {type(error).__name__}: {error}",
                    original=error,
                ) from error
            matched += int(reply.matched_count)
        return matched

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

    def _make_indexes(self, collection: Any, specs: list[IndexSpec]) -> Plan[bool]:
        """Create ``specs`` unless a recent attempt found no server; ``True`` once settled."""
        if self._clock.monotonic() < self._index_retry_at:
            return False
        if (yield from create_indexes(collection, specs, budget=self._policy.budget)):
            return True
        self._index_retry_at = self._clock.monotonic() + INDEX_RETRY_SECONDS
        return False

    def _run_step(
        self,
        what: Callable[[], str],
        step: Any,
        *,
        write: bool,
        started: float | None = None,
        thrown: PyMongoError | None = None,
    ) -> Plan[Any]:
        """:meth:`_run` of an attempt that is one step (most calls): no plan per attempt."""
        return retried_step(
            self._clock,
            self._policy,
            step,
            what,
            write=write,
            driver_retries=self._driver_retries,
            started=started,
            thrown=thrown,
        )

    def _run(self, what: str, attempt: Callable[[], Plan[T]], *, write: bool) -> Plan[T]:
        return (
            yield from with_retries(
                self._clock,
                self._policy,
                what,
                attempt,
                write=write,
                driver_retries=self._driver_retries,
            )
        )


def _maybe_applied(error: PyMongoError, *, what: str, driver_retries: bool) -> bool:
    """True if the write that raised ``error`` may have applied (see :func:`.failures.classify`)."""
    failure = classify(error, write=True, what=what, driver_retries=driver_retries)
    return isinstance(failure, AmbiguousOutcome)


def _legacy_bulk_update(collection: Any, updates: tuple[tuple[dict[str, Any], Any], ...]) -> int:
    """``updates`` as one unordered bulk operation of pymongo 3's API (which mongomock
    keeps); the number of documents matched. A failed statement raises ``BulkWriteError``."""
    bulk = collection.initialize_unordered_bulk_op()
    for query, update in updates:
        bulk.find(query).update_one(update)
    reply = bulk.execute()
    return int(reply["nMatched"])


def _legacy_bulk_upsert(collection: Any, updates: tuple[tuple[dict[str, Any], Any], ...]) -> object:
    """``updates`` as one unordered bulk operation of upserts in pymongo 3's API."""
    bulk = collection.initialize_unordered_bulk_op()
    for query, update in updates:
        bulk.find(query).upsert().update_one(update)
    return bulk.execute()
