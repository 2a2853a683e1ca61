"""What an auto-renewed holding costs in memory, and the waits a lean renewer still serves.

Issue 14 asks for 10,000 auto-renewed locks in one process within a few tens
of megabytes, so a renewer keeps no object of its own that it can do without:
no condition variable unless someone waits for it (``release()`` while a
renew is in flight, ``wait_idle()``), no bound method or partial per call it
makes, no weak reference. Memory is counted in bytes allocated (tracemalloc),
never in time; the waits are shown by who is waiting (the renewer's count of
waiters), with real time only as a hang guard.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from mongoelector import Lock
from mongoelector._common import lock_base
from mongoelector._common.renewing import RenewalRules
from mongoelector._sync import batches
from mongoelector._sync import renewer as renewer_module
from mongoelector._sync.renewer import Renewer, running
from mongoelector.backends import MemoryBackend
from mongoelector.core.renewal import RenewalStep
from mongoelector.testing import FakeClock
from mongoelector.timing import LeaseTiming
from tests.fakes import FlakyBackend, wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
LOCKS = 1_000

#: Bytes an auto-renewed holding may cost beyond a plain one (its renewer, its place in the
#: scheduler and in its store's batch group). Measured 507 (Python 3.11-3.13) and 564
#: (3.10); a Condition per renewer alone, as before, added about 1,300 (the whole was
#: 2,900).
RENEWER_BYTES = 750


def bytes_per_lock(clock: FakeClock, backend: MemoryBackend, *, auto_renew: bool) -> float:
    """Bytes allocated, and still held, per lock for ``LOCKS`` locks made and acquired."""
    prefix = "auto" if auto_renew else "plain"
    for i in range(5):  # imports, caches, the scheduler's threads: paid once, not per lock
        warm = Lock(f"{prefix}-warm-{i}", backend, ttl=TTL, clock=clock, auto_renew=auto_renew)
        warm.acquire()
        warm.release()
    gc.collect()
    tracemalloc.start()
    try:
        locks = [
            Lock(f"{prefix}-{i}", backend, ttl=TTL, clock=clock, auto_renew=auto_renew)
            for i in range(LOCKS)
        ]
        for lock in locks:
            lock.acquire()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for lock in locks:
        lock.release()
    return held / LOCKS


def renewer_bytes(clock: FakeClock, backend: MemoryBackend) -> float:
    """What auto-renewal adds to each held lock, in bytes."""
    plain = bytes_per_lock(clock, backend, auto_renew=False)
    return bytes_per_lock(clock, backend, auto_renew=True) - plain


class TestBytesPerHolding:
    def test_an_auto_renewed_holding_costs_at_most_750_bytes_more_than_a_plain_one(
        self, clock: FakeClock, backend: MemoryBackend, not_traced: None
    ) -> None:
        assert 0 < renewer_bytes(clock, backend) <= RENEWER_BYTES

    def test_the_check_catches_a_condition_variable_per_renewer(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        not_traced: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The mutation: each renewer makes its condition variable up front, as it used to.
        made = Renewer.__init__

        def fat(renewer: Renewer, **kwargs: object) -> None:
            made(renewer, **kwargs)  # type: ignore[arg-type]
            renewer._waiters = threading.Condition(renewer._guard)

        monkeypatch.setattr(Renewer, "__init__", fat)
        assert renewer_bytes(clock, backend) > RENEWER_BYTES


# --- waiting for a renewer with no condition variable of its own --------------------------


class HeldRenewal:
    """A lock whose first renewal hangs in the store until :meth:`let_go`."""

    def __init__(self, clock: FakeClock, backend: MemoryBackend) -> None:
        self.entered, self.leave = threading.Event(), threading.Event()
        self.calls: list[str] = []
        link = FlakyBackend(backend)
        link.before_call = self.before_call
        self.lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True)
        self.lock.acquire()
        renewer = self.lock._renewer
        assert renewer is not None
        self.renewer: Renewer = renewer
        clock.advance(self.lock.retry_period)
        assert self.entered.wait(GUARD), "the renewal did not start"

    def before_call(self, name: str) -> None:
        self.calls.append(name)
        if name == "renew" and not self.entered.is_set():
            self.entered.set()
            self.leave.wait(GUARD)

    def let_go(self) -> None:
        self.leave.set()


def waiting_in(held: HeldRenewal, call: Callable[[], object], waiters: int = 1) -> threading.Thread:
    """``call`` on a thread of its own, once it waits for ``held``'s renewer."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    assert wait_for(lambda: held.renewer._waiting == waiters, limit=GUARD), "it did not wait"
    return thread


def no_waiters_left(renewer: Renewer) -> bool:
    with renewer._guard:
        return renewer._waiters is None and renewer._waiting == 0


WAITS: dict[str, Callable[[HeldRenewal], object]] = {
    "release": lambda held: held.lock.release(),
    "wait_idle": lambda held: held.lock.wait_idle(GUARD),
}


def waited_for(held: HeldRenewal, wait: str) -> bool:
    """True once what ``wait`` waits for has come: the renewer ended (a release stops it)
    or it waits for its next time (idle)."""
    renewer = held.renewer
    with renewer._guard:
        return renewer._control.done if wait == "release" else renewer._is_idle()


