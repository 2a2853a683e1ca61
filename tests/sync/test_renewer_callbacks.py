"""``Lock.release()`` never waits for a user callback that the renewer is running.

The renewer runs user code (on the scheduler's callback thread): ``on_lost``
and the event listeners of the lock. A callback may wait for another thread,
and that thread may be the one calling ``release()``; ``release()`` therefore
waits only for the renewer's own work (an in-flight renew), never for a
callback. The callbacks still run
once per lost holding, may call the lock's own methods, and once ``release()``
has returned no renew of the released holding is sent.

Every wait is bounded: ``PATIENCE`` real seconds for a thread that must not be
stuck (alive after it means a deadlock; a liveness check, not a timing
assertion), ``GUARD`` for waits that only a broken build reaches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from mongoelector import Lock, LockLost
from mongoelector._sync.renewer import Renewer, running
from mongoelector.backends import MemoryBackend
from mongoelector.monitoring import (
    EventListener,
    LeadershipLostEvent,
    MonitoringEvent,
    RenewedEvent,
    StoreErrorEvent,
)
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend, wait_for

PATIENCE = 5.0  # real seconds a release() may take before it counts as deadlocked
GUARD = 30.0  # real seconds; a hang guard for waits that only a broken build reaches
TTL = 15.0  # renew deadline 10 s, renewals every 2 s


def renewers() -> list[Renewer]:
    """The process's running renewers (they have no threads: they share the scheduler's)."""
    return running()


def on_the_callback_thread(names: list[str]) -> bool:
    """True if ``names`` is one call, made on a callback thread of the scheduler."""
    return len(names) == 1 and names[0].startswith("mongoelector-callbacks-")


@pytest.fixture(autouse=True)
def no_renewer_left_behind() -> Iterator[None]:
    yield
    assert wait_for(lambda: renewers() == [], limit=GUARD)


class Listener(EventListener):
    """Records the events of the lock, and runs ``on_event`` (if set) for chosen kinds."""

    def __init__(self) -> None:
        self.events: list[MonitoringEvent] = []
        self.on_event: Callable[[], None] | None = None
        self.kinds: tuple[type[MonitoringEvent], ...] = ()

    def _seen(self, event: MonitoringEvent) -> None:
        self.events.append(event)
        if isinstance(event, self.kinds) and self.on_event is not None:
            self.on_event()

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self._seen(event)

    def renewed(self, event: RenewedEvent) -> None:
        self._seen(event)

    def store_error(self, event: StoreErrorEvent) -> None:
        self._seen(event)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What happened when another thread released the lock while a callback waited for it."""

    release_returned: bool  # within PATIENCE, while the callback still waited: no deadlock
    callback_threads: list[str]  # the thread of each call of the waiting callback
    renews_when_released: int  # renew calls sent before release() returned
    renews_after: int  # renew calls sent in all, after 3 more ttls of virtual time


#: Which user callback waits for the release, and how the test makes the renewer call it.
CALLBACKS = ("on_lost", "leadership_lost listener", "store_error listener")


def release_while_a_callback_waits_for_it(
    clock: FakeClock, backend: MemoryBackend, callback: str, *, patience: float = PATIENCE
) -> Report:
    """Hold the renewer thread inside ``callback``, which waits until another thread's
    ``release()`` has returned, and report whether that ``release()`` returned in time.

    Whatever the verdict, the callback is then let go and every thread ends
    (bounded), so a deadlock is reported instead of hanging the suite.
    """
    link = FlakyBackend(backend)
    listener = Listener()
    entered, released = threading.Event(), threading.Event()
    callback_threads: list[str] = []

    def wait_for_the_release() -> None:
        callback_threads.append(threading.current_thread().name)
        if not threading.current_thread().name.startswith("mongoelector-callbacks-"):
            return  # not the renewer's call: the test fails on callback_threads
        link.mode = "ok"  # the store is back for the release (it was down for store_error)
        entered.set()
        released.wait(GUARD)

    lock = Lock(
        "job",
        link,
        ttl=TTL,
        clock=clock,
        auto_renew=True,
        on_lost=wait_for_the_release if callback == "on_lost" else None,
        event_listeners=[listener],
    )
    if callback != "on_lost":
        listener.on_event = wait_for_the_release
        listener.kinds = (
            (LeadershipLostEvent,) if callback == "leadership_lost listener" else (StoreErrorEvent,)
        )
    lock.acquire()
    if callback == "store_error listener":
        link.mode = "down"  # the next renew fails: the renewer tells the listeners
    else:
        backend.delete("job")  # the next renew finds the holding gone: lost
    clock.advance(lock.retry_period)
    assert entered.wait(GUARD), "the renewer never called the callback"

    renews_when_released: list[int] = []

    def release_then_let_the_callback_go() -> None:
        lock.release()
        renews_when_released.append(link.calls["renew"])
        released.set()

    releaser = threading.Thread(target=release_then_let_the_callback_go, name="releaser")
    releaser.start()
    releaser.join(timeout=patience)
    release_returned = not releaser.is_alive()
    released.set()  # let the callback go in any case
    releaser.join(timeout=GUARD)
    assert not releaser.is_alive()
    assert wait_for(lambda: renewers() == [], limit=GUARD)
    for _ in range(int(3 * TTL)):
        clock.advance(1.0)
        assert lock.wait_idle(GUARD)
    return Report(
        release_returned=release_returned,
        callback_threads=callback_threads,
        renews_when_released=renews_when_released[0],
        renews_after=link.calls["renew"],
    )


