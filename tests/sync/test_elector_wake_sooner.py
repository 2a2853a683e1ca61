"""A started elector's next poll is brought forward (``_wake_sooner``) only by a wake-up
time that is still the machine's: never by one read before the loop polled and parked
again, which would make it poll twice at one instant (a leader: two renewals).

``_wake_sooner`` runs at the end of every park, on a worker, after the loop is parked and
its wake-up entry armed; the timer may fire that entry, and a worker run the whole poll
and park again, before that worker goes on. The tests below stop the worker's part at the
moment it takes the loop's lock (``PausingGuard``) and run the loop's next poll then, in
the other threads: the interleaving that made
``tests/backends/test_mongo_elector_batches.py`` count a fifth renewal now and then.
The blocking loop (``start(blocking=True)``) parks in ``_wait_in_thread`` the same way:
its wake-up time read and the loop parked as of one moment, or a caller's ``poll()`` that
wins in between finds nothing parked to wake, and the new leader's loop sleeps through its
renewal until its stale follower read.

Everything runs on a FakeClock; ``GUARD`` real seconds only bound waits that a broken
build would never finish.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

import pytest

from mongoelector import LeaderElector
from mongoelector._sync import elector as elector_module
from mongoelector._sync.guard import Guard
from mongoelector.backends import LeaseRecord, MemoryBackend, RenewItem
from mongoelector.testing import FakeClock
from tests.fakes import wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion


class CountingStore(MemoryBackend):
    """A MemoryBackend (it renews in batches) that counts the renewals sent."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.renewals = 0
        self._count = threading.Lock()

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        with self._count:
            self.renewals += 1
        return super().renew(key, owner, token, ttl)

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        with self._count:
            self.renewals += len(items)
        return super().renew_many(items)


class OwnedLock:
    """A lock that tells (``contended``) when a thread waits for it while ``watched`` (a
    thread's ident) holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.watched: int | None = None
        self.contended = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(blocking=False):
            if not blocking:
                return False
            if self._owner is not None and self._owner == self.watched:
                self.contended.set()
            if not self._lock.acquire(True, timeout):
                return False
        self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class PausingGuard(Guard):
    """A Guard that runs ``pause`` once, in the thread ``watched``, before that thread next
    takes it."""

    __slots__ = ("pause", "watched")

    def __init__(self) -> None:
        super().__init__()
        self.pause: Callable[[], None] | None = None
        self.watched: int | None = None

    def __enter__(self) -> bool:
        pause = self.pause
        if pause is not None and threading.get_ident() == self.watched:
            self.pause = None
            pause()
        return super().__enter__()


def renewals_at_one_instant(clock: FakeClock) -> int:
    """The renewals a lone started leader sends at t = 2 s (its renew interval), when the
    loop's poll at 2 s runs while ``_wake_sooner`` (of its park at t = 0) is between
    reading the machine's wake-up time and taking the loop's lock."""
    store = CountingStore(clock)
    node = LeaderElector("wake", store, ttl=15.0, clock=clock, report_status=False)
    state, machine_lock = PausingGuard(), OwnedLock()
    node._state = state
    node._machine_lock = machine_lock  # type: ignore[assignment]
    node.start()
    try:
        assert wait_for(lambda: node.is_leader, limit=GUARD)
        assert node.wait_idle(GUARD)
        loop = node._loop
        assert loop is not None and loop.parked_until == 2.0  # renews at t = 2 s
        assert store.renewals == 0

        def next_poll_meanwhile() -> None:
            # The loop's poll at t = 2 s, in the timer and a worker. It runs to its end
            # (the loop parked again until t = 4 s), unless it has to wait for the
            # machine lock that this thread holds: then this thread goes on first.
            clock.advance(2.0)
            assert wait_for(
                lambda: machine_lock.contended.is_set() or node.wait_idle(0), limit=GUARD
            )

        me = threading.get_ident()
        machine_lock.watched = state.watched = me
        state.pause = next_poll_meanwhile
        node._wake_sooner(loop)  # what the worker runs last in its park at t = 0
        assert state.pause is None  # it paused
        machine_lock.watched = None
        assert node.wait_idle(GUARD)
        assert node.is_leader and clock.monotonic() == 2.0
        return store.renewals
    finally:
        node.stop()


def test_a_wake_up_time_read_before_the_loop_polled_again_does_not_poll_it_twice(
    clock: FakeClock,
) -> None:
    assert renewals_at_one_instant(clock) == 1


def _racy_wake_sooner(self: LeaderElector, loop: elector_module._Loop | None) -> None:
    """``_wake_sooner`` as it was: the machine's time read, then compared under ``_state``
    in a second step (the loop may have polled and parked again in between)."""
    if loop is None:
        return
    with self._machine_lock:
        wake_at = self._machine.wake_at()
    with self._state:
        if loop.stopped or loop.done or loop.parked_until is None:
            return
        if wake_at >= loop.parked_until or loop.phase is not elector_module._Phase.PARKED:
            return
        assert not loop.blocking and not math.isinf(wake_at)
        loop.parked_until = wake_at
        self._rearm_locked(loop, wake_at, self._due)
        self._state.notify_all()


def test_with_wake_sooner_mutated_to_read_the_time_apart_the_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: the stale time (2 s) wakes the loop parked until
    4 s at once, and it renews a second time at t = 2 s."""
    monkeypatch.setattr(LeaderElector, "_wake_sooner", _racy_wake_sooner)
    assert renewals_at_one_instant(clock) == 2  # the check above fails


