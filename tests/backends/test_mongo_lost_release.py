"""A release whose first send applied but whose reply was lost (issue 14).

The release's filter asks for the caller's live holding, so once the first
send has released it, a retry matches nothing. That "nothing" says nothing
about the first send: after a retry that matched nothing, while an earlier
send may have applied, the backend reads the record and answers from it.
``True`` when the record is the caller's holding, released by a write of
this release while it was live; ``False`` when the record shows no live
holding of the caller's was left to end when the release was sent; and
``AmbiguousOutcome`` when the record cannot tell (it is gone, or a later
holding replaced it). Every scenario runs on ``MongoBackend`` (its one-write
fast path and its plan) and ``AsyncMongoBackend``, classic and pipeline, on
mongomock; ``test_mongo_wire.py`` plays the same on the wire.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
import mongomock.collection
import pytest
from bson import json_util
from pymongo.errors import AutoReconnect, NotPrimaryError, OperationFailure

from mongoelector import _identity
from mongoelector.backends import AsyncMongoBackend, LeaseRequest, MongoBackend, RenewItem
from mongoelector.backends._mongo import commands, operations
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.backends._mongo.seen import SeenLeases
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.errors import AmbiguousOutcome
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install
from tests.backends.mongomock_async import AsyncMockCollection, AsyncMockDatabase
from tests.sync.test_fork import in_child

TTL = 10.0
#: The backend kinds: MongoBackend with its fast path, MongoBackend through the plan
#: alone, and AsyncMongoBackend (always the plan); each classic and pipeline.
KINDS = [
    f"{shell}-{path}" for shell in ("fast", "plan", "async") for path in ("classic", "pipeline")
]


class Writes:
    """The ``findAndModify`` calls and ``find_one`` reads made; failures to inject."""

    def __init__(self) -> None:
        self.sent = 0
        self.reads = 0
        #: Called after each write applied, with its index; may raise (a lost reply).
        self.after: Callable[[int], None] = lambda index: None
        #: Called before each write, with its index; may raise (not sent at all).
        self.before: Callable[[int], None] = lambda index: None


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Writes]:
    seen = Writes()
    modify = mongomock.collection.Collection.find_one_and_update
    find_one = mongomock.collection.Collection.find_one

    writing = [False]

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        index = seen.sent
        seen.sent += 1
        seen.before(index)
        writing[0] = True
        try:
            document = modify(self, *args, **kwargs)
        finally:
            writing[0] = False
        seen.after(index)
        return document

    def reading(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not writing[0]:  # (mongomock's findAndModify reads through find_one itself)
            seen.reads += 1
        return find_one(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_update", spy)
    monkeypatch.setattr(mongomock.collection.Collection, "find_one", reading)
    yield seen


class Store:
    """One backend of a kind, called synchronously, on one mongomock database."""

    def __init__(self, kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
        shell, path = kind.split("-")
        pipeline = path == "pipeline"
        if pipeline:
            install(monkeypatch, clock.now)
        if shell == "plan":
            monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)
        self.database = mongomock.MongoClient()["lost_release"]
        self.clock = clock
        self.pipeline = pipeline
        self.backend: MongoBackend | AsyncMongoBackend
        if shell == "async":
            self.backend = AsyncMongoBackend(
                AsyncMockDatabase(self.database), clock=clock, pipeline=pipeline
            )
        else:
            self.backend = MongoBackend(self.database, clock=clock, pipeline=pipeline)
        self.get("warm-up")

    def _call(self, result: Any) -> Any:
        return asyncio.run(result) if asyncio.iscoroutine(result) else result

    def acquire(self, owner: str = "a") -> int:
        result = self._call(
            self.backend.compare_and_set(LeaseRequest(key="job", owner=owner, ttl=TTL))
        )
        assert result.acquired and result.record is not None
        return int(result.record.token)

    def release(
        self, owner: str | None = "a", token: int | None = None, force: bool = False
    ) -> Any:
        return self._call(self.backend.release("job", owner, token=token, force=force))

    def get(self, key: str = "job") -> Any:
        return self._call(self.backend.get(key))

    def renew(self, token: int, ttl: float, owner: str = "a") -> Any:
        return self._call(self.backend.renew("job", owner, token, ttl))

    def renew_many(self, token: int, ttl: float, owner: str = "a") -> Any:
        return self._call(
            self.backend.renew_many([RenewItem(key="job", owner=owner, token=token, ttl=ttl)])
        )

    def other(self) -> MongoBackend:
        """Another client of the same store."""
        return MongoBackend(self.database, clock=self.clock, pipeline=self.pipeline)


@pytest.fixture(params=KINDS)
def store(
    request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Store:
    return Store(str(request.param), clock, monkeypatch)


def lose_the_first_reply(writes: Writes, then: Callable[[], None] = lambda: None) -> None:
    """The next write applies, but its reply is lost (``then`` runs in between)."""
    first = writes.sent

    def lost(index: int) -> None:
        if index == first:
            then()
            raise AutoReconnect("connection closed after the write")

    writes.after = lost


def released_after_a_lost_reply(store: Store, writes: Writes) -> Any:
    """What a release answers when its first send applied and the reply was lost."""
    token = store.acquire()
    lose_the_first_reply(writes)
    return store.release(token=token)


# --- the specification ---------------------------------------------------------------------


def test_a_release_whose_own_first_send_ended_the_holding_returns_true(
    store: Store, writes: Writes
) -> None:
    sent, reads = writes.sent, writes.reads
    assert released_after_a_lost_reply(store, writes) is True
    assert writes.sent - sent == 3  # the acquire, the lost release, the retry
    assert writes.reads - reads == 1  # the read that settles it
    record = store.get()
    assert record is not None and record.owner is None


def test_a_release_with_a_reply_agrees(store: Store, writes: Writes) -> None:
    """The same release with its reply: ``True`` without any read (what the retry must match)."""
    token = store.acquire()
    reads = writes.reads
    assert store.release(token=token) is True
    assert writes.reads == reads


def test_a_release_of_a_holding_that_had_lapsed_returns_false(
    store: Store, writes: Writes, clock: FakeClock
) -> None:
    token = store.acquire()
    clock.advance(TTL + 1)  # lapsed before the release was sent
    lose_the_first_reply(writes)
    assert store.release(token=token) is False


def test_a_release_without_a_token_is_judged_the_same_way(
    store: Store, writes: Writes, clock: FakeClock
) -> None:
    store.acquire()
    clock.advance(1)  # (a holding acquired in the millisecond the release left: see below)
    lose_the_first_reply(writes)
    # The release stamps its own id: the pipeline's also whether the holding was live, as
    # the server judged it; the classic one leaves the holding's expiry, after the read.
    assert store.release(token=None) is True


def test_a_holding_taken_over_before_the_release_was_sent_returns_false(
    store: Store, writes: Writes, clock: FakeClock
) -> None:
    token = store.acquire()
    clock.advance(TTL + 1)
    assert store.other().compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).acquired
    clock.advance(1)
    first = writes.sent

    def not_applied(index: int) -> None:
        if index == first:  # the first send of the release: it may have applied
            raise AutoReconnect("connection closed")

    writes.before = not_applied
    assert store.release(token=token) is False


def test_a_holding_another_client_released_before_the_first_send_returns_false(
    store: Store, writes: Writes, clock: FakeClock
) -> None:
    """The record is the caller's holding, released, but not by this release: on the
    classic path the forced release left the expiry, on the pipeline path it stamped
    a time before this release was sent."""
    token = store.acquire()
    clock.advance(1)
    assert store.other().release("job", None, force=True)
    clock.advance(1)
    first = writes.sent

    def not_applied(index: int) -> None:
        if index == first:
            raise AutoReconnect("connection closed")

    writes.before = not_applied
    assert store.release(token=token) is False


def test_a_holding_replaced_after_the_first_send_is_ambiguous(store: Store, writes: Writes) -> None:
    """Released by the first send, then taken by another: was it live when it ended?"""
    token = store.acquire()
    other = store.other()
    lose_the_first_reply(
        writes,
        then=lambda: other.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)),
    )
    with pytest.raises(AmbiguousOutcome, match="cannot tell"):
        store.release(token=token)


def test_a_record_deleted_after_the_first_send_is_ambiguous(store: Store, writes: Writes) -> None:
    token = store.acquire()
    lose_the_first_reply(writes, then=lambda: store.database["mongolocker"].delete_one({}))
    with pytest.raises(AmbiguousOutcome, match="cannot tell"):
        store.release(token=token)


def test_a_failure_that_proves_nothing_applied_needs_no_read(
    store: Store, writes: Writes, clock: FakeClock
) -> None:
    token = store.acquire()
    clock.advance(TTL + 1)
    assert store.other().compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).acquired
    clock.advance(1)  # (so that a read would show the holding was over: False either way)
    reads = writes.reads
    first = writes.sent

    def not_primary(index: int) -> None:
        if index == first:  # refused before it ran (retryWrites is off on mongomock)
            raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    writes.before = not_primary
    assert store.release(token=token) is False
    assert writes.reads == reads


# --- the checks can fail (mutation tests) -----------------------------------------------------


@pytest.mark.parametrize("kind", ["fast-classic", "plan-pipeline", "async-classic"])
def test_the_check_sees_the_retrys_empty_reply_taken_at_its_word(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Without the read after the retry (the bug), the answer is ``False``."""

    def as_before(self: Any, key: str, command: Any, started: float) -> Any:
        return False
        yield  # a plan that reads nothing

    monkeypatch.setattr(MongoOperations, "_settle_lost_release", as_before)
    assert released_after_a_lost_reply(Store(kind, clock, monkeypatch), writes) is False