class TestReleaseFromAnotherThread:
    @pytest.mark.parametrize("callback", CALLBACKS)
    def test_returns_while_a_callback_waits_for_it_and_nothing_is_renewed_after(
        self, clock: FakeClock, backend: MemoryBackend, callback: str
    ) -> None:
        report = release_while_a_callback_waits_for_it(clock, backend, callback)
        assert report.release_returned, "release() waited for the callback: deadlock"
        assert on_the_callback_thread(report.callback_threads)  # once, for the renewer
        assert report.renews_after == report.renews_when_released
        record = backend.get("job")
        assert record is None or record.owner is None  # released, or deleted by the test

    def test_the_scenario_reports_a_release_that_waits_for_the_callback(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: stopping a renewer waits until it has ended, whatever it is doing.
        stop = Renewer.stop

        def stop_and_wait_for_the_end(renewer: Renewer) -> None:
            stop(renewer)
            if not threading.current_thread().name.startswith("mongoelector-callbacks-"):
                with renewer._guard:
                    renewer._wait_locked(lambda: renewer._control.done, GUARD)

        monkeypatch.setattr(Renewer, "stop", stop_and_wait_for_the_end)
        report = release_while_a_callback_waits_for_it(clock, backend, "on_lost", patience=0.5)
        assert not report.release_returned
        assert on_the_callback_thread(report.callback_threads)


class TestOnLostCallsItsOwnLock:
    def test_release_frees_the_store_and_the_renewer_ends(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        results: list[bool] = []
        locks: list[Lock] = []

        def release() -> None:
            link.mode = "ok"
            results.append(locks[0].release())

        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True, on_lost=release)
        locks.append(lock)
        lock.acquire()
        link.mode = "down"  # no renewal succeeds: lost at the renew deadline
        for _ in range(int(lock.renew_deadline)):
            clock.advance(1.0)
            assert lock.wait_idle(GUARD)
        assert results == [True]  # the store still had it; the callback's release freed it
        assert lock.lost.is_set()
        assert wait_for(lambda: renewers() == [], limit=GUARD)
        assert Lock("job", backend, ttl=TTL, clock=clock).acquire(blocking=False)

    def test_acquire_starts_a_new_holding_whose_loss_fires_the_callback_again(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        tokens: list[int | None] = []
        locks: list[Lock] = []

        def reacquire() -> None:
            locks[0].acquire(blocking=False)
            tokens.append(locks[0].token)

        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=reacquire)
        locks.append(lock)
        lock.acquire()
        first = lock.token
        assert first is not None
        backend.delete("job")
        clock.advance(lock.retry_period)
        assert lock.wait_idle(GUARD)  # the lost holding's renewer has ended too
        assert tokens == [lock.token]
        assert lock.token is not None and lock.token > first
        assert not lock.lost.is_set()
        assert len(renewers()) == 1
        for _ in range(int(3 * TTL)):
            clock.advance(1.0)
            assert lock.wait_idle(GUARD)
        assert lock.ensure() == tokens[0]  # kept alive by the new renewer
        backend.delete("job")
        clock.advance(lock.retry_period)
        assert lock.wait_idle(GUARD)
        assert len(tokens) == 2  # once per lost holding
        lock.release()

    def test_touch_returns_none_without_a_store_call(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        touched: list[object] = []
        locks: list[Lock] = []

        def touch() -> None:
            calls = link.total_calls
            touched.append(locks[0].touch())
            touched.append(link.total_calls - calls)

        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True, on_lost=touch)
        locks.append(lock)
        lock.acquire()
        backend.delete("job")
        clock.advance(lock.retry_period)
        assert lock.wait_idle(GUARD)
        assert touched == [None, 0]
        lock.release()

    def test_release_from_another_thread_meanwhile_returns_and_wait_idle_waits_for_the_callback(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        entered, leave = threading.Event(), threading.Event()
        finished: list[str] = []

        def slow() -> None:
            entered.set()
            leave.wait(GUARD)
            finished.append("on_lost")

        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=slow)
        lock.acquire()
        backend.delete("job")
        clock.advance(lock.retry_period)
        assert entered.wait(GUARD)
        releaser = threading.Thread(target=lock.release)
        releaser.start()
        releaser.join(timeout=PATIENCE)
        assert not releaser.is_alive()
        leave.set()
        assert lock.wait_idle(GUARD)  # returns once the callback has finished
        assert finished == ["on_lost"]
        assert renewers() == []


class TestReleaseDuringAnInFlightRenewal:
    def test_the_reply_is_not_trusted_and_no_renew_follows(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        entered, leave = threading.Event(), threading.Event()

        def hold_renewals(name: str) -> None:
            if name == "renew":
                entered.set()
                leave.wait(GUARD)

        link = FlakyBackend(backend)
        link.before_call = hold_renewals
        listener = Listener()
        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True, event_listeners=[listener])
        lock.acquire()
        clock.advance(lock.retry_period)
        assert entered.wait(GUARD)
        releaser = threading.Thread(target=lock.release)
        releaser.start()
        leave.set()
        releaser.join(timeout=PATIENCE)
        assert not releaser.is_alive()
        renews = link.calls["renew"]
        assert renews == 1
        record = backend.get("job")
        assert record is not None and record.owner is None
        assert lock.token is None
        with pytest.raises(LockLost, match="was released"):
            lock.ensure()
        assert not any(isinstance(event, RenewedEvent) for event in listener.events)
        for _ in range(int(3 * TTL)):
            clock.advance(1.0)
            assert lock.wait_idle(GUARD)
        assert link.calls["renew"] == renews
        assert not lock.lost.is_set()