class PausingInWaitGuard(Guard):
    """A Guard that runs ``pause`` once, in whichever thread next takes it from
    ``LeaderElector._wait_in_thread`` (the blocking loop parking)."""

    __slots__ = ("pause",)

    def __init__(self) -> None:
        super().__init__()
        self.pause: Callable[[], None] | None = None

    def __enter__(self) -> bool:
        pause = self.pause
        if pause is not None and sys._getframe(1).f_code.co_name.endswith("_wait_in_thread"):
            self.pause = None
            pause()
        return super().__enter__()


def blocking_loop_after_a_caller_won(clock: FakeClock) -> tuple[float | None, float]:
    """A follower's blocking loop parks for its next read (a time it read from the
    machine) while a caller's ``poll()`` wins the lease: the loop's wake-up time then,
    once everything settled, and the machine's (the renewal's, sooner)."""
    store = MemoryBackend(clock)
    other = LeaderElector("wake", store, ttl=15.0, clock=clock, report_status=False)
    other.poll()
    assert other.is_leader
    node = LeaderElector(
        "wake", store, ttl=15.0, follower_poll=5.0, clock=clock, report_status=False
    )  # it reads at t = 5 s as a follower, renews at t = 2 s as the leader
    state, machine_lock = PausingInWaitGuard(), OwnedLock()
    node._state = state
    node._machine_lock = machine_lock  # type: ignore[assignment]
    poller = threading.Thread(target=node.poll, daemon=True)
    paused = threading.Event()

    def caller_wins_meanwhile() -> None:
        # In the loop's thread, its follower wake-up time read: the lease is freed and a
        # caller polls (it wins). It runs to its end, unless it has to wait for the machine
        # lock that this thread holds: then this thread goes on first.
        machine_lock.watched = threading.get_ident()
        other.release()
        poller.start()
        assert wait_for(
            lambda: machine_lock.contended.is_set() or not poller.is_alive(), limit=GUARD
        )
        machine_lock.watched = None
        paused.set()

    state.pause = caller_wins_meanwhile
    thread = threading.Thread(target=node.start, kwargs={"blocking": True}, daemon=True)
    thread.start()
    try:
        assert paused.wait(GUARD)  # a hang guard
        poller.join(GUARD)
        assert not poller.is_alive()  # a hang guard
        assert node.is_leader
        assert node.wait_idle(GUARD)
        loop = node._latest
        assert loop is not None and loop.blocking
        with node._machine_lock:
            wake_at = node._machine.wake_at()
        return loop.parked_until, wake_at
    finally:
        node.stop()
        thread.join(GUARD)
        assert not thread.is_alive()  # a hang guard


def test_a_blocking_loop_parking_while_a_caller_wins_waits_for_its_renewal(
    clock: FakeClock,
) -> None:
    parked_until, wake_at = blocking_loop_after_a_caller_won(clock)
    assert parked_until == wake_at


def _racy_wait_in_thread(self: LeaderElector, loop: elector_module._Loop) -> None:
    """``_wait_in_thread`` as it was: the machine's time read without the machine lock,
    then the loop parked under ``_state`` in a second step (a caller's poll may have made
    the next poll due sooner in between, and its ``_wake_sooner`` found nothing parked)."""
    try:
        while True:
            loop.wakeup.clear()
            if loop.stopped:
                return
            wake_at = self._machine.wake_at()
            if wake_at <= self._clock.monotonic():
                return
            with self._state:
                loop.parked_until = wake_at
                self._state.notify_all()
            self._clock.wait_until(wake_at, loop.wakeup)
    finally:
        with self._state:
            loop.parked_until = None


def test_with_wait_in_thread_mutated_to_park_apart_the_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: the loop waits for its follower read (the wake-up
    time it read before the caller won), not for the renewal due sooner."""
    monkeypatch.setattr(LeaderElector, "_wait_in_thread", _racy_wait_in_thread)
    parked_until, wake_at = blocking_loop_after_a_caller_won(clock)
    assert parked_until is not None and parked_until > wake_at  # the check above fails
