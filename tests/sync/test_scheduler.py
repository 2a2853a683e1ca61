"""Auto-renewed locks share the process's scheduler: a few threads, whatever their number.

Every assertion counts (threads, renew calls, scheduled wake-ups, callbacks);
none measures time. Virtual time moves only when a test advances the
FakeClock; ``GUARD`` real seconds only bound waits that a broken build would
never finish.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from mongoelector import Lock
from mongoelector._sync import scheduler
from mongoelector._sync.renewer import running
from mongoelector.backends import Capability, LeaseRecord, MemoryBackend
from mongoelector.monitoring import EventListener, RenewedEvent
from mongoelector.testing import FakeClock
from tests.fakes import wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
#: Threads the scheduler may add to a process, whatever the number of holdings: one timer
#: for the clock, the workers, and one callback thread.
EXTRA_THREADS = 4


class CountingBackend(MemoryBackend):
    """A MemoryBackend that counts renew calls per key and can hold one key's renewals.

    It declares no ``RENEW_MANY``: these tests are about each holding's own renew
    calls (one key's call hangs, the others go on), so every lock renews key by key
    (batched renewals: ``test_renew_batches.py``).
    """

    capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.renews: Counter[str] = Counter()
        self.hold: str | None = None  # renewals of this key wait for ``let_go``
        self.held = threading.Event()
        self.let_go = threading.Event()
        self._count = threading.Lock()

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        with self._count:
            self.renews[key] += 1
        if key == self.hold:
            self.held.set()
            self.let_go.wait(GUARD)
        return super().renew(key, owner, token, ttl)


@pytest.fixture
def store(clock: FakeClock) -> Iterator[CountingBackend]:
    backend = CountingBackend(clock)
    yield backend
    backend.let_go.set()


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock, store: CountingBackend) -> Iterator[None]:
    yield
    store.let_go.set()
    for lock in _made:  # a failed test must not leave renewers to the next ones
        lock.release()
    _made.clear()
    assert wait_for(lambda: [r for r in running() if r._clock is clock] == [], limit=GUARD)
    assert scheduler.scheduled(clock) == 0


_made: list[Lock] = []


def auto_lock(key: str, store: CountingBackend, clock: FakeClock, **options: Any) -> Lock:
    """An auto-renewed lock, released at the end of the test whatever happens."""
    lock = Lock(key, store, ttl=TTL, clock=clock, auto_renew=True, **options)
    _made.append(lock)
    return lock


def advance(clock: FakeClock, seconds: float, locks: list[Lock]) -> None:
    """Move the clock one second at a time; after each, wait until every renewer caught up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for lock in locks:
            assert lock.wait_idle(GUARD)


class TestManyLocks:
    def test_1000_locks_are_renewed_on_at_most_4_more_threads(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        before = threading.active_count()
        locks = [auto_lock(f"job-{i}", store, clock) for i in range(1000)]
        for lock in locks:
            lock.acquire()
        tokens = [lock.token for lock in locks]
        most = threading.active_count()
        for _ in range(5):  # 5 renew periods of 2 s
            advance(clock, 2, locks)
            most = max(most, threading.active_count())
        assert most - before <= EXTRA_THREADS
        assert [lock.ensure() for lock in locks] == tokens  # every lock still holds
        assert store.renews == Counter({lock.key: 5 for lock in locks})  # one per period
        assert len(running()) == 1000
        assert scheduler.scheduled(clock) == 1000  # one wake-up each, nothing else
        for lock in locks:
            assert lock.release()
        assert running() == []
        assert scheduler.scheduled(clock) == 0  # released holdings leave nothing scheduled
        advance(clock, 3 * TTL, locks)
        assert sum(store.renews.values()) == 5 * 1000  # nothing renewed after release
        assert not any(lock.lost.is_set() for lock in locks)

    def test_the_timer_of_a_clock_with_nothing_scheduled_ends(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        lock = auto_lock("job", store, clock)
        lock.acquire()
        lock.release()
        # LINGER real seconds later the clock's timer thread has gone (a second clock's
        # would start anew on its first lock).
        assert wait_for(lambda: clock not in [t.clock for t in scheduler._timers.values()])


class Blocker:
    """A callback that blocks its callback thread until ``let_go`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.let_go = threading.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        self.entered.set()
        self.let_go.wait(GUARD)


class BlockingListener(EventListener):
    def __init__(self) -> None:
        self.blocker = Blocker()

    def renewed(self, event: RenewedEvent) -> None:
        self.blocker()


class TestABlockedHoldingDelaysNoOther:
    def test_a_blocking_on_lost_delays_no_renewal_and_no_other_loss(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        blocker = Blocker()
        stuck = auto_lock("stuck", store, clock, on_lost=blocker)
        others = [auto_lock(f"job-{i}", store, clock) for i in range(10)]
        second_lost = Blocker()
        second_lost.let_go.set()  # returns at once
        second = auto_lock("second", store, clock, on_lost=second_lost)
        for lock in (stuck, *others, second):
            lock.acquire()
        store.delete("stuck")
        clock.advance(2.0)  # the next renewal of "stuck" finds it gone: on_lost blocks
        assert blocker.entered.wait(GUARD)
        assert stuck.lost.is_set()
        for lock in others:
            assert lock.wait_idle(GUARD)
        before = {lock.key: store.renews[lock.key] for lock in others}
        advance(clock, 6, others)  # three more periods while on_lost still blocks
        assert not blocker.let_go.is_set() and blocker.calls == 1
        assert {lock.key: store.renews[lock.key] - before[lock.key] for lock in others} == {
            lock.key: 3 for lock in others
        }
        assert all(lock.ensure() for lock in others)
        # Another holding's loss is recorded on time and its on_lost runs meanwhile too.
        store.delete("second")
        clock.advance(2.0)
        assert wait_for(second.lost.is_set, limit=GUARD)
        assert second.wait_idle(GUARD)  # its on_lost returned: no waiting for "stuck"'s
        assert second_lost.calls == 1
        assert not stuck.wait_idle(0.0)  # still inside its own on_lost
        blocker.let_go.set()
        assert stuck.wait_idle(GUARD)
        assert blocker.calls == 1
        for lock in others:
            lock.release()

    def test_a_blocking_listener_delays_only_its_own_lock(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        listener = BlockingListener()
        stuck = auto_lock("stuck", store, clock, event_listeners=[listener])
        others = [auto_lock(f"job-{i}", store, clock) for i in range(10)]
        for lock in (stuck, *others):
            lock.acquire()
        clock.advance(2.0)
        assert listener.blocker.entered.wait(GUARD)  # told of its first renewal: blocks
        for lock in others:
            assert lock.wait_idle(GUARD)
        advance(clock, 6, others)
        assert [store.renews[lock.key] for lock in others] == [4] * 10
        assert store.renews["stuck"] == 1  # its own next renewal waits, as it always has
        released = threading.Thread(target=stuck.release)
        released.start()  # release() does not wait for the listener
        released.join(GUARD)
        assert not released.is_alive()
        listener.blocker.let_go.set()
        assert stuck.wait_idle(GUARD)
        assert store.renews["stuck"] == 1
        for lock in others:
            lock.release()

    def test_a_hung_store_call_of_one_lock_leaves_the_other_worker_to_the_rest(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        store.hold = "stuck"
        stuck = auto_lock("stuck", store, clock)
        others = [auto_lock(f"job-{i}", store, clock) for i in range(10)]
        for lock in (stuck, *others):
            lock.acquire()
        clock.advance(2.0)
        assert store.held.wait(GUARD)  # one worker waits inside the store for "stuck"
        for lock in others:
            assert lock.wait_idle(GUARD)
        advance(clock, 6, others)
        assert [store.renews[lock.key] for lock in others] == [4] * 10
        store.let_go.set()
        assert stuck.wait_idle(GUARD)
        for lock in (stuck, *others):
            assert lock.release()


class HangingBackend(MemoryBackend):
    """A MemoryBackend whose renewals of the keys in ``hang`` wait until ``let_go``.

    Renewed key by key (no ``RENEW_MANY``): only the calls of the keys in ``hang`` hang.
    """

    capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

    def __init__(self, clock: FakeClock, hang: set[str]) -> None:
        super().__init__(clock)
        self.hang = hang
        self.entered = threading.Semaphore(0)
        self.let_go = threading.Event()

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        if key in self.hang:
            self.entered.release()
            self.let_go.wait(4 * GUARD)  # longer than any wait of the test: hung for it
        return super().renew(key, owner, token, ttl)


class TestHungStoreCallsDelayNoOtherHolding:
    """Two store calls that hang occupy both kept workers; every other holding goes on."""

    def start(
        self, clock: FakeClock, store: CountingBackend, request: pytest.FixtureRequest
    ) -> tuple[HangingBackend, Lock, Blocker]:
        # Workers added by an earlier test linger a while: wait until only the kept ones are left.
        pool = getattr(scheduler, "_pool", None)
        assert pool is None or wait_for(lambda: pool.extra == 0, limit=GUARD)
        slow = HangingBackend(clock, hang={"h1", "h2"})
        request.addfinalizer(slow.let_go.set)
        hung = [Lock(key, slow, ttl=TTL, clock=clock, auto_renew=True) for key in ("h1", "h2")]
        _made.extend(hung)
        for lock in hung:
            lock.acquire()
        clock.advance(2.0)  # both renew: each takes a kept worker and hangs in the store
        assert slow.entered.acquire(timeout=GUARD) and slow.entered.acquire(timeout=GUARD)
        on_lost = Blocker()
        on_lost.let_go.set()  # returns at once
        healthy = auto_lock("c", store, clock, on_lost=on_lost)
        healthy.acquire()  # at t=2: renewals due at t=4, 6, ...; renew deadline t=12
        return slow, healthy, on_lost

    def test_a_healthy_lock_is_renewed_on_an_added_worker(
        self, clock: FakeClock, store: CountingBackend, request: pytest.FixtureRequest
    ) -> None:
        slow, healthy, on_lost = self.start(clock, store, request)
        advance(clock, 20, [healthy])  # t=22: ten periods, well past the first deadline
        assert store.renews["c"] == 10  # one per period, however long h1 and h2 hang
        assert not healthy.lost.is_set() and on_lost.calls == 0
        assert healthy.ensure() is not None
        slow.let_go.set()

    def test_with_no_worker_free_the_loss_is_still_recorded_at_the_deadline(
        self,
        clock: FakeClock,
        store: CountingBackend,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # No worker is ever added (the growth above, taken away): the healthy lock's renewal
        # waits in the queue for good, yet its deadline is kept by the timer thread.
        monkeypatch.setattr(scheduler, "_watch_workers", lambda: False, raising=False)
        slow, healthy, on_lost = self.start(clock, store, request)
        clock.advance(9.0)  # t=11: the renewal due at t=4 still waits for a worker
        assert not healthy.lost.is_set()
        clock.advance(1.0)  # t=12: the renew deadline
        assert wait_for(lambda: on_lost.calls == 1, limit=GUARD)
        assert healthy.lost.is_set()
        assert store.renews["c"] == 0  # no renewal ran: the loss owes nothing to a worker
        assert healthy.wait_idle(GUARD)
        slow.let_go.set()  # the workers come back: the stale queued renewal does nothing
        assert wait_for(lambda: not scheduler._work, limit=GUARD)
        assert store.renews["c"] == 0 and on_lost.calls == 1


class FirstBlocks:
    """An ``on_lost`` shared by two holdings: the first call blocks until ``let_go``."""

    def __init__(self) -> None:
        self._count = threading.Lock()
        self.calls = 0
        self.first_in = threading.Event()
        self.second = threading.Event()
        self.let_go = threading.Event()

    def __call__(self) -> None:
        with self._count:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.first_in.set()
            self.let_go.wait(GUARD)
        else:
            self.second.set()


class TestTwoLossesAtOnce:
    def test_the_second_on_lost_runs_while_the_first_blocks(
        self, clock: FakeClock, store: CountingBackend
    ) -> None:
        # Both holdings are found lost in the same instant, so both callbacks are queued
        # back to back: the second must not wait for the first (20 rounds: the order in
        # which the threads wake varies).
        for round_ in range(20):
            on_lost = FirstBlocks()
            locks = [auto_lock(f"{name}-{round_}", store, clock, on_lost=on_lost) for name in "ab"]
            for lock in locks:
                lock.acquire()
                store.delete(lock.key)
            clock.advance(2.0)  # both renewals find their holding gone
            assert on_lost.first_in.wait(GUARD)
            assert on_lost.second.wait(GUARD)  # a hang guard: before the fix it never came
            assert not on_lost.let_go.is_set()  # ... while the first still blocks
            on_lost.let_go.set()
            for lock in locks:
                assert lock.wait_idle(GUARD)
            assert on_lost.calls == 2


class LongBlocker(Blocker):
    """A :class:`Blocker` that waits for ``let_go`` longer than any wait of a test."""

    def __call__(self) -> None:
        self.calls += 1
        self.entered.set()
        self.let_go.wait(4 * GUARD)


class TestItsOwnDeadlineWaitsForNothing:
    """A holding's loss is recorded at its renew deadline even while its own renewer is busy."""

    def test_a_holding_whose_own_renew_hangs_is_lost_at_its_deadline(
        self, clock: FakeClock, store: CountingBackend, request: pytest.FixtureRequest
    ) -> None:
        slow = HangingBackend(clock, hang={"h"})
        request.addfinalizer(slow.let_go.set)
        on_lost = Blocker()
        on_lost.let_go.set()  # returns at once
        lock = Lock("h", slow, ttl=TTL, clock=clock, auto_renew=True, on_lost=on_lost)
        _made.append(lock)
        lock.acquire()  # renew deadline t=10, first renewal at t=2
        clock.advance(2.0)
        assert slow.entered.acquire(timeout=GUARD)  # its renew hangs in the store
        clock.advance(7.0)  # t=9
        assert not lock.lost.is_set() and lock.token is not None
        clock.advance(1.0)  # t=10: the renew deadline, the renew still hanging
        assert wait_for(lambda: on_lost.calls == 1, limit=GUARD)  # before: never came
        assert lock.lost.is_set() and lock.token is None
        slow.let_go.set()  # the late reply: not trusted, and the renewer ends
        assert lock.wait_idle(GUARD)
        assert lock.token is None and lock.lost.is_set() and on_lost.calls == 1

    def test_a_blocking_listener_does_not_delay_its_own_loss(
        self, clock: FakeClock, store: CountingBackend, request: pytest.FixtureRequest
    ) -> None:
        listener = BlockingListener()
        listener.blocker = LongBlocker()  # blocks longer than any wait of the test
        request.addfinalizer(listener.blocker.let_go.set)
        on_lost = Blocker()
        on_lost.let_go.set()  # returns at once
        lock = auto_lock("a", store, clock, on_lost=on_lost, event_listeners=[listener])
        lock.acquire()  # renew deadline t=10
        clock.advance(2.0)
        assert listener.blocker.entered.wait(GUARD)  # told of its first renewal: blocks
        clock.advance(8.0)  # t=10: the deadline (that renewal counts once the listener returns)
        assert wait_for(lambda: on_lost.calls == 1, limit=GUARD)  # on another callback thread
        assert lock.lost.is_set() and lock.token is None
        listener.blocker.let_go.set()
        assert lock.wait_idle(GUARD)
        assert store.renews["a"] == 1 and on_lost.calls == 1 and listener.blocker.calls == 1


class FrozenTime:
    """Stands in for the ``time`` module inside the scheduler: ``monotonic`` moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.started: list[bool] = []  # workers the watcher started (kept or not)

    def monotonic(self) -> float:
        return self.now


class TestWorkersAreAddedWhenStuckOrBehind:
    """The watcher adds workers when queued calls wait with none taken, or keep waiting for
    ``LATE``; not while all workers are merely busy with a queue younger than that.

    The watcher is called by hand with the scheduler's time frozen, so no
    thread timing decides the outcome.
    """

    @pytest.fixture
    def frozen(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[FrozenTime]:
        pool = scheduler._pool
        assert wait_for(lambda: pool.extra == 0 and not scheduler._work, limit=GUARD)
        frozen = FrozenTime()
        monkeypatch.setattr(scheduler, "time", frozen)
        monkeypatch.setattr(scheduler, "_start_worker", lambda *, keep: frozen.started.append(keep))
        monkeypatch.setattr(pool, "extra", 0)
        monkeypatch.setattr(pool, "added_at", -math.inf)
        with scheduler._work_ready:
            saved = list(scheduler._work)
            scheduler._work.clear()
        yield frozen
        with scheduler._work_ready:
            scheduler._work.clear()
            scheduler._work.extend(saved)

    def queue(self, frozen: FrozenTime, calls: int) -> None:
        with scheduler._work_ready:
            scheduler._pool.since = scheduler._pool.waiting_since = frozen.now
            scheduler._work.extend(lambda: None for _ in range(calls))

    def test_the_pool_doubles_per_stuck_period_never_beyond_the_queue(
        self, frozen: FrozenTime
    ) -> None:
        workers = scheduler._pool.kept
        self.queue(frozen, 1000)
        assert scheduler._watch_workers()
        assert frozen.started == []  # no time has passed: nothing added
        frozen.now += scheduler.GRACE
        assert scheduler._watch_workers()
        assert len(frozen.started) == max(1, workers)  # as many as there are
        assert scheduler.added_workers(3, 10) == 3
        assert scheduler.added_workers(1000, 0) == 1

    def take_one_call(self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch) -> None:
        """A worker takes the first queued call: ``_work_loop`` itself, in this thread."""
        monkeypatch.setattr(scheduler, "LINGER", 0.01)  # then it finds no work and ends
        with scheduler._work_ready:
            rest = [scheduler._work.popleft() for _ in range(len(scheduler._work) - 1)]
        scheduler._work_loop(False)
        with scheduler._work_ready:
            scheduler._work.extend(rest)

    def test_workers_that_take_calls_get_no_help(
        self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Until the queue has waited ``LATE`` (a burst being worked through)."""
        self.queue(frozen, 1000)
        for _ in range(int(scheduler.LATE / (scheduler.GRACE / 2)) - 1):
            frozen.now += scheduler.GRACE / 2  # a worker takes a call every GRACE / 2: busy
            self.take_one_call(frozen, monkeypatch)
            assert scheduler._watch_workers()
        assert frozen.now - 1000.0 < scheduler.LATE
        assert frozen.started == []

    def added_while_taking_calls(
        self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch, seconds: float
    ) -> list[int]:
        """Workers take a call every ``GRACE / 2`` for ``seconds`` while 1000 wait: how many
        the watcher added at each of its rounds."""
        self.queue(frozen, 1000)
        added: list[int] = []
        for _ in range(int(seconds / (scheduler.GRACE / 2))):
            frozen.now += scheduler.GRACE / 2
            self.take_one_call(frozen, monkeypatch)
            before = len(frozen.started)
            assert scheduler._watch_workers()
            added.append(len(frozen.started) - before)
        return added

    def test_workers_that_take_calls_too_slowly_get_help_once_per_grace(
        self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The queue never emptied for ``LATE``: its calls wait too long for every holding's
        deadline (a slow store; one worker hung and the other serving everyone)."""
        rounds_in_late = int(scheduler.LATE / (scheduler.GRACE / 2))
        added = self.added_while_taking_calls(frozen, monkeypatch, 2 * scheduler.LATE)
        assert added[: rounds_in_late - 1] == [0] * (rounds_in_late - 1)
        assert added[rounds_in_late - 1] > 0  # at LATE (how many: the doubling test above)
        later = added[rounds_in_late:]
        assert all(n == 0 for n in later[::2]) and all(n > 0 for n in later[1::2])  # per GRACE

    def test_mutation_without_noting_progress_busy_workers_get_help(
        self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(scheduler._Pool, "took", lambda self: None)
        with pytest.raises(AssertionError):
            self.test_workers_that_take_calls_get_no_help(frozen, monkeypatch)

    def test_mutation_without_the_late_rule_slow_workers_get_no_help(
        self, frozen: FrozenTime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The check above fails if only stuck workers get help (the rule before)."""
        late = scheduler.LATE
        monkeypatch.setattr(scheduler, "LATE", math.inf)
        added = self.added_while_taking_calls(frozen, monkeypatch, 2 * late)
        assert sum(added) == 0
