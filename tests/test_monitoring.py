"""Event listeners hear every leadership change, renewal and store error, from every driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TypeVar

import pytest

from mongoelector import Lock, monitoring
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.monitoring import (
    EventListener,
    LeaderChangedEvent,
    LeadershipGainedEvent,
    LeadershipLostEvent,
    LossReason,
    MonitoringEvent,
    RenewedEvent,
    StoreErrorEvent,
)
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for
from tests.electors import elector
from tests.fakes import FlakyBackend

E = TypeVar("E", bound=MonitoringEvent)


class Recorder(EventListener):
    def __init__(self) -> None:
        self.events: list[MonitoringEvent] = []

    def leadership_gained(self, event: LeadershipGainedEvent) -> None:
        self.events.append(event)

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.events.append(event)

    def renewed(self, event: RenewedEvent) -> None:
        self.events.append(event)

    def store_error(self, event: StoreErrorEvent) -> None:
        self.events.append(event)

    def leader_changed(self, event: LeaderChangedEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def names(self) -> list[str]:
        return [type(event).__name__.removesuffix("Event") for event in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# --- electors ----------------------------------------------------------------------------


def test_an_elector_reports_its_term_from_gain_to_release(
    backend: MemoryBackend, clock: FakeClock, recorder: Recorder
) -> None:
    node = elector(backend, clock, recorder)

    node.poll()
    clock.advance(2)
    node.poll()
    clock.advance(3)
    node.release()

    assert recorder.names() == ["LeadershipGained", "LeaderChanged", "Renewed", "LeadershipLost"]
    gained, changed, renewed, lost = recorder.events
    assert gained == LeadershipGainedEvent(
        key="jobs", owner=node.uuid, kind="elector", token=1, latency=0.0
    )
    assert isinstance(changed, LeaderChangedEvent) and changed.leader.uuid == node.uuid
    assert renewed == RenewedEvent(
        key="jobs", owner=node.uuid, kind="elector", token=1, latency=0.0, margin=8.0, late=False
    )
    assert lost == LeadershipLostEvent(
        key="jobs", owner=node.uuid, kind="elector", token=1, reason=LossReason.RELEASED,
        held_for=5.0,
    )  # fmt: skip


def test_renewals_that_keep_failing_are_store_errors_then_a_late_renewal(
    flaky: FlakyBackend, clock: FakeClock, recorder: Recorder
) -> None:
    node = elector(flaky, clock, recorder)
    node.poll()
    flaky.mode = "down"
    for _ in range(3):
        clock.advance(2)
        node.poll()
    flaky.mode = "ok"
    clock.advance(2)
    node.poll()

    errors = recorder.of(StoreErrorEvent)
    assert [(e.operation, e.token, e.ambiguous) for e in errors] == [("renew", 1, False)] * 3
    [renewed] = recorder.of(RenewedEvent)
    assert renewed.margin == 2.0 and renewed.late


def test_a_leader_cut_off_steps_down_at_its_deadline(
    flaky: FlakyBackend, clock: FakeClock, recorder: Recorder
) -> None:
    node = elector(flaky, clock, recorder)
    node.poll()
    flaky.mode = "down"
    clock.advance(10)
    node.poll()

    [lost] = recorder.of(LeadershipLostEvent)
    assert lost.reason is LossReason.DEADLINE and lost.held_for == 10.0


def test_a_lease_taken_over_is_reported_as_such(
    backend: MemoryBackend, clock: FakeClock, recorder: Recorder
) -> None:
    node = elector(backend, clock, recorder)
    node.poll()
    Lock("jobs", backend, clock=clock).acquire(force=True)
    clock.advance(2)
    node.poll()

    [lost] = recorder.of(LeadershipLostEvent)
    assert lost.reason is LossReason.TAKEN_OVER


def test_followers_hear_of_the_new_leader(
    backend: MemoryBackend, clock: FakeClock, recorder: Recorder
) -> None:
    leader = elector(backend, clock)
    follower = elector(backend, clock, recorder)
    leader.poll()
    follower.poll()

    [changed] = recorder.events
    assert isinstance(changed, LeaderChangedEvent)
    assert changed.owner == follower.uuid and changed.leader.uuid == leader.uuid
    assert changed.leader.token == 1


# --- locks ----------------------------------------------------------------------------------


def test_a_lock_reports_acquire_touch_and_release(
    backend: MemoryBackend, clock: FakeClock, recorder: Recorder
) -> None:
    lock = Lock("job", backend, ttl=15, clock=clock, event_listeners=[recorder])

    lock.acquire()
    clock.advance(4)
    lock.touch()
    lock.release()

    assert recorder.names() == ["LeadershipGained", "Renewed", "LeadershipLost"]
    gained, renewed, lost = recorder.events
    assert isinstance(gained, LeadershipGainedEvent) and gained.kind == "lock"
    assert isinstance(renewed, RenewedEvent) and renewed.margin == 6.0 and not renewed.late
    assert isinstance(lost, LeadershipLostEvent) and lost.reason is LossReason.RELEASED
    assert lost.held_for == 4.0


def test_a_lock_reports_store_errors_on_acquire_touch_and_release(
    flaky: FlakyBackend, clock: FakeClock, recorder: Recorder
) -> None:
    lock = Lock("job", flaky, ttl=15, clock=clock, event_listeners=[recorder])
    flaky.mode = "down"
    with pytest.raises(Exception, match="unreachable"):
        lock.acquire(blocking=False)
    flaky.mode = "ok"
    lock.acquire()
    flaky.mode = "down"
    with pytest.raises(Exception, match="unreachable"):
        lock.touch()
    with pytest.raises(Exception, match="unreachable"):
        lock.release()

    operations = [e.operation for e in recorder.of(StoreErrorEvent)]
    assert operations == ["acquire", "renew", "release"]


def test_the_auto_renewer_reports_renewals_and_the_loss(
    flaky: FlakyBackend, clock: FakeClock, recorder: Recorder
) -> None:
    lock = Lock("job", flaky, ttl=15, clock=clock, auto_renew=True, event_listeners=[recorder])
    lock.acquire()
    clock.advance(2)
    assert lock.wait_idle(5)
    flaky.mode = "down"
    for _ in range(5):
        clock.advance(2)
        assert lock.wait_idle(5)

    assert recorder.names()[:2] == ["LeadershipGained", "Renewed"]
    assert {e.operation for e in recorder.of(StoreErrorEvent)} == {"renew"}
    [lost] = recorder.of(LeadershipLostEvent)
    assert lost.reason is LossReason.DEADLINE


# --- the asyncio drivers report through the same code ------------------------------------------


async def test_async_electors_and_locks_report_too(
    backend: MemoryBackend, clock: FakeClock, recorder: Recorder
) -> None:
    node = AsyncLeaderElector("jobs", backend, clock=clock, event_listeners=[recorder])
    await node.poll()
    await node.release()
    lock = AsyncLock("job", backend, clock=clock, event_listeners=[recorder])
    await lock.acquire()
    await lock.touch()
    await lock.release()

    assert recorder.names() == [
        "LeadershipGained", "LeaderChanged", "LeadershipLost",
        "LeadershipGained", "Renewed", "LeadershipLost",
    ]  # fmt: skip
    assert [e.kind for e in recorder.events] == ["elector"] * 3 + ["lock"] * 3


async def test_the_async_auto_renewer_reports_renewals_and_the_loss(
    flaky: FlakyBackend, clock: FakeClock, recorder: Recorder
) -> None:
    lock = AsyncLock("job", flaky, ttl=15, clock=clock, auto_renew=True, event_listeners=[recorder])
    await lock.acquire()
    await run_for(clock, 2)
    flaky.mode = "down"
    await run_for(clock, 10)

    assert recorder.names()[:2] == ["LeadershipGained", "Renewed"]
    assert {e.operation for e in recorder.of(StoreErrorEvent)} == {"renew"}
    [lost] = recorder.of(LeadershipLostEvent)
    assert lost.reason is LossReason.DEADLINE
    assert lock.renewer is None


# --- listeners that fail, and process-wide listeners ---------------------------------------------


class Broken(EventListener):
    def leadership_gained(self, event: LeadershipGainedEvent) -> None:
        raise RuntimeError("listener bug")


def test_a_listener_that_raises_is_logged_and_changes_nothing(
    backend: MemoryBackend,
    clock: FakeClock,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = elector(backend, clock, Broken(), recorder)

    with caplog.at_level(logging.ERROR, logger="mongoelector.monitoring"):
        node.poll()

    assert node.is_leader and node.token == 1
    assert recorder.names()[0] == "LeadershipGained"  # the next listener still heard it
    [record] = caplog.records
    assert "raised in leadership_gained()" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


@pytest.fixture
def registered(recorder: Recorder) -> Iterator[Recorder]:
    monitoring.register(recorder)
    monitoring.register(recorder)  # twice is once
    try:
        yield recorder
    finally:
        monitoring.unregister(recorder)


def test_registered_listeners_hear_every_elector_and_lock(
    backend: MemoryBackend, clock: FakeClock, registered: Recorder
) -> None:
    node = elector(backend, clock)  # no listener of its own
    node.poll()
    Lock("other", backend, clock=clock).acquire()

    assert monitoring.registered() == (registered,)
    assert [(type(e).__name__, e.kind) for e in registered.of(LeadershipGainedEvent)] == [
        ("LeadershipGainedEvent", "elector"),
        ("LeadershipGainedEvent", "lock"),
    ]
    monitoring.unregister(registered)
    node.release()
    assert not registered.of(LeadershipLostEvent)


@pytest.mark.parametrize(
    ("listeners", "complaint"),
    [
        (object(), "event_listeners must be an iterable of EventListener"),
        (Recorder(), "event_listeners must be an iterable of EventListener"),
        ([print], "event_listeners must hold EventListener instances, got builtin_function"),
    ],
)
def test_listeners_must_be_event_listeners(
    backend: MemoryBackend, listeners: object, complaint: str
) -> None:
    with pytest.raises(TypeError, match=complaint):
        Lock("job", backend, event_listeners=listeners)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="listener must hold EventListener instances"):
        monitoring.register(print)  # type: ignore[arg-type]


def test_the_1x_facades_take_listeners_too(recorder: Recorder) -> None:
    import mongomock

    from mongoelector import MongoLeaderElector, MongoLocker

    database = mongomock.MongoClient()["facades"]
    MongoLocker("job", database, timeparanoid=False, event_listeners=[recorder]).acquire()
    MongoLeaderElector("jobs", database, timeparanoid=False, event_listeners=[recorder]).poll()

    gained = recorder.of(LeadershipGainedEvent)
    assert [(e.key, e.kind) for e in gained] == [("job", "lock"), ("jobs", "elector")]