class TestWaitingForARenewalInFlight:
    def test_a_renewer_nobody_waits_for_has_no_condition_variable(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True)
        lock.acquire()
        renewer = lock._renewer
        assert renewer is not None
        for _ in range(3 * round(TTL)):  # renewals, and wait_idle() after each second
            clock.advance(1.0)
            assert lock.wait_idle(GUARD)
            assert no_waiters_left(renewer)
        assert lock.release()
        assert no_waiters_left(renewer) and renewer.ended

    @pytest.mark.parametrize("wait", sorted(WAITS))
    def test_it_waits_until_the_renewal_returns_then_the_condition_goes(
        self, clock: FakeClock, backend: MemoryBackend, wait: str
    ) -> None:
        held = HeldRenewal(clock, backend)
        waiter = waiting_in(held, lambda: WAITS[wait](held))
        assert waiter.is_alive() and held.renewer._waiters is not None
        held.let_go()
        waiter.join(GUARD)
        assert not waiter.is_alive()
        assert no_waiters_left(held.renewer)
        if wait == "release":
            assert held.calls == ["compare_and_set", "renew", "release"]
            assert held.renewer.ended
        held.lock.release()

    def test_two_waiters_share_one_condition_until_both_are_done(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        held = HeldRenewal(clock, backend)
        idle = waiting_in(held, lambda: held.lock.wait_idle(GUARD), waiters=1)
        waiters = held.renewer._waiters
        release = waiting_in(held, held.lock.release, waiters=2)
        assert held.renewer._waiters is waiters is not None
        held.let_go()
        for thread in (idle, release):
            thread.join(GUARD)
            assert not thread.is_alive()
        assert no_waiters_left(held.renewer) and held.renewer.ended

    @pytest.mark.parametrize("wait", sorted(WAITS))
    def test_the_check_catches_a_change_that_wakes_nobody(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        monkeypatch: pytest.MonkeyPatch,
        wait: str,
    ) -> None:
        # The mutation: the renewer's changes of state notify no waiter.
        notify = Renewer._notify_locked
        monkeypatch.setattr(Renewer, "_notify_locked", lambda renewer: None)
        held = HeldRenewal(clock, backend)
        waiter = waiting_in(held, lambda: WAITS[wait](held))
        held.let_go()
        assert wait_for(lambda: waited_for(held, wait), limit=GUARD)
        waiter.join(0.5)  # patience: with the mutation it never returns, nobody woke it
        assert waiter.is_alive()
        with held.renewer._guard:  # free it
            notify(held.renewer)
        waiter.join(GUARD)
        assert not waiter.is_alive()
        held.lock.release()


# --- the running renewers: strong references, so none may stay behind ---------------------


def fail_to_start(
    clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> Lock:
    """A lock whose renewer crashes as it starts (its first decision raises)."""

    def broken(rules: RenewalRules) -> RenewalStep:
        raise RuntimeError("broken rules")

    monkeypatch.setattr(RenewalRules, "next_step", broken)
    lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True)
    with pytest.raises(RuntimeError, match="broken rules"):
        lock.acquire()
    return lock


def left_behind(clock: FakeClock) -> list[object]:
    """What renewers on ``clock`` left in the process-wide state: running renewers and
    renew groups (the autouse fixture below requires none after each test)."""
    running_here: list[object] = [r for r in running() if r._clock is clock]
    return running_here + [group for group in batches.groups() if group.clock is clock]


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock) -> Iterator[None]:
    yield
    assert wait_for(lambda: left_behind(clock) == [], limit=GUARD), left_behind(clock)


def kept(lock: Lock) -> list[Renewer]:
    return [renewer for renewer in running() if renewer is lock._renewer]


class TestTheRunningSet:
    def test_a_renewer_that_fails_to_start_is_not_kept_running(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lock = fail_to_start(clock, backend, monkeypatch)
        assert lock._renewer is not None and lock._renewer.ended
        assert kept(lock) == []

    def test_the_check_catches_a_renewer_left_in_it(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: a renewer that fails to start is not finished.
        finish = Renewer._finish
        monkeypatch.setattr(Renewer, "_finish", lambda renewer: None)
        lock = fail_to_start(clock, backend, monkeypatch)
        left = kept(lock)
        try:
            assert left != []
            assert left_behind(clock) != []  # in the running set, and in its store's group
        finally:
            for renewer in left:  # clean up after the mutation: all that finishing undoes
                finish(renewer)
        assert left_behind(clock) == []

    def test_removing_it_from_the_running_set_alone_leaves_its_group(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The clean-up this module's mutation test once made: its renewer stayed in its
        store's renew group, which tests run later on the same process then saw."""
        finish = Renewer._finish
        monkeypatch.setattr(Renewer, "_finish", lambda renewer: None)
        left = kept(fail_to_start(clock, backend, monkeypatch))
        with renewer_module._running_guard:
            renewer_module._running.difference_update(left)
        try:
            assert [group.clock for group in left_behind(clock)] == [clock]
        finally:
            for renewer in left:
                finish(renewer)


# --- what locks of the same settings share ------------------------------------------------


def timings(backend: MemoryBackend) -> list[LeaseTiming]:
    locks = [
        Lock("a", backend, ttl=TTL),
        Lock("b", backend, ttl=TTL),
        Lock("c", backend, ttl=TTL, renew_deadline=5.0),
        Lock("d", backend, ttl=30),
    ]
    return [lock._timing for lock in locks]


class TestSharedSettings:
    def test_locks_of_the_same_settings_share_one_lease_timing(
        self, backend: MemoryBackend
    ) -> None:
        same, again, shorter, longer = timings(backend)
        assert same is again
        assert shorter is not same and shorter.renew_deadline == 5.0
        assert longer.ttl == 30 and longer.renew_deadline == 20
        assert same == LeaseTiming.for_ttl(TTL)  # what each lock would have made

    def test_the_check_catches_a_timing_made_for_each_lock(
        self, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            lock_base,
            "_timing_for",
            lambda ttl, renew_deadline: LeaseTiming.for_ttl(ttl, renew_deadline=renew_deadline),
        )
        same, again, _, _ = timings(backend)
        assert same is not again
