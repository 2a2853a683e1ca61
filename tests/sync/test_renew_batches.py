"""Auto-renewed locks of one store renew together: one ``renew_many`` call per renew interval.

Everything is counted on a FakeClock; nothing measures time. ``GUARD`` real
seconds only bound waits that a broken build would never finish. The store
is a MemoryBackend that counts its calls and can fail or hold ``renew_many``;
the MongoDB counts are in ``tests/backends/test_mongo_renew_batches.py``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mongoelector import Lock
from mongoelector._sync import batches, scheduler
from mongoelector._sync.renewer import running
from mongoelector.backends import Capability, LeaseRecord, MemoryBackend, RenewItem
from mongoelector.backends.async_protocol import InlineBackend
from mongoelector.core import batching
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.monitoring import (
    EventListener,
    RenewedEvent,
    StoreErrorEvent,
)
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread
from tests.fakes import FlakyBackend, wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0


class BatchStore(MemoryBackend):
    """A MemoryBackend that counts its renew calls and can fail or hold ``renew_many``.

    ``down``: ``renew_many`` raises ``BackendUnavailable`` (nothing renewed).
    ``lost_reply``: it renews, then raises ``AmbiguousOutcome``. ``hold``: it
    waits for ``let_go`` before renewing (``entered`` is set meanwhile); so does a
    plain ``renew`` of a key in ``held_renewals`` (``renew_entered``).
    """

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: Counter[str] = Counter()
        self.batches: list[list[str]] = []  # the keys of each renew_many call
        self.down = False
        self.lost_reply = False
        self.hold = False
        self.delay = 0.0  # fake seconds each renew_many takes (the clock moves meanwhile)
        self.entered = threading.Event()
        self.let_go = threading.Event()
        self.held_renewals: set[str] = set()  # keys whose own renew waits for let_go
        self.renew_entered = threading.Event()
        self._count = threading.Lock()

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        with self._count:
            self.calls["renew"] += 1
        if key in self.held_renewals:
            self.renew_entered.set()
            self.let_go.wait(4 * GUARD)
        return super().renew(key, owner, token, ttl)

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        with self._count:
            self.calls["renew_many"] += 1
            self.batches.append([item.key for item in items])
        if self.down:
            raise BackendUnavailable("renew_many: store unreachable")
        if self.hold:
            self.entered.set()
            self.let_go.wait(4 * GUARD)
        records = super().renew_many(items)
        if self.delay:
            self.clock.advance(self.delay)  # type: ignore[attr-defined]
        if self.lost_reply:
            raise AmbiguousOutcome("renew_many: the reply was lost")
        return records

    @property
    def store_calls(self) -> int:
        return self.calls["renew"] + self.calls["renew_many"]


class Events(EventListener):
    def __init__(self) -> None:
        self.renewals: list[RenewedEvent] = []
        self.errors: list[StoreErrorEvent] = []

    def renewed(self, event: RenewedEvent) -> None:
        self.renewals.append(event)

    def store_error(self, event: StoreErrorEvent) -> None:
        self.errors.append(event)


@pytest.fixture
def store(clock: FakeClock) -> Iterator[BatchStore]:
    backend = BatchStore(clock)
    yield backend
    backend.let_go.set()


_made: list[Lock] = []


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock, store: BatchStore) -> Iterator[None]:
    yield
    store.let_go.set()
    for lock in _made:  # a failed test must not leave renewers to the next ones
        lock.release()
    _made.clear()
    assert wait_for(lambda: [r for r in running() if r._clock is clock] == [], limit=GUARD)
    assert scheduler.scheduled(clock) == 0
    assert [group for group in batches.groups() if group.clock is clock] == []


def auto_lock(key: str, backend: Any, clock: FakeClock, **options: Any) -> Lock:
    """An auto-renewed lock, released at the end of the test whatever happens."""
    lock = Lock(key, backend, ttl=TTL, clock=clock, auto_renew=True, **options)
    _made.append(lock)
    return lock


def advance(clock: FakeClock, seconds: float, locks: list[Lock]) -> None:
    """Move the clock one second at a time; after each, wait until every renewer caught up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for lock in locks:
            assert lock.wait_idle(GUARD)


def calls_over_intervals(
    n: int, store: BatchStore, clock: FakeClock, *, intervals: int = 5, spread: bool = True
) -> list[int]:
    """Acquire ``n`` auto-renewed locks (spread over one interval, or all at once), then
    count the store's renew calls in each of ``intervals`` renew intervals after the
    first (in which they line up)."""
    locks = [auto_lock(f"job-{i}", store, clock) for i in range(n)]
    for index, lock in enumerate(locks):
        lock.acquire()
        if spread and n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)  # four groups acquired 0.4 s apart
    advance(clock, INTERVAL, locks)
    counts = []
    for _ in range(intervals):
        before = store.store_calls
        advance(clock, INTERVAL, locks)
        counts.append(store.store_calls - before)
    assert all(lock.token is not None for lock in locks)  # every lock still holds
    return counts


