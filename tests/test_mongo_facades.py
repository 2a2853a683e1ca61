"""What the 1.x facades add on top of 1.x: the 2.x keyword arguments and guarantees.

Deterministic: a fake clock drives leases, polls and (on mongomock, which
cannot tell its time) the store's time too.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import mongomock
import pytest

from mongoelector import (
    LeaderElector,
    LeaderInfo,
    LockExists,
    MongoLeaderElector,
    MongoLocker,
    TimeOffsetError,
)
from mongoelector.backends import MongoBackend
from mongoelector.testing import FakeClock
from tests.fakes import wait_for

#: Real seconds a test waits for a thread before it fails: a hang guard, not a timing check.
GUARD = 30.0


@pytest.fixture
def db() -> Any:
    return mongomock.MongoClient()["facade_tests"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def serve_hello(backend: MongoBackend, clock: FakeClock, *, skew: float) -> None:
    """Make ``backend`` see a server whose clock runs ``skew`` seconds ahead of ``clock``."""

    def hello() -> dict[str, Any]:
        local_time = clock.now() + timedelta(seconds=skew)
        return {"localTime": local_time.replace(tzinfo=None), "maxWireVersion": 7}

    backend._hello = hello  # type: ignore[method-assign]


# --- MongoLocker ----------------------------------------------------------------------------


def test_the_locker_has_a_fencing_token_and_the_2x_deadline(db: Any, clock: FakeClock) -> None:
    lock = MongoLocker("job", db, ttl=30, renew_deadline=20, clock=clock)
    assert lock.token is None
    lock.acquire()
    assert lock.token is not None
    assert lock.get_current()["token"] == lock.token
    clock.advance(20)
    assert lock.token is None, "past the renew deadline the holder stops trusting its lease"
    assert lock.owned(), "while the store still has it until the ttl"


def test_a_second_locker_gets_a_greater_token(db: Any, clock: FakeClock) -> None:
    first = MongoLocker("job", db, ttl=30, clock=clock)
    first.acquire()
    token = first.token
    first.release()
    second = MongoLocker("job", db, ttl=30, clock=clock)
    second.acquire()
    assert second.token > token


def test_an_expired_lock_is_taken_over_without_a_ttl_monitor(db: Any, clock: FakeClock) -> None:
    MongoLocker("job", db, ttl=30, clock=clock).acquire()
    clock.advance(30)
    assert db["mongolocker"].count_documents({}) == 1
    assert MongoLocker("job", db, ttl=30, clock=clock).acquire(blocking=False)


def test_auto_renew_keeps_a_mongo_lock_across_many_ttls(db: Any, clock: FakeClock) -> None:
    lost: list[int] = []
    lock = MongoLocker(
        "job", db, ttl=15, clock=clock, auto_renew=True, on_lost=lambda: lost.append(1)
    )
    lock.acquire()
    token = lock.token
    for _ in range(60):  # ten ttls, in steps of 2.5 s
        clock.advance(2.5)
        assert lock.wait_idle(30.0)  # a hang guard in real seconds, not a timing assertion
        assert lock.ensure() == token
    with pytest.raises(LockExists):
        MongoLocker("job", db, clock=clock).acquire(blocking=False)
    assert lost == []
    assert lock.release()


def test_a_host_clock_too_far_from_the_servers_is_refused(db: Any, clock: FakeClock) -> None:
    lock = MongoLocker("job", db, maxoffset=0.5, clock=clock)
    serve_hello(lock.backend, clock, skew=2.0)
    with pytest.raises(TimeOffsetError, match="maxoffset"):
        lock.acquire()
    assert db["mongolocker"].count_documents({}) == 0


def test_a_passed_clock_check_is_trusted_for_ten_minutes(db: Any, clock: FakeClock) -> None:
    lock = MongoLocker("job", db, maxoffset=0.5, clock=clock)
    serve_hello(lock.backend, clock, skew=0.1)
    assert lock._verifytime() is True
    serve_hello(lock.backend, clock, skew=5.0)
    assert lock._verifytime() is True
    clock.advance(600)
    with pytest.raises(TimeOffsetError):
        lock._verifytime()


def test_timeparanoid_false_skips_the_check(db: Any, clock: FakeClock) -> None:
    lock = MongoLocker("job", db, timeparanoid=False, clock=clock)
    serve_hello(lock.backend, clock, skew=60.0)
    assert lock.acquire()


def test_unknown_keyword_arguments_are_refused(db: Any) -> None:
    with pytest.raises(TypeError):
        MongoLocker("job", db, no_such_option=1)
    with pytest.raises(TypeError):
        MongoLeaderElector("svc", db, no_such_option=1)


@pytest.mark.parametrize("key", [{"$gt": ""}, 5, None])
def test_keys_must_be_strings(db: Any, key: object) -> None:
    with pytest.raises(TypeError):
        MongoLocker(key, db)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MongoLeaderElector(key, db)  # type: ignore[arg-type]


def test_an_invalid_collection_name_is_refused_before_anything_is_written(db: Any) -> None:
    with pytest.raises(ValueError, match="dbcollection"):
        MongoLocker("job", db, dbcollection="bad$name")
    assert db.list_collection_names() == []


# --- MongoLeaderElector -----------------------------------------------------------------------


def make_elector(db: Any, clock: FakeClock, **options: Any) -> MongoLeaderElector:
    return MongoLeaderElector("svc", db, ttl=15, clock=clock, **options)


def test_2x_timing_arguments_are_passed_on(db: Any, clock: FakeClock) -> None:
    elector = make_elector(db, clock, renew_deadline=9, retry_period=1.5)
    assert (elector.ttl, elector.renew_deadline, elector.retry_period) == (15, 9, 1.5)
    assert elector.poll_wait == 1.5


def test_mlock_is_the_electors_lock(db: Any, clock: FakeClock) -> None:
    elector = make_elector(db, clock)
    assert elector.mlock.uuid == elector.uuid
    assert not elector.mlock.owned()
    elector.poll()
    assert elector.mlock.owned()
    assert elector.mlock.status["lock_owned"] is True
    elector.release()
    assert not elector.mlock.owned()


def test_leaders_are_announced_with_their_token(db: Any, clock: FakeClock) -> None:
    seen: list[LeaderInfo] = []
    leader = make_elector(db, clock)
    follower = make_elector(db, clock, on_new_leader=seen.append)
    leader.poll()
    follower.poll()
    assert [info.uuid for info in seen] == [leader.uuid]
    assert seen[0].token == leader.token


def test_status_reports_carry_the_token(db: Any, clock: FakeClock) -> None:
    elector = make_elector(db, clock)
    elector.poll()
    document = db["elector.leader_status"].find_one({"_id": elector.uuid})
    assert document["token"] == elector.token
    assert elector.node_status["token"] == elector.token


def test_a_crashed_leader_is_replaced_within_ttl_plus_retry_period(
    db: Any, clock: FakeClock
) -> None:
    leader = make_elector(db, clock)
    follower = make_elector(db, clock)
    leader.poll()
    old_token = leader.token
    # The leader's process stops: it never polls again. The follower keeps polling.
    elapsed = 0.0
    while not follower.is_leader:
        clock.advance(follower.retry_period)
        elapsed += follower.retry_period
        follower.poll()
        assert elapsed <= follower.ttl + follower.retry_period
    assert follower.token > old_token
    assert not leader.is_leader, "the crashed leader's own view lapsed at its deadline"


def test_a_clock_check_failure_keeps_the_elector_a_follower(db: Any, clock: FakeClock) -> None:
    elector = make_elector(db, clock)
    serve_hello(elector.backend, clock, skew=3.0)  # type: ignore[arg-type]
    elector.poll()
    assert not elector.is_leader
    assert db["elector.locks"].count_documents({}) == 0
    serve_hello(elector.backend, clock, skew=0.0)  # type: ignore[arg-type]
    clock.advance(elector.retry_period)
    elector.poll()
    assert elector.is_leader


def test_timeparanoid_can_be_turned_off_for_the_elector(db: Any, clock: FakeClock) -> None:
    elector = make_elector(db, clock, timeparanoid=False)
    serve_hello(elector.backend, clock, skew=3.0)  # type: ignore[arg-type]
    elector.poll()
    assert elector.is_leader


# --- MongoLeaderElector.stop(): the 1.x promise that its callbacks have run ------------------


def _started_with_held_on_leader(
    db: Any, monkeypatch: pytest.MonkeyPatch, changes: list[str], let_go: threading.Event
) -> MongoLeaderElector:
    """A started facade whose ``on_leader`` has begun on the callback thread and waits for
    ``let_go``; ``changes`` gets ``"leader"`` and ``"loss"`` as the callbacks run."""
    monkeypatch.setattr(MongoLocker, "_verifytime", lambda self: True)
    began = threading.Event()

    def on_leader() -> None:
        began.set()
        let_go.wait(GUARD)
        changes.append("leader")

    elector = MongoLeaderElector(
        "svc", db, ttl=5, on_leader=on_leader, on_leader_loss=lambda: changes.append("loss")
    )
    elector.start()
    assert began.wait(GUARD)
    return elector


def test_stop_returns_after_the_callbacks_that_were_due(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``on_leader`` is still running elsewhere when the 2.x ``stop()`` is done; the
    facade's ``stop()`` returns only after it and then ``on_leader_loss`` have run."""
    changes: list[str] = []
    let_go = threading.Event()
    elector = _started_with_held_on_leader(db, monkeypatch, changes, let_go)
    plain_stop = LeaderElector.stop

    def stop_then_let_go(self: LeaderElector) -> None:
        plain_stop(self)
        let_go.set()  # on_leader goes on only now, after the 2.x stop() returned

    monkeypatch.setattr(LeaderElector, "stop", stop_then_let_go)
    elector.stop()
    changes.append("stop returned")

    assert changes == ["leader", "loss", "stop returned"]