@pytest.mark.parametrize("kind", ["fast-classic", "fast-pipeline", "async-pipeline"])
def test_the_check_sees_a_record_read_as_never_ours(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    monkeypatch.setattr(commands, "lost_release_outcome", lambda *args, **kwargs: False)
    assert released_after_a_lost_reply(Store(kind, clock, monkeypatch), writes) is False


@pytest.mark.parametrize("kind", ["fast-classic", "plan-pipeline"])
def test_the_replaced_check_sees_a_send_time_taken_as_later(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Taking the first send for later than it left (the time of the read, once the
    retries took time) takes a holding acquired after it for one acquired before."""
    real = commands.lost_release_outcome

    def judged_late(command: Any, document: Any, *, sent: Any, **rest: Any) -> bool | None:
        return real(command, document, sent=sent + timedelta(seconds=1), **rest)

    monkeypatch.setattr(commands, "lost_release_outcome", judged_late)
    with pytest.raises(pytest.fail.Exception):
        test_a_holding_replaced_after_the_first_send_is_ambiguous(
            Store(kind, clock, monkeypatch), writes
        )


@pytest.mark.parametrize("kind", ["fast-classic", "async-pipeline"])
def test_the_no_read_check_sees_every_failure_taken_as_maybe_applied(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    monkeypatch.setattr(operations, "_maybe_applied", lambda error, **kwargs: True)
    store = Store(kind, clock, monkeypatch)
    with pytest.raises(AssertionError):
        test_a_failure_that_proves_nothing_applied_needs_no_read(store, writes, clock)


def _released_and_named(command: Any, document: Any, **times: Any) -> bool | None:
    """A reading that takes any released record of the named holding as released by this
    call, whenever and by whom."""
    return document is not None and document.get("locked") is False


@pytest.mark.parametrize("kind", ["fast-classic", "plan-pipeline", "async-classic"])
def test_the_checks_see_any_released_record_taken_as_this_calls(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    monkeypatch.setattr(commands, "lost_release_outcome", _released_and_named)
    with pytest.raises(AssertionError):
        test_a_holding_another_client_released_before_the_first_send_returns_false(
            Store(kind, clock, monkeypatch), writes, clock
        )
    with pytest.raises(AssertionError):
        test_a_release_of_a_holding_that_had_lapsed_returns_false(
            Store(kind, clock, monkeypatch), writes, clock
        )


# --- review: a holding that lapsed while the first send was on its way --------------------


def _lapses_while_the_first_send_travels(store: Store, writes: Writes, *, lose: bool) -> Any:
    """Acquire; release 0.5 s before the expiry, the first send taking 1 s to land (so
    the holding lapsed before the release applied); its reply lost if ``lose``."""
    token = store.acquire()
    store.clock.advance(TTL - 0.5)
    first = writes.sent

    def slow(index: int) -> None:
        if index == first:
            store.clock.advance(1.0)

    writes.before = slow
    if lose:
        lose_the_first_reply(writes)
    return store.release(token=token)


def test_a_release_that_landed_after_the_holding_lapsed_answers_as_with_its_reply(
    store: Store, writes: Writes
) -> None:
    """The reply would have said ``False`` (the holding had lapsed when the release
    applied); with the reply lost the answer must not be ``True``: the record's expiry
    is the lapsed one, which no release stamp can be told from, unless the caller's
    own holding was known to outlive it."""
    assert _lapses_while_the_first_send_travels(store, writes, lose=False) is False
    writes.before = writes.after = lambda index: None
    try:
        lost = _lapses_while_the_first_send_travels(store, writes, lose=True)
    except AmbiguousOutcome:
        return
    assert lost is False


@pytest.mark.parametrize("kind", ["fast-classic", "plan-classic", "async-classic"])
def test_the_lapse_check_sees_the_holdings_expiry_taken_as_unbounded(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Classic: taking the release's own ``$min`` as proof of a live holding, whatever the
    holding's expiry (it may have lapsed before the write landed), answers ``True``."""
    real = commands.lost_release_outcome

    def unbounded(command: Any, document: Any, **times: Any) -> bool | None:
        times["held_until"] = times["now"] + timedelta(days=1)
        return real(command, document, **times)

    monkeypatch.setattr(commands, "lost_release_outcome", unbounded)
    with pytest.raises(AssertionError):
        test_a_release_that_landed_after_the_holding_lapsed_answers_as_with_its_reply(
            Store(kind, clock, monkeypatch), writes
        )


@pytest.mark.parametrize("kind", ["fast-classic", "plan-classic", "async-classic"])
def test_the_live_check_sees_the_holding_never_seen(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Classic: without the holding's expiry as this backend saw it, the release's own
    ``$min`` does not prove it live."""
    monkeypatch.setattr(SeenLeases, "expiry_of", lambda self, *args: None)
    with pytest.raises(AmbiguousOutcome):
        released_after_a_lost_reply(Store(kind, clock, monkeypatch), writes)


def test_the_read_that_settles_a_lost_release_stays_within_the_calls_budget(
    store: Store, writes: Writes, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``timeout`` bounds the whole call: the read after a lost reply gets what is left
    of the release's budget, not a budget of its own. Here the first send takes most
    of the budget and the read never gets an answer: the call gives up when the
    budget is spent (FakeClock time), ``AmbiguousOutcome``."""
    budget = 5.0  # the backends' default ``timeout``
    token = store.acquire()
    first = writes.sent

    def slow(index: int) -> None:
        if index == first:
            clock.advance(budget * 0.8)

    writes.before = slow
    retried = [False]

    def lost_then_retried(index: int) -> None:
        if index == first:
            raise AutoReconnect("connection closed after the write")
        retried[0] = True  # the retry matched nothing: from now on, reads go unanswered

    writes.after = lost_then_retried
    find_one = mongomock.collection.Collection.find_one

    def unreachable(self: Any, *args: Any, **kwargs: Any) -> Any:
        if retried[0]:
            raise AutoReconnect("no reply to the read")
        return find_one(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one", unreachable)
    started = clock.monotonic()
    with pytest.raises(AmbiguousOutcome):
        store.release(token=token)
    assert clock.monotonic() - started <= budget


@pytest.mark.parametrize("kind", ["fast-pipeline", "plan-classic", "async-classic"])
def test_the_budget_check_sees_the_read_given_a_budget_of_its_own(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    run_step = MongoOperations._run_step

    def fresh(self: Any, what: Any, step: Any, *, write: bool, **rest: Any) -> Any:
        rest.pop("started", None)  # the bug: the read counts its budget from its own start
        return run_step(self, what, step, write=write, **rest)

    monkeypatch.setattr(MongoOperations, "_run_step", fresh)
    with pytest.raises(AssertionError):
        test_the_read_that_settles_a_lost_release_stays_within_the_calls_budget(
            Store(kind, clock, monkeypatch), writes, clock, monkeypatch
        )


def test_a_forced_release_cannot_tell_a_holding_acquired_after_it_was_sent(
    store: Store, writes: Writes
) -> None:
    """A forced release names no holding: when the first send may have applied, and a
    holding acquired after it left was released by its owner before the read, the record
    cannot tell whether this release ended a live holding (here it ended none)."""
    store.acquire()
    first = writes.sent
    other = store.other()

    def meanwhile(index: int) -> None:
        if index == first:  # the first send of the forced release, not applied
            assert other.release("job", None, force=True)
            taken = other.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL))
            assert taken.acquired and taken.record is not None
            assert other.release("job", "b", token=taken.record.token)
            raise AutoReconnect("connection closed")

    writes.before = meanwhile
    with pytest.raises(AmbiguousOutcome, match="cannot tell"):
        store.release(owner=None, force=True)


# --- review 2: a renewal whose reply was lost, a forced release between the sends ----------


def _renewed_without_a_reply(store: Store, writes: Writes, token: int, ttl: float) -> None:
    """Renew ``token`` to ``ttl``: the first send applies and its reply is lost, the retry
    is rejected (nothing more applied), so the call fails and this backend never sees the
    expiry now stored."""
    first = writes.sent

    def lost(index: int) -> None:
        if index == first:
            raise AutoReconnect("connection closed after the write")

    def rejected(index: int) -> None:
        if index > first:
            raise OperationFailure("rejected", code=2)

    writes.after, writes.before = lost, rejected
    with pytest.raises(AmbiguousOutcome):
        store.renew(token, ttl)
    writes.after = writes.before = lambda index: None


def _batch_renewed_without_a_reply(store: Store, writes: Writes, token: int, ttl: float) -> None:
    """:func:`_renewed_without_a_reply` by a batch renewal (one bulk write, no reply to it)."""
    real = MongoOperations._update_each
    sends = [0]

    def lost(self: Any, updates: Any) -> Any:
        sends[0] += 1
        if sends[0] == 1:
            yield from real(self, updates)  # applied
            raise AutoReconnect("connection closed after the write")
        raise OperationFailure("rejected", code=2)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MongoOperations, "_update_each", lost)
        with pytest.raises(AmbiguousOutcome):
            store.renew_many(token, ttl)
    assert sends[0] == 2


def _release_after_a_shortening_renewal_lost_its_reply(
    store: Store,
    writes: Writes,
    *,
    lose: bool,
    renewal: Callable[[Store, Writes, int, float], None] = _renewed_without_a_reply,
) -> Any:
    """Acquire for 10 s; 1 s later renew to 2 s, that reply lost (the expiry stored is
    now 3 s after the acquisition, this backend last saw 10 s); release 2.5 s after the
    acquisition, the first send taking 1.5 s to land (the holding lapsed on its way);
    its reply lost if ``lose``."""
    token = store.acquire()
    store.clock.advance(1)
    renewal(store, writes, token, 2.0)
    # (Looked at behind the backend's back: a read through it would show it the expiry.)
    stored = store.database["mongolocker"].find_one({"_id": "job"})
    acquired = stored["ts_created"]
    assert stored["locked"] is True and stored["ts_expire"] < acquired + timedelta(seconds=TTL / 2)
    store.clock.advance(2.5 - (store.clock.now().replace(tzinfo=None) - acquired).total_seconds())
    first = writes.sent

    def slow(index: int) -> None:
        if index == first:
            store.clock.advance(1.5)

    writes.before = slow
    if lose:
        lose_the_first_reply(writes)
    return store.release(token=token)


@pytest.mark.parametrize("renewal", ["one", "batch"])
def test_a_renewal_whose_reply_was_lost_leaves_no_stale_expiry_to_prove_a_holding_live(
    store: Store, writes: Writes, renewal: str
) -> None:
    """A renewal that shortened the holding, its reply lost, leaves this backend's last
    seen expiry too late: it must not prove that a release stamp came before the
    holding's end. With its reply the release says ``False`` (the holding lapsed while
    it travelled); with the reply lost, ``False`` or ``AmbiguousOutcome``, never ``True``."""
    renew = _renewed_without_a_reply if renewal == "one" else _batch_renewed_without_a_reply
    answer = _release_after_a_shortening_renewal_lost_its_reply
    assert answer(store, writes, lose=False, renewal=renew) is False
    writes.before = writes.after = lambda index: None
    try:
        lost = answer(store, writes, lose=True, renewal=renew)
    except AmbiguousOutcome:
        return
    assert lost is False


def test_a_forced_release_by_another_client_between_the_sends_is_not_taken_as_ours(
    store: Store, writes: Writes
) -> None:
    """The first send never applied (its connection broke before it got there) and,
    before the retry, another client forced the holding released while it was live: no
    write of this release ended it, so the answer is ``False``, as it would be had the
    first send been refused outright."""
    token = store.acquire()
    store.clock.advance(1)
    first = writes.sent
    other = store.other()

    def forced_then_not_applied(index: int) -> None:
        if index == first:
            assert other.release("job", None, force=True) is True
            raise AutoReconnect("connection closed before the write")

    writes.before = forced_then_not_applied
    assert store.release(token=token) is False


def _stamped(field: str, value: Callable[[Any], object]) -> Callable[..., bool | None]:
    """:func:`commands.lost_release_outcome`, reading ``field`` as ``value(command)``."""
    real = commands.lost_release_outcome

    def outcome(command: Any, document: Any, **times: Any) -> bool | None:
        if document is not None and document.get("locked") is False:
            document = {**document, field: value(command)}
        return real(command, document, **times)

    return outcome


@pytest.mark.parametrize("kind", ["fast-pipeline", "plan-pipeline", "async-pipeline"])
def test_the_forced_release_check_sees_any_release_stamp_taken_as_this_calls(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Without the release id (any released record read as released by this call, the
    bug) another client's forced release between the sends answers ``True``."""
    stamp = _stamped("released_by", commands._release_id)
    monkeypatch.setattr(commands, "lost_release_outcome", stamp)
    with pytest.raises(AssertionError):
        test_a_forced_release_by_another_client_between_the_sends_is_not_taken_as_ours(
            Store(kind, clock, monkeypatch), writes
        )


@pytest.mark.parametrize("kind", ["fast-pipeline", "plan-pipeline", "async-pipeline"])
def test_the_pipeline_live_check_sees_the_servers_judgement_ignored(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Taking this call's own write as having ended a live holding, whatever the server
    judged when it applied, answers ``True`` for a holding that lapsed on the way."""
    monkeypatch.setattr(
        commands, "lost_release_outcome", _stamped("released_live", lambda command: True)
    )
    with pytest.raises(AssertionError):
        test_a_release_that_landed_after_the_holding_lapsed_answers_as_with_its_reply(
            Store(kind, clock, monkeypatch), writes
        )
    with pytest.raises(AssertionError):
        test_a_renewal_whose_reply_was_lost_leaves_no_stale_expiry_to_prove_a_holding_live(
            Store(kind, clock, monkeypatch), writes, "one"
        )


@pytest.mark.parametrize("kind", ["fast-classic", "plan-classic", "async-classic"])
def test_the_stale_expiry_check_sees_unanswered_renewals_forgotten(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Classic: vouching for the expiry seen after a renewal that was never answered (the
    bug) answers ``True`` for a holding that a shortened renewal let lapse on the way."""
    monkeypatch.setattr(SeenLeases, "renewing", lambda self, *args: None)
    for renewal in ("one", "batch"):
        with pytest.raises(AssertionError):
            test_a_renewal_whose_reply_was_lost_leaves_no_stale_expiry_to_prove_a_holding_live(
                Store(kind, clock, monkeypatch), writes, renewal
            )


def test_an_answered_renewal_does_not_vouch_for_an_expiry_an_unanswered_one_may_move() -> None:
    """A renewal never answered may still land after a later one was: from then on the
    expiry seen of that holding is no bound (``expiry_of`` is ``None``) until it ends."""
    seen = SeenLeases()
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def holding(owner: str, token: int, expires: float) -> LeaseRecord:
        return LeaseRecord(
            key="job",
            owner=owner,
            token=token,
            acquired_at=start,
            expires_at=start + timedelta(seconds=expires),
        )

    seen.note(holding("a", 5, 10))
    assert seen.expiry_of("job", "a", 5) == start + timedelta(seconds=10)
    seen.renewing("job", "a", 5)
    assert seen.expiry_of("job", "a", 5) is None  # in flight
    seen.note(holding("a", 5, 12))
    seen.renewed("job", "a", 5)
    assert seen.expiry_of("job", "a", 5) == start + timedelta(seconds=12)
    seen.renewing("job", "a", 5)  # never answered
    seen.renewing("job", "a", 5)
    seen.note(holding("a", 5, 14))
    seen.renewed("job", "a", 5)
    assert seen.expiry_of("job", "a", 5) is None
    seen.note(holding("b", 6, 20))  # the next holding: nothing unanswered of it
    assert seen.expiry_of("job", "b", 6) == start + timedelta(seconds=20)
    seen.renewing("job", "b", 6)
    seen.note_released("job")
    seen.note(holding("b", 7, 30))
    assert seen.expiry_of("job", "b", 7) == start + timedelta(seconds=30)


def test_a_classic_release_by_token_judges_its_own_stamp_by_no_send_time() -> None:
    """Classic, by token: the record carries this release's own ``$min`` (the time in the
    command), so the holding outlived that time; an estimate of when the first send left
    that came out later (a server-clock offset learnt again in between) does not make it
    "lapsed before the release was sent" (the old reading answered ``False``)."""
    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    command = commands.release_command("job", "a", 5, force=False, now=at, release_id="this call")
    written = command.update["$min"]["ts_expire"]
    document = {
        "_id": "job",
        "locked": False,
        "uuid": "a",
        "token": 5,
        "ts_created": at - timedelta(seconds=5),
        "ts_expire": written,
        "released_by": "this call",
    }
    times = {
        "sent": at + timedelta(seconds=0.5),
        "now": at + timedelta(seconds=1),
        "held_until": at + timedelta(seconds=10),
    }
    assert commands.lost_release_outcome(command, document, **times) is True
    # Another call's stamp: no send of this one applied.
    other = {**document, "released_by": "another call"}
    assert commands.lost_release_outcome(command, other, **times) is False


# --- review 3: no two release calls share a release id, in any process ---------------------
#
# A release whose reply was lost takes a released record stamped with its own release id
# for its own write, so an id sent by two calls would take another's write for its own. A
# forked child copies its parent's memory, backend objects and counts included: its ids
# must still be its own. The child works on its copy of the mongomock store and reports
# the record its release left; the parent plays that record into its own store where a
# shared store would have it.

fork_only = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork()"
)

#: Reads the child's report back with aware datetimes, as the backends store and read them.
_UTC = json_util.JSONOptions(tz_aware=True)


def _stamps(store: Store, count: int) -> list[str]:
    """The release ids that ``count`` releases through ``store``'s backend stamp."""
    ids = []
    for _ in range(count):
        token = store.acquire()
        assert store.release(token=token) is True
        ids.append(str(store.database["mongolocker"].find_one({"_id": "job"})["released_by"]))
    return ids


def test_every_release_call_stamps_its_own_id(store: Store, clock: FakeClock) -> None:
    """Within one process: calls of one backend, and of another (sync and asyncio)."""
    patch = pytest.MonkeyPatch()
    others = [Store(kind, clock, patch) for kind in ("fast-classic", "async-classic")]
    ids = _stamps(store, 3) + _stamps(others[0], 2) + _stamps(others[1], 2) + _stamps(store, 1)
    patch.undo()
    assert len(set(ids)) == len(ids)


@fork_only
def test_a_forked_child_stamps_ids_its_parent_never_sends(store: Store) -> None:
    """Children forked from one parent, after it released and before it releases again:
    neither child's ids are the parent's next ones, nor each other's."""
    _stamps(store, 1)
    first = in_child(lambda: {"ids": _stamps(store, 3)})["ids"]
    second = in_child(lambda: {"ids": _stamps(store, 3)})["ids"]
    parent = _stamps(store, 3)
    assert len(set(first + second + parent)) == 9


@fork_only
def test_a_forced_release_by_a_forked_copy_between_the_sends_is_not_taken_as_ours(
    store: Store, writes: Writes
) -> None:
    """A process forks (its backend object goes with it); in the parent a release's first
    send never applies, and before its retry the child forces the holding released (the
    child's very next release call, like the parent's). The record then carries the
    child's release id: had the child copied the parent's ids, the parent would take
    that write for its own and answer ``True`` on the pipeline path. The answer is
    ``False``, as for any other client's forced release between the sends."""
    token = store.acquire()
    store.clock.advance(1)

    def forced_in_child() -> dict[str, Any]:
        assert store.release(owner=None, force=True) is True
        document = store.database["mongolocker"].find_one({"_id": "job"})
        return {"record": json_util.dumps(document)}

    record = json_util.loads(in_child(forced_in_child)["record"], json_options=_UTC)
    first = writes.sent

    def forced_then_not_applied(index: int) -> None:
        if index == first:  # the child's write lands in the shared store first
            store.database["mongolocker"].replace_one({"_id": "job"}, record)
            raise AutoReconnect("connection closed before the write")

    writes.before = forced_then_not_applied
    assert store.release(token=token) is False


@fork_only
@pytest.mark.parametrize("kind", ["fast-pipeline", "plan-pipeline", "async-pipeline"])
def test_the_fork_checks_see_a_child_that_keeps_the_parents_release_ids(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """With the prefix kept across the fork (the bug), the child sends the parent's next
    ids, and the parent takes the child's forced release for its own (``True``)."""
    monkeypatch.setattr(_identity, "_new_release_prefix", lambda: _identity._release_prefix)
    with pytest.raises(AssertionError):
        test_a_forced_release_by_a_forked_copy_between_the_sends_is_not_taken_as_ours(
            Store(kind, clock, monkeypatch), writes
        )
    with pytest.raises(AssertionError):
        test_a_forked_child_stamps_ids_its_parent_never_sends(Store(kind, clock, monkeypatch))


# --- review 3: other calls of this same backend between the sends --------------------------

SYNC_KINDS = [kind for kind in KINDS if not kind.startswith("async")]


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_a_forced_release_by_another_call_of_this_backend_between_the_sends_is_not_ours(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """As a forced release by another client between the sends, but through this same
    backend object (another lock's call on the key): release ids are per call, not per
    backend, so that write is not taken for this call's (``False``)."""
    store = Store(kind, clock, monkeypatch)
    token = store.acquire()
    clock.advance(1)
    first = writes.sent

    def forced_then_not_applied(index: int) -> None:
        if index == first:
            assert store.release(owner=None, force=True) is True
            raise AutoReconnect("connection closed before the write")

    writes.before = forced_then_not_applied
    assert store.release(token=token) is False


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_a_holding_taken_and_released_through_this_backend_after_the_lost_send_is_not_ours(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """The first send ended the holding, its reply lost; before the retry another client
    took the key and this same backend (another lock's call) released that holding. The
    record is the later holding, released by another call of this backend: the first
    send's effect cannot be told from it (``AmbiguousOutcome``), never ``False``."""
    store = Store(kind, clock, monkeypatch)
    token = store.acquire()
    clock.advance(1)
    first = writes.sent
    other = store.other()

    def taken_and_released_through_this_backend(index: int) -> None:
        if index == first:
            clock.advance(0.01)
            taken = other.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL))
            assert taken.acquired and taken.record is not None
            assert store.release(owner="b", token=taken.record.token) is True
            raise AutoReconnect("connection closed after the write")

    writes.after = taken_and_released_through_this_backend
    with pytest.raises(AmbiguousOutcome):
        store.release(token=token)


@pytest.mark.parametrize("kind", ["fast-pipeline", "plan-pipeline"])
def test_the_same_backend_check_sees_release_ids_kept_per_backend(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """One release id for every call (as one per backend object would be, the bug): the
    other call's forced release between the sends is taken for this call's (``True``)."""
    monkeypatch.setattr(operations, "new_release_id", lambda: "one id for every call")
    with pytest.raises(AssertionError):
        test_a_forced_release_by_another_call_of_this_backend_between_the_sends_is_not_ours(
            kind, clock, monkeypatch, writes
        )


@pytest.mark.parametrize("kind", ["fast-classic", "plan-pipeline"])
def test_the_later_holding_check_sees_another_holding_taken_as_ended_before(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Reading a later holding, whenever acquired, as proof that the named one was over
    before the release was sent answers ``False`` for a holding this call ended."""
    real = commands.lost_release_outcome

    def any_other_holding_came_first(command: Any, document: Any, **times: Any) -> bool | None:
        if document is not None and document.get("uuid") != command.filter.get("uuid"):
            return False
        return real(command, document, **times)

    monkeypatch.setattr(commands, "lost_release_outcome", any_other_holding_came_first)
    with pytest.raises(pytest.fail.Exception):
        test_a_holding_taken_and_released_through_this_backend_after_the_lost_send_is_not_ours(
            kind, clock, monkeypatch, writes
        )


# --- review 3: renewals of other holdings of the key through this same backend -------------


@pytest.mark.parametrize("stale", ["one", "batch"])
@pytest.mark.parametrize("renewal", ["one", "batch"])
def test_a_refused_renewal_of_an_older_holding_does_not_vouch_for_an_unanswered_one(
    store: Store, writes: Writes, renewal: str, stale: str
) -> None:
    """After the shortening renewal whose reply was lost, a lock of another owner whose
    holding of the key ended long ago (it does not know yet) renews it through this same
    backend, refused. That answered renewal is of another holding: the expiry this
    backend saw of the holding being released is still not vouched for, so the lost
    release answers ``False`` or ``AmbiguousOutcome``, never ``True``."""
    lost = _renewed_without_a_reply if renewal == "one" else _batch_renewed_without_a_reply

    def then_a_stale_lock_renews(store: Store, writes: Writes, token: int, ttl: float) -> None:
        lost(store, writes, token, ttl)
        if stale == "one":
            assert store.renew(token - 1, TTL, owner="b") is None
        else:
            assert store.renew_many(token - 1, TTL, owner="b") == [None]

    answer = _release_after_a_shortening_renewal_lost_its_reply
    try:
        outcome = answer(store, writes, lose=True, renewal=then_a_stale_lock_renews)
    except AmbiguousOutcome:
        return
    assert outcome is False


def test_only_a_later_holding_ends_the_unanswered_renewals_of_a_holding() -> None:
    """``SeenLeases`` counts unanswered renewals per holding: an answered renewal of
    another holding of the key, or a record of an older one (a reply that came late),
    leaves them; a record of a later holding, or of this one released, ends them."""
    seen = SeenLeases()
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def holding(owner: str | None, token: int, expires: float = 10) -> LeaseRecord:
        return LeaseRecord(
            key="job",
            owner=owner,
            token=token,
            acquired_at=start,
            expires_at=start + timedelta(seconds=expires),
        )

    seen.note(holding("a", 5))
    seen.renewing("job", "a", 5)  # never answered
    seen.renewing("job", "b", 4)  # a stale lock's, refused
    seen.renewed("job", "b", 4)
    assert seen.expiry_of("job", "a", 5) is None
    seen.note(holding("b", 4))  # an older record, noted late
    seen.note(holding("a", 5, 12))
    assert seen.expiry_of("job", "a", 5) is None
    seen.note(holding(None, 5))  # released
    seen.note(holding("a", 5, 12))  # (a late reply again)
    assert seen.expiry_of("job", "a", 5) == start + timedelta(seconds=12)
    seen.renewing("job", "a", 5)
    seen.note(holding("c", 6))  # a later holding
    seen.note(holding("a", 5, 12))
    assert seen.expiry_of("job", "a", 5) == start + timedelta(seconds=12)


@pytest.mark.parametrize("kind", ["fast-classic", "plan-classic", "async-classic"])
def test_the_older_holding_check_sees_unanswered_renewals_counted_per_key(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Classic: any answered renewal of the key taken to answer the unanswered ones (one
    count per key, the bug) answers ``True`` for a holding that lapsed on the way."""
    monkeypatch.setattr(
        SeenLeases, "renewed", lambda self, key, owner, token: self._unanswered.pop(key, None)
    )
    with pytest.raises(AssertionError):
        test_a_refused_renewal_of_an_older_holding_does_not_vouch_for_an_unanswered_one(
            Store(kind, clock, monkeypatch), writes, "one", "one"
        )


# --- review 3: records other versions left --------------------------------------------------


def test_a_release_by_a_node_that_stamps_no_release_id_between_the_sends_is_not_ours(
    store: Store, writes: Writes
) -> None:
    """A 2.x node of a version before release ids (it sets ``locked: false`` and stamps
    nothing) releases the holding between the sends; the classic path's acquire kept the
    ``released_by`` of the previous holding's release, a call of this same backend. That
    stale id is not this call's: ``False`` (no send of this release ended the holding)."""
    store.release(token=store.acquire())  # the previous holding, released by this backend
    token = store.acquire()
    leases = store.database["mongolocker"]
    if not store.pipeline:
        assert leases.find_one({"_id": "job"})["released_by"]  # kept by the classic acquire
    store.clock.advance(1)
    first = writes.sent

    def released_by_an_older_node(index: int) -> None:
        if index == first:
            leases.update_one({"_id": "job"}, {"$set": {"locked": False}})
            raise AutoReconnect("connection closed before the write")

    writes.before = released_by_an_older_node
    assert store.release(token=token) is False


@pytest.mark.parametrize("live", [1, "true", None, [True]])
def test_a_server_judgement_that_is_not_a_bool_tells_nothing(live: object) -> None:
    """Pipeline: a ``released_live`` of any other type than a bool (no server writes one,
    an operator might) is no judgement: the record cannot tell (``None``)."""
    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    command = commands.release_command("job", "a", 5, force=False, now=None, release_id="this call")
    document = {
        "_id": "job",
        "locked": False,
        "uuid": "a",
        "token": 5,
        "ts_created": at - timedelta(seconds=5),
        "ts_expire": at,
        "released_by": "this call",
        "released_live": live,
    }
    times: dict[str, Any] = {"sent": at - timedelta(seconds=1), "now": at, "held_until": None}
    assert commands.lost_release_outcome(command, document, **times) is None
    assert commands.lost_release_outcome(command, {**document, "released_live": True}, **times)


@pytest.mark.parametrize("kind", ["fast-pipeline", "async-pipeline"])
def test_the_older_node_check_sees_any_release_stamp_taken_as_this_calls(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """Any released record read as stamped by this call, live (the bug the release id
    fixes), takes the older node's release for this call's (``True``)."""
    monkeypatch.setattr(
        commands, "lost_release_outcome", _stamped("released_by", commands._release_id)
    )
    monkeypatch.setattr(
        commands, "lost_release_outcome", _stamped("released_live", lambda command: True)
    )
    with pytest.raises(AssertionError):
        test_a_release_by_a_node_that_stamps_no_release_id_between_the_sends_is_not_ours(
            Store(kind, clock, monkeypatch), writes
        )


# --- review 3: a renewal whose caller stopped waiting ---------------------------------------


def _renewal_cancelled_after_it_applied(
    store: Store, writes: Writes, token: int, ttl: float
) -> None:
    """Renew ``token`` to ``ttl`` through the asyncio backend: the write applies, and the
    task is cancelled while it waits for the reply (which never comes)."""
    real = AsyncMockCollection.find_one_and_update

    async def applied_then_no_reply(self: Any, *args: Any, **kwargs: Any) -> Any:
        document = await real(self, *args, **kwargs)
        await asyncio.Event().wait()
        return document

    async def renew_then_cancel() -> None:
        sent = writes.sent
        backend = store.backend
        assert isinstance(backend, AsyncMongoBackend)
        task = asyncio.ensure_future(backend.renew("job", "a", token, ttl))
        while writes.sent == sent:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AsyncMockCollection, "find_one_and_update", applied_then_no_reply)
        asyncio.run(renew_then_cancel())


@pytest.mark.parametrize("kind", ["async-classic", "async-pipeline"])
def test_a_renewal_cancelled_after_it_applied_leaves_no_stale_expiry_to_prove_a_holding_live(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    """A renewal task cancelled while it waited for its reply may have applied (here it
    shortened the holding): as for a renewal whose reply was lost, the lost release
    answers ``False`` or ``AmbiguousOutcome``, never ``True``."""
    store = Store(kind, clock, monkeypatch)
    answer = _release_after_a_shortening_renewal_lost_its_reply
    try:
        outcome = answer(store, writes, lose=True, renewal=_renewal_cancelled_after_it_applied)
    except AmbiguousOutcome:
        return
    assert outcome is False


def test_the_cancelled_renewal_check_sees_unanswered_renewals_forgotten(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, writes: Writes
) -> None:
    monkeypatch.setattr(SeenLeases, "renewing", lambda self, *args: None)
    with pytest.raises(AssertionError):
        test_a_renewal_cancelled_after_it_applied_leaves_no_stale_expiry_to_prove_a_holding_live(
            "async-classic", clock, monkeypatch, writes
        )