class TestOneCallPerInterval:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_locks_cost_one_store_call_per_renew_interval(
        self, n: int, clock: FakeClock, store: BatchStore
    ) -> None:
        counts = calls_over_intervals(n, store, clock)
        assert counts == [1] * 5
        if n == 1:
            assert store.calls["renew_many"] == 0  # nobody joins: the store's one-key call
        else:
            assert sorted(store.batches[-1]) == sorted(f"job-{i}" for i in range(n))

    def test_2500_locks_cost_three_calls_per_interval_of_at_most_a_thousand(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        counts = calls_over_intervals(2500, store, clock, intervals=2, spread=False)
        assert counts == [3, 3]
        assert sorted(len(keys) for keys in store.batches[-3:]) == [500, 1000, 1000]

    def test_with_the_decision_mutated_to_never_batch_the_count_fails(
        self, clock: FakeClock, store: BatchStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The count above is the batching decision's doing: without it, one call per lock."""
        monkeypatch.setattr(batching, "renew_together", lambda now, trigger, candidates, **kw: [[]])
        counts = calls_over_intervals(10, store, clock)
        assert counts == [10] * 5  # the bound of the test above fails
        assert store.calls["renew_many"] == 0

    def test_the_listener_of_each_lock_sees_its_own_renewal_each_interval(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        listeners = [Events() for _ in range(10)]
        locks = [
            auto_lock(f"job-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        for lock in locks:
            lock.acquire()
        advance(clock, 3 * INTERVAL, locks)
        assert store.calls == Counter({"renew_many": 3})
        for lock, listener in zip(locks, listeners, strict=True):
            assert [event.token for event in listener.renewals] == [lock.token] * 3
            assert all(event.key == lock.key for event in listener.renewals)

    def test_each_lock_learns_the_round_trip_of_the_batchs_call(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        """Each holding learns the call's own round trip (its start and end), not the time
        it took to get to that holding's outcome (here each listener takes 0.01 s)."""

        class Slow(Events):
            def renewed(self, event: RenewedEvent) -> None:
                super().renewed(event)
                clock.advance(0.01)

        listeners = [Slow() for _ in range(10)]
        locks = [
            auto_lock(f"job-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        for lock in locks:
            lock.acquire()
        store.delay = 0.5
        clock.advance(INTERVAL)
        assert wait_for(lambda: all(listener.renewals for listener in listeners), limit=GUARD)
        assert store.calls == Counter({"renew_many": 1})
        assert [listener.renewals[0].latency for listener in listeners] == [0.5] * 10
        assert [lock._keeper.expected_round_trip for lock in locks] == [0.5] * 10

    def test_a_released_lock_leaves_the_batches(self, clock: FakeClock, store: BatchStore) -> None:
        locks = [auto_lock(f"job-{i}", store, clock) for i in range(5)]
        for lock in locks:
            lock.acquire()
        advance(clock, INTERVAL, locks)
        assert locks[2].release()
        advance(clock, INTERVAL, locks)
        assert store.batches[-1] == ["job-0", "job-1", "job-3", "job-4"]
        for lock in locks:
            lock.release()
        # The last one out removes the store's group (any other test's are not its business).
        assert [group for group in batches.groups() if group.backend is store] == []


class TestEachOutcomeIsItsLocksOwn:
    def test_a_refused_item_makes_exactly_that_lock_lost(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        lost = Counter[str]()
        locks = [
            auto_lock(f"job-{i}", store, clock, on_lost=lambda i=i: lost.update([f"job-{i}"]))
            for i in range(10)
        ]
        for lock in locks:
            lock.acquire()
        store.delete("job-3")  # an operator removed it: its next renewal is refused
        advance(clock, INTERVAL, locks)
        assert store.calls == Counter({"renew_many": 1})  # refused within the batch
        assert lost == Counter({"job-3": 1})
        assert locks[3].lost.is_set() and locks[3].token is None
        assert all(lock.token is not None for i, lock in enumerate(locks) if i != 3)
        advance(clock, 2 * INTERVAL, locks)
        assert store.batches[-1] == [f"job-{i}" for i in range(10) if i != 3]
        assert lost == Counter({"job-3": 1})

    def test_a_takeover_by_another_lock_object_of_the_same_key(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        """Two holdings of one key in one store never go in one call (the protocol refuses
        a repeated key): the older is refused in its own, the newer goes on."""
        old = auto_lock("job", store, clock)
        others = [auto_lock(f"other-{i}", store, clock) for i in range(3)]
        for lock in (old, *others):
            lock.acquire()
        clock.advance(1.5)
        new = auto_lock("job", store, clock)
        new.acquire(force=True)  # the old object does not know yet
        advance(clock, 2 * INTERVAL, [old, new, *others])
        assert old.lost.is_set() and old.token is None
        assert new.token is not None and all(lock.token for lock in others)
        assert all(keys.count("job") <= 1 for keys in store.batches)

    def test_a_failed_batch_is_a_failed_renewal_of_each_lock(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        listeners = [Events() for _ in range(5)]
        locks = [
            auto_lock(f"job-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        for lock in locks:
            lock.acquire()
        store.down = True
        advance(clock, INTERVAL, locks)  # t=2: the batch fails; each retries after 2 s
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("renew", False)]
            assert isinstance(listener.errors[0].error, BackendUnavailable)
        store.down = False
        advance(clock, INTERVAL, locks)  # t=4: the retries go out together, and work
        assert store.calls == Counter({"renew_many": 2})
        assert all(lock.token is not None and not lock.lost.is_set() for lock in locks)
        assert all(len(listener.renewals) == 1 for listener in listeners)

    def test_an_ambiguous_batch_is_an_ambiguous_renewal_of_each_lock(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        listeners = [Events() for _ in range(5)]
        locks = [
            auto_lock(f"job-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        for lock in locks:
            lock.acquire()
        store.lost_reply = True
        advance(clock, INTERVAL, locks)
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("renew", True)]
            assert isinstance(listener.errors[0].error, AmbiguousOutcome)
        assert all(lock.token is not None for lock in locks)  # trusted until the deadline

    def test_a_store_down_for_good_loses_every_lock_at_its_own_deadline(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        first = [auto_lock(f"a-{i}", store, clock) for i in range(5)]
        for lock in first:
            lock.acquire()  # t=0: deadline t=10
        clock.advance(1.0)
        second = [auto_lock(f"b-{i}", store, clock) for i in range(5)]
        for lock in second:
            lock.acquire()  # t=1: deadline t=11
        store.down = True
        advance(clock, 8, [*first, *second])  # t=9
        assert not any(lock.lost.is_set() for lock in (*first, *second))
        advance(clock, 1, [*first, *second])  # t=10
        assert all(lock.lost.is_set() for lock in first)
        assert not any(lock.lost.is_set() for lock in second)
        advance(clock, 1, [*first, *second])  # t=11
        assert all(lock.lost.is_set() for lock in second)

    def test_a_hung_batch_loses_each_of_its_locks_at_its_deadline(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        lost = Counter[str]()
        locks = [
            auto_lock(f"job-{i}", store, clock, on_lost=lambda i=i: lost.update([f"job-{i}"]))
            for i in range(5)
        ]
        for lock in locks:
            lock.acquire()  # renew deadline t=10
        store.hold = True
        clock.advance(INTERVAL)
        assert store.entered.wait(GUARD)  # the batch hangs in the store
        clock.advance(7.0)  # t=9
        assert not lost
        clock.advance(1.0)  # t=10: each holding's own deadline entry fires
        assert wait_for(lambda: sum(lost.values()) == 5, limit=GUARD)
        assert all(lock.lost.is_set() and lock.token is None for lock in locks)
        store.let_go.set()  # the late reply: not trusted, and each renewer ends
        for lock in locks:
            assert lock.wait_idle(GUARD)
        assert lost == Counter({f"job-{i}": 1 for i in range(5)})
        assert all(lock.token is None for lock in locks)

    def test_release_waits_for_the_batch_in_flight_and_ignores_its_reply(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        locks = [auto_lock(f"job-{i}", store, clock) for i in range(3)]
        for lock in locks:
            lock.acquire()
        store.hold = True
        clock.advance(INTERVAL)
        assert store.entered.wait(GUARD)
        released = threading.Thread(target=locks[0].release)
        released.start()
        released.join(0.2)
        assert released.is_alive()  # no renew of the holding may be in flight after release
        store.let_go.set()
        released.join(GUARD)
        assert not released.is_alive()
        assert locks[0].token is None and not locks[0].lost.is_set()
        for lock in locks[1:]:
            assert lock.wait_idle(GUARD) and lock.token is not None


class TestWhichStoresBatch:
    def test_only_locks_of_the_same_store_object_and_clock_batch_together(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        other_store = BatchStore(clock)
        other_clock = FakeClock()
        on_other_clock = BatchStore(other_clock)
        mine = [auto_lock(f"a-{i}", store, clock) for i in range(3)]
        theirs = [auto_lock(f"b-{i}", other_store, clock) for i in range(3)]
        elsewhere = [auto_lock(f"c-{i}", on_other_clock, other_clock) for i in range(3)]
        for lock in (*mine, *theirs, *elsewhere):
            lock.acquire()
        advance(clock, INTERVAL, [*mine, *theirs])
        other_clock.advance(INTERVAL)
        for lock in elsewhere:
            assert lock.wait_idle(GUARD)
        assert store.batches == [["a-0", "a-1", "a-2"]]
        assert other_store.batches == [["b-0", "b-1", "b-2"]]
        assert on_other_clock.batches == [["c-0", "c-1", "c-2"]]
        for lock in elsewhere:
            lock.release()

    def test_a_store_that_does_not_declare_renew_many_is_renewed_key_by_key(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        class Undeclared(BatchStore):
            capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

        plain = Undeclared(clock)
        locks = [auto_lock(f"job-{i}", plain, clock) for i in range(5)]
        for lock in locks:
            lock.acquire()
        advance(clock, 2 * INTERVAL, locks)
        assert plain.calls == Counter({"renew": 10})

    def test_a_store_that_declares_renew_many_without_the_method_is_renewed_key_by_key(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        class Declares:
            """Declares RENEW_MANY, but has only the per-key calls (a broken wrapper)."""

            capabilities = MemoryBackend.capabilities

            def __init__(self, inner: BatchStore) -> None:
                self.inner = inner

            def __getattr__(self, name: str) -> Any:
                if name == "renew_many":
                    raise AttributeError(name)
                return getattr(self.inner, name)

        wrapper = Declares(store)
        locks = [auto_lock(f"job-{i}", wrapper, clock) for i in range(5)]
        for lock in locks:
            lock.acquire()
        advance(clock, INTERVAL, locks)
        assert store.calls == Counter({"renew": 5})

    def test_the_flaky_test_double_renews_key_by_key(self, clock: FakeClock) -> None:
        inner = MemoryBackend(clock)
        link = FlakyBackend(inner)
        assert Capability.RENEW_MANY not in link.capabilities
        locks = [auto_lock(f"job-{i}", link, clock) for i in range(5)]
        for lock in locks:
            lock.acquire()
        advance(clock, INTERVAL, locks)
        assert link.calls["renew"] == 5

    def test_a_blocking_view_of_a_store_that_replaces_renew_alone_renews_key_by_key(
        self, clock: FakeClock
    ) -> None:
        """The safety net looks through ``BlockingBackend`` (as through ``InlineBackend``): an
        async store whose class replaces ``renew`` without ``renew_many`` sees every renewal."""

        class Counting(InlineBackend):
            """Counts renewals (a fault-injecting double would fail some) in ``renew`` alone."""

            def __init__(self, inner: MemoryBackend) -> None:
                super().__init__(inner)
                self.renewed: Counter[str] = Counter()

            async def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
                self.renewed[key] += 1
                return await super().renew(key, owner, token, ttl)

        counting = Counting(MemoryBackend(clock))
        with EventLoopThread() as loop:
            view = BlockingBackend(counting, loop)
            assert Capability.RENEW_MANY in view.capabilities  # declared: what it wraps has it
            locks = [auto_lock(f"job-{i}", view, clock) for i in range(5)]
            try:
                for lock in locks:
                    lock.acquire()
                advance(clock, INTERVAL, locks)
                assert counting.renewed == Counter({f"job-{i}": 1 for i in range(5)})
            finally:  # while the loop runs: the view's calls need it
                for lock in locks:
                    lock.release()


class TestTheRenewersOwnSchedule:
    def test_a_wake_up_that_fired_while_a_batch_took_the_renewer_does_nothing(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        """The timer may have fired a renewer's wake-up just as another holding's batch took
        it out of that wait; by the time the wake-up's action runs, the batch may have
        renewed it and it may wait again. The late action must leave the new wait alone
        (before, it dropped the new wake-up's entry, which stayed scheduled for nothing)."""
        lock = auto_lock("a", store, clock)
        lock.acquire()
        renewer = lock._renewer
        assert renewer is not None
        ticket = renewer._join()  # a batch takes it out of that wait
        assert ticket is not None
        assert renewer._group is not None
        renewer._group._run([(renewer, ticket)])  # the batch's call, here: it waits again
        entry = renewer._entry
        assert renewer._phase.value == "parked" and entry is not None
        renewer._due()  # the old wake-up's action, late
        assert renewer._phase.value == "parked" and renewer._entry is entry
        assert scheduler.scheduled(clock) == 1
        assert store.calls == Counter({"renew": 1})