def test_the_check_sees_a_stop_that_does_not_wait_for_the_callbacks(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MongoLeaderElector, "wait_idle", lambda self, timeout=None: True)
    with pytest.raises(AssertionError):
        test_stop_returns_after_the_callbacks_that_were_due(db, monkeypatch)


def test_stop_waits_for_a_blocked_callback_at_most_one_poll_interval(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes: list[str] = []
    let_go = threading.Event()
    elector = _started_with_held_on_leader(db, monkeypatch, changes, let_go)

    elector.stop()  # on_leader blocks until let_go: stop() gives up on it after poll_wait

    assert changes == [] and not elector.running
    let_go.set()
    assert elector.wait_idle(GUARD)
    assert changes == ["leader", "loss"]


def test_stop_from_its_own_callback_waits_for_none(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MongoLocker, "_verifytime", lambda self: True)
    changes: list[str] = []
    waited: list[float | None] = []
    monkeypatch.setattr(
        MongoLeaderElector, "wait_idle", lambda self, timeout=None: waited.append(timeout)
    )

    def on_leader() -> None:
        elector.stop()  # on_leader_loss runs after this callback, on the same thread
        changes.append("leader")

    elector = MongoLeaderElector(
        "svc", db, ttl=5, on_leader=on_leader, on_leader_loss=lambda: changes.append("loss")
    )
    elector.start()
    assert wait_for(lambda: changes == ["leader", "loss"], limit=GUARD)
    assert waited == []
