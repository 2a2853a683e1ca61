"""Started electors that lead renew in their store's batches, with its auto-renewed locks.

A leader's poll is a renewal of its lease. On a store that renews in batches
(``Capability.RENEW_MANY``), it goes out with the other renewals of that store
due soon, in one ``renew_many`` call, and each elector gets back exactly what
its own ``renew`` would have told it. Everything is counted on a FakeClock;
``GUARD`` real seconds only bound waits that a broken build would never finish.
The MongoDB counts (mongomock and the wire path) are in
``tests/backends/test_mongo_elector_batches.py``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from mongoelector import LeaderElector, Lock
from mongoelector._sync import batches, scheduler
from mongoelector._sync import elector as elector_module
from mongoelector.backends import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
)
from mongoelector.core.elector_machine import ElectorMachine
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.monitoring import EventListener, LeadershipLostEvent, StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend, wait_for
from tests.holders import advance, settle
from tests.sync.test_renew_batches import BatchStore

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0

Holder = LeaderElector | Lock


class Events(EventListener):
    def __init__(self) -> None:
        self.errors: list[StoreErrorEvent] = []
        self.losses: list[LeadershipLostEvent] = []

    def store_error(self, event: StoreErrorEvent) -> None:
        self.errors.append(event)

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.losses.append(event)


@pytest.fixture
def store(clock: FakeClock) -> Iterator[BatchStore]:
    backend = BatchStore(clock)
    yield backend
    backend.let_go.set()


_made: list[Holder] = []


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock, store: BatchStore) -> Iterator[None]:
    yield
    store.let_go.set()
    for holder in _made:  # a failed test must not leave loops to the next ones
        if isinstance(holder, LeaderElector):
            holder.stop()
        else:
            holder.release()
    _made.clear()
    assert wait_for(lambda: scheduler.scheduled(clock) == 0, limit=GUARD)
    assert [group for group in batches.groups() if group.clock is clock] == []


def elector(key: str, backend: Any, clock: FakeClock, **options: Any) -> LeaderElector:
    """An elector (no status reports: they are not lease work), stopped after the test."""
    made = LeaderElector(key, backend, ttl=TTL, clock=clock, report_status=False, **options)
    _made.append(made)
    return made


def auto_lock(key: str, backend: Any, clock: FakeClock) -> Lock:
    lock = Lock(key, backend, ttl=TTL, clock=clock, auto_renew=True)
    _made.append(lock)
    return lock


def groups_on(clock: FakeClock) -> list[batches.RenewGroup]:
    """The renew groups on ``clock``: this test's (the groups are process-wide; any another
    test has left are on a clock of its own)."""
    return [group for group in batches.groups() if group.clock is clock]


def start_spread(clock: FakeClock, electors: list[LeaderElector]) -> None:
    """Start ``electors`` in four groups 0.4 s apart; each wins its own key."""
    for index, each in enumerate(electors):
        each.start()
        if len(electors) > 1 and index % max(1, len(electors) // 4) == 0:
            clock.advance(0.4)
    settle(electors)
    assert all(each.is_leader for each in electors)


def calls_over_intervals(
    holders: list[Any], store: BatchStore, clock: FakeClock, *, intervals: int = 4
) -> list[int]:
    """The store's renew calls in each of ``intervals`` renew intervals, after one in which
    the holdings line up."""
    advance(clock, INTERVAL, holders)
    counts = []
    for _ in range(intervals):
        before = store.store_calls
        advance(clock, INTERVAL, holders)
        counts.append(store.store_calls - before)
    return counts


class TestOneCallPerInterval:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_leading_electors_cost_one_store_call_per_renew_interval(
        self, n: int, clock: FakeClock, store: BatchStore
    ) -> None:
        electors = [elector(f"tenant-{i}", store, clock) for i in range(n)]
        start_spread(clock, electors)
        counts = calls_over_intervals(electors, store, clock)
        assert counts == [1] * 4
        assert all(each.is_leader for each in electors)
        if n == 1:
            assert store.calls["renew_many"] == 0  # nobody joins: the store's one-key call
        else:
            assert sorted(store.batches[-1]) == sorted(f"tenant-{i}" for i in range(n))

    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_electors_and_n_locks_of_one_store_cost_at_most_two_calls_per_interval(
        self, n: int, clock: FakeClock, store: BatchStore
    ) -> None:
        locks = [auto_lock(f"job-{i}", store, clock) for i in range(n)]
        for index, lock in enumerate(locks):
            lock.acquire()
            if n > 1 and index % max(1, n // 4) == 0:
                clock.advance(0.4)
        electors = [elector(f"tenant-{i}", store, clock) for i in range(n)]
        start_spread(clock, electors)
        counts = calls_over_intervals([*locks, *electors], store, clock)
        assert all(count <= 2 for count in counts), counts  # 2,000 holdings: 2 calls of 1,000
        assert all(lock.token is not None for lock in locks)
        assert all(each.is_leader for each in electors)
        if n > 1:  # locks and electors in the same calls
            last = [key for keys in store.batches[-counts[-1] :] for key in keys]
            assert sorted(last) == sorted(
                [*(f"job-{i}" for i in range(n)), *(f"tenant-{i}" for i in range(n))]
            )

    @pytest.mark.parametrize(
        "mutation",
        ["electors never grouped", "a leader never gives its timing"],
    )
    def test_with_batching_turned_off_for_electors_the_count_fails(
        self, mutation: str, clock: FakeClock, store: BatchStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The counts above are the electors' batching: without it, one call per elector."""
        if mutation == "electors never grouped":
            monkeypatch.setattr(elector_module, "renews_in_batches", lambda backend: False)
        else:
            monkeypatch.setattr(ElectorMachine, "renew_timing", lambda self, now, *, key: None)
        electors = [elector(f"tenant-{i}", store, clock) for i in range(10)]
        start_spread(clock, electors)
        counts = calls_over_intervals(electors, store, clock)
        assert counts == [10] * 4  # the bound of the tests above fails
        assert store.calls["renew_many"] == 0

    def test_each_elector_polls_as_before_on_loop_once_per_renewal(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        loops = Counter[str]()
        electors = [
            elector(f"tenant-{i}", store, clock, on_loop=lambda i=i: loops.update([i]))
            for i in range(5)
        ]
        start_spread(clock, electors)
        loops.clear()
        advance(clock, 3 * INTERVAL, electors)
        assert store.calls == Counter({"renew_many": 3})
        assert loops == Counter({i: 3 for i in range(5)})


class TestEachOutcomeIsItsElectorsOwn:
    def test_a_refused_renewal_steps_that_elector_down_alone_once(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        gained = Counter[int]()
        lost = Counter[int]()
        electors = [
            elector(
                f"tenant-{i}",
                store,
                clock,
                on_leader=lambda i=i: gained.update([i]),
                on_leader_loss=lambda i=i: lost.update([i]),
            )
            for i in range(10)
        ]
        start_spread(clock, electors)
        tokens = [each.token for each in electors]
        before = Counter(store.calls)
        # another node took it over (its renewal is refused)
        store.compare_and_set(
            LeaseRequest(key="tenant-3", owner="someone-else", ttl=TTL), force=True
        )
        advance(clock, INTERVAL, electors)
        assert store.calls - before == Counter({"renew_many": 1})  # refused within the batch
        assert lost == Counter({3: 1})
        assert not electors[3].is_leader
        assert electors[3].leader is not None and electors[3].leader.uuid == "someone-else"
        assert [each.token for i, each in enumerate(electors) if i != 3] == [
            token for i, token in enumerate(tokens) if i != 3
        ]
        advance(clock, 2 * INTERVAL, electors)
        assert lost == Counter({3: 1})
        assert gained == Counter({i: 1 for i in range(10)})
        assert "tenant-3" not in store.batches[-1] and len(store.batches[-1]) == 9

    def test_a_failed_batch_is_a_failed_renewal_of_each_elector(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        listeners = [Events() for _ in range(5)]
        electors = [
            elector(f"tenant-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        start_spread(clock, electors)
        advance(clock, INTERVAL, electors)  # they line up
        store.down = True
        before = Counter(store.calls)
        advance(clock, INTERVAL, electors)  # the batch fails; each retries after 2 s
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("renew", False)]
            assert isinstance(listener.errors[0].error, BackendUnavailable)
        assert all(each.is_leader for each in electors)  # trusted until the deadline
        store.down = False
        advance(clock, INTERVAL, electors)  # the retries go out together, and work
        assert store.calls - before == Counter({"renew_many": 2})
        assert all(each.is_leader for each in electors)
        assert not any(listener.losses for listener in listeners)

    def test_an_ambiguous_batch_is_an_ambiguous_renewal_of_each_elector(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        listeners = [Events() for _ in range(5)]
        electors = [
            elector(f"tenant-{i}", store, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        start_spread(clock, electors)
        advance(clock, INTERVAL, electors)
        store.lost_reply = True
        advance(clock, INTERVAL, electors)
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("renew", True)]
            assert isinstance(listener.errors[0].error, AmbiguousOutcome)
        assert all(each.is_leader for each in electors)

    def test_renewals_that_keep_failing_step_each_elector_down_at_its_deadline(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        lost = Counter[str]()
        first = [
            elector(f"a-{i}", store, clock, on_leader_loss=lambda i=i: lost.update([f"a-{i}"]))
            for i in range(3)
        ]
        start_spread(clock, first)  # won at t=0.4 and t=0.8..., all before t=1.2
        clock.advance(1.0)
        settle(first)
        store.down = True  # renew_many fails from now on
        advance(clock, 8, first)
        assert not lost
        advance(clock, 2, first)  # past every renew deadline (10 s after the last renewal)
        assert lost == Counter({f"a-{i}": 1 for i in range(3)})

    def test_a_hung_batch_steps_each_elector_down_at_its_deadline_and_its_reply_is_not_trusted(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        lost = Counter[str]()
        electors = [
            elector(f"t-{i}", store, clock, on_leader_loss=lambda i=i: lost.update([f"t-{i}"]))
            for i in range(5)
        ]
        for each in electors:
            each.start()  # all at t=0: one batch at t=2, renew deadline t=10
        for each in electors:
            assert each.wait_idle(GUARD) and each.is_leader
        store.hold = True
        clock.advance(INTERVAL)
        assert store.entered.wait(GUARD)  # the batch hangs in the store
        clock.advance(7.0)  # t=9
        assert not lost
        clock.advance(1.0)  # t=10: each elector's own deadline entry fires
        assert wait_for(lambda: sum(lost.values()) == 5, limit=GUARD)
        assert not any(each.is_leader for each in electors)
        store.let_go.set()  # the late reply (each renewal applied) is not trusted
        assert wait_for(lambda: all(each.wait_idle(0.1) for each in electors), limit=GUARD)
        assert lost == Counter({f"t-{i}": 1 for i in range(5)})

    def test_a_status_report_that_hangs_keeps_no_other_renewal_of_its_batch_from_its_elector(
        self, clock: FakeClock
    ) -> None:
        """An elector's status report due after a batched renewal is its own store call: one
        that hangs (the store slow for that one write) holds up that elector's poll alone,
        as without batches. Neither the outcome of another elector's renewal in that batch
        (it would step down at its old deadline although the store renewed it) nor that
        elector's next renewals wait for it."""
        store = ReportStore(clock)
        lost = Counter[str]()
        electors = [
            LeaderElector(
                f"t-{i}",
                store,
                ttl=TTL,
                clock=clock,
                on_leader_loss=lambda i=i: lost.update([f"t-{i}"]),
            )
            for i in range(2)
        ]
        _made.extend(electors)
        for each in electors:
            each.start()  # both at t=0, reported then: renewals together at t=2, 4, 6...
        settle(electors)
        advance(clock, 2 * INTERVAL, electors)  # t=4: renewed together, deadlines t=14
        assert store.batches[-1] == ["t-0", "t-1"] or store.batches[-1] == ["t-1", "t-0"]
        store.hold_reports = True
        renewals_before = store.calls["renew"]
        try:
            clock.advance(INTERVAL)  # t=6: both renewed in one batch; the reports are due
            assert store.report_entered.wait(GUARD)
            assert sorted(store.batches[-1]) == ["t-0", "t-1"]
            (hung,) = store.reporting
            other = electors[1] if hung == "t-0" else electors[0]
            clock.advance(8.0)  # t=14: the renewal at t=4's deadline; the one at t=6 holds
            assert other.is_leader
            # and its next renewals go on meanwhile, on a worker of their own
            advance(clock, 6, [other])  # t=20: past the deadline of the renewal at t=6
            assert other.is_leader
            assert store.calls["renew"] > renewals_before
        finally:
            store.reports_go.set()
        settle(electors)
        assert other.is_leader
        assert lost == Counter({hung: 1})  # only the term whose own poll hung, at its deadline

    def test_a_callers_poll_that_hangs_keeps_no_other_elector_of_the_batch_from_renewing(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        """An elector whose caller's ``poll()`` hangs in the store (its own ``renew``) may be
        due with others: the batch does not wait for that poll to end (its renewal goes
        after it, on a worker of its own), and the others are renewed as ever."""
        store.held_renewals = {"a"}
        lost = Counter[str]()
        a, b = (
            elector(key, store, clock, on_leader_loss=lambda key=key: lost.update([key]))
            for key in ("a", "b")
        )
        for each in (a, b):
            each.start()  # both at t=0: renewals due together at t=2, deadlines t=10
        settle([a, b])
        clock.advance(1.0)
        settle([a, b])
        polling = threading.Thread(target=a.poll)
        try:
            polling.start()
            assert store.renew_entered.wait(GUARD)  # a's own renew hangs in the store
            advance(clock, 12, [b])  # t=13: b renewed all along
            assert b.is_leader
        finally:
            store.let_go.set()
            polling.join(GUARD)
        settle([a, b])
        assert b.is_leader
        assert lost == Counter({"a": 1})  # only a, whose own renewal hung past its deadline

    def test_stop_waits_for_the_batch_in_flight_and_releases_after_it(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        electors = [elector(f"t-{i}", store, clock) for i in range(3)]
        for each in electors:
            each.start()
        settle(electors)
        store.hold = True
        clock.advance(INTERVAL)
        assert store.entered.wait(GUARD)
        stopped = threading.Thread(target=electors[0].stop)
        stopped.start()
        stopped.join(0.2)
        assert stopped.is_alive()  # its renewal is in flight: the release goes after it
        store.let_go.set()
        stopped.join(GUARD)
        assert not stopped.is_alive()
        assert store.get("t-0") is None or store.get("t-0").owner is None  # type: ignore[union-attr]
        assert not electors[0].is_leader and not electors[0].running
        for each in electors[1:]:
            assert each.wait_idle(GUARD) and each.is_leader


class TestWhichElectorsBatch:
    def test_a_store_that_does_not_declare_renew_many_is_renewed_key_by_key(
        self, clock: FakeClock
    ) -> None:
        class Undeclared(BatchStore):
            capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

        plain = Undeclared(clock)
        electors = [elector(f"t-{i}", plain, clock) for i in range(5)]
        start_spread(clock, electors)
        before = Counter(plain.calls)
        advance(clock, 2 * INTERVAL, electors)
        assert plain.calls - before == Counter({"renew": 10})

    def test_the_flaky_test_double_renews_key_by_key(self, clock: FakeClock) -> None:
        """A double that counts or fails ``renew`` sees every elector's renewal."""
        flaky = FlakyBackend(MemoryBackend(clock))
        electors = [elector(f"t-{i}", flaky, clock) for i in range(3)]
        start_spread(clock, electors)
        before = flaky.calls["renew"]
        advance(clock, 2 * INTERVAL, electors)
        assert flaky.calls["renew"] - before == 6
        assert groups_on(clock) == []

    def test_the_flaky_test_sees_a_group_on_its_clock(self, clock: FakeClock) -> None:
        grouped = auto_lock("grouped", MemoryBackend(clock), clock)
        assert grouped.acquire()
        with pytest.raises(AssertionError):
            self.test_the_flaky_test_double_renews_key_by_key(clock)

    def test_the_flaky_test_ignores_a_group_on_another_clock(self, clock: FakeClock) -> None:
        """A group another test left behind (on its own clock) is none of its business:
        it passed alone and failed after one did (an order-dependent test)."""
        other = FakeClock()
        left = auto_lock("left", MemoryBackend(other), other)
        assert left.acquire()
        assert groups_on(other) != []
        self.test_the_flaky_test_double_renews_key_by_key(clock)

    def test_a_follower_is_in_the_group_but_its_polls_are_its_own(
        self, clock: FakeClock, store: BatchStore
    ) -> None:
        leader = elector("shared", store, clock)
        follower = elector("shared", store, clock)
        start_spread(clock, [leader])
        follower.start()
        advance(clock, 3 * INTERVAL, [leader, follower])
        assert leader.is_leader and not follower.is_leader
        assert follower.leader is not None and follower.leader.uuid == leader.uuid
        assert store.calls["renew_many"] == 0  # the leader's renewal alone: its own renew
        assert store.calls["renew"] == 3


class ReadStore(BatchStore):
    """A BatchStore that also counts reads and tries, and can fail ``get_many``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reads_down = False

    def get(self, key: str) -> LeaseRecord | None:
        with self._count:
            self.calls["get"] += 1
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        with self._count:
            self.calls["get_many"] += 1
        if self.reads_down:
            raise BackendUnavailable("get_many: store unreachable")
        return super().get_many(keys)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        with self._count:
            self.calls["compare_and_set"] += 1
        return super().compare_and_set(request, force=force)


class ReportStore(ReadStore):
    """A BatchStore whose first status report once ``hold_reports`` waits for ``reports_go``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.hold_reports = False
        self.reporting: list[str] = []  # the key whose report waits
        self.report_entered = threading.Event()
        self.reports_go = threading.Event()

    def report_member(self, member: MemberRecord) -> None:
        if self.hold_reports and not self.reporting:
            self.reporting.append(member.key)
            self.report_entered.set()
            self.reports_go.wait(4 * GUARD)
        super().report_member(member)


@pytest.fixture
def reads(clock: FakeClock) -> ReadStore:
    return ReadStore(clock)


def leaders_and_followers(
    n: int, store: ReadStore, clock: FakeClock, **options: Any
) -> tuple[list[LeaderElector], list[LeaderElector]]:
    """``n`` leaders of keys ``tenant-i``, then ``n`` followers of the same keys (another
    node's electors, as far as the store can tell), started in four groups 0.4 s apart."""
    leaders = [elector(f"tenant-{i}", store, clock) for i in range(n)]
    start_spread(clock, leaders)
    followers = [elector(f"tenant-{i}", store, clock, **options) for i in range(n)]
    for index, each in enumerate(followers):
        each.start()
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    settle(followers)
    return leaders, followers


def calls_by_name(
    holders: list[Any], store: ReadStore, clock: FakeClock, *, intervals: int = 3
) -> list[Counter[str]]:
    """The store's calls of each of ``intervals`` poll intervals, after one to line up."""
    advance(clock, INTERVAL, holders)
    counted = []
    for _ in range(intervals):
        before = Counter(store.calls)
        advance(clock, INTERVAL, holders)
        counted.append(Counter(store.calls) - before)
    return counted


class TestFollowersReadTogether:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_followers_cost_one_get_many_per_poll_window_and_no_try(
        self, n: int, clock: FakeClock, reads: ReadStore
    ) -> None:
        leaders, followers = leaders_and_followers(n, reads, clock)
        counted = calls_by_name([*leaders, *followers], reads, clock)
        if n == 1:  # nobody to read with: its own try, as before (and the leader's renew)
            assert counted == [Counter({"compare_and_set": 1, "renew": 1})] * 3
        else:
            assert counted == [Counter({"get_many": 1, "renew_many": 1})] * 3
        assert all(each.is_leader for each in leaders)
        assert not any(each.is_leader for each in followers)
        for follower, leader in zip(followers, leaders, strict=True):
            assert follower.leader is not None and follower.leader.uuid == leader.uuid
            assert follower.leader_exists

    def test_with_read_batching_turned_off_the_count_fails(
        self, clock: FakeClock, reads: ReadStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(elector_module, "reads_in_batches", lambda backend: False)
        leaders, followers = leaders_and_followers(10, reads, clock)
        counted = calls_by_name([*leaders, *followers], reads, clock)
        assert counted == [Counter({"compare_and_set": 10, "renew_many": 1})] * 3

    def test_each_follower_learns_of_its_leader_once_as_from_a_refused_try(
        self, clock: FakeClock, reads: ReadStore
    ) -> None:
        seen = Counter[int]()
        leaders, followers = leaders_and_followers(
            10, reads, clock, on_new_leader=lambda info: seen.update([info.token or 0])
        )
        advance(clock, 3 * INTERVAL, [*leaders, *followers])
        assert sum(seen.values()) == 10  # once each, not once per poll
        assert reads.calls["get_many"] >= 3

    def test_followers_take_over_released_leases_in_the_poll_that_reads_them(
        self, clock: FakeClock, reads: ReadStore
    ) -> None:
        leaders, followers = leaders_and_followers(10, reads, clock)
        advance(clock, INTERVAL, [*leaders, *followers])
        for each in leaders:
            each.stop()
        before = Counter(reads.calls)
        advance(clock, INTERVAL, followers)
        assert all(each.is_leader for each in followers)
        taken = Counter(reads.calls) - before
        assert taken["get_many"] == 1 and taken["compare_and_set"] == 10

    def test_a_status_report_that_hangs_keeps_no_other_follower_of_its_read_from_its_takeover(
        self, clock: FakeClock
    ) -> None:
        """A follower's status report due after a batched read is its own store call: one
        that hangs holds up that follower's poll alone. Another follower of the same read
        still takes over its lease when that is released."""
        store = ReportStore(clock)
        leaders = [elector(f"a-{i}", store, clock) for i in range(2)]
        for each in leaders:
            each.start()
        settle(leaders)
        followers = [LeaderElector(f"a-{i}", store, ttl=TTL, clock=clock) for i in range(2)]
        _made.extend(followers)
        for each in followers:
            each.start()  # both at t=0, reported then: they read together every 2 s
        holders = [*leaders, *followers]
        settle(holders)
        before = store.calls["get_many"]
        advance(clock, 2 * INTERVAL, holders)  # t=4
        assert store.calls["get_many"] > before
        store.hold_reports = True
        try:
            advance(clock, INTERVAL, leaders)  # t=6: read together; the reports are due
            assert store.report_entered.wait(GUARD)
            (hung,) = store.reporting
            index = 1 if hung == "a-0" else 0
            other = followers[index]
            leaders[index].stop()  # its lease is free: the other follower's to take
            advance(clock, 2 * INTERVAL, [other])
            assert other.is_leader
        finally:
            store.reports_go.set()
        settle(holders)
        assert other.is_leader

    def test_followers_take_over_expired_leases(self, clock: FakeClock, reads: ReadStore) -> None:
        followers = check_expired_leases_are_taken_over(clock, reads)
        assert all(each.is_leader for each in followers)

    def test_a_follower_mutated_to_skip_the_try_of_an_expired_lease_is_caught(
        self, clock: FakeClock, reads: ReadStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The check above fails when the follower ignores a read record's expiry (it then
        never tries a lease its crashed holder left); the store is left as it is."""
        judge = ElectorMachine.on_observe_result

        def skips_expired(
            self: ElectorMachine, now: float, record: LeaseRecord | None, server_now: datetime
        ) -> Any:
            if record is not None and record.expires_at is not None:
                server_now = min(server_now, record.expires_at - timedelta(seconds=1))
            return judge(self, now, record, server_now)

        monkeypatch.setattr(ElectorMachine, "on_observe_result", skips_expired)
        with pytest.raises(AssertionError, match="not taken over"):
            check_expired_leases_are_taken_over(clock, reads)

    def test_a_failed_read_is_a_failed_poll_of_each_follower(
        self, clock: FakeClock, reads: ReadStore
    ) -> None:
        listeners = [Events() for _ in range(5)]
        leaders = [elector(f"tenant-{i}", reads, clock) for i in range(5)]
        start_spread(clock, leaders)
        followers = [
            elector(f"tenant-{i}", reads, clock, event_listeners=[listener])
            for i, listener in enumerate(listeners)
        ]
        for each in followers:
            each.start()
        holders = [*leaders, *followers]
        advance(clock, INTERVAL, holders)
        reads.reads_down = True
        advance(clock, INTERVAL, holders)
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("read", False)]
        assert not any(each.is_leader for each in followers)
        reads.reads_down = False
        advance(clock, INTERVAL, holders)
        assert all(len(listener.errors) == 1 for listener in listeners)
        assert all(each.is_leader for each in leaders)


def check_expired_leases_are_taken_over(clock: FakeClock, store: ReadStore) -> list[LeaderElector]:
    """Leases of a crashed node (never renewed) are taken over by followers within a poll
    after they expire, by the store's time; the followers, for more checks."""
    for i in range(5):
        store.compare_and_set(LeaseRequest(key=f"tenant-{i}", owner="crashed", ttl=TTL))
    followers = [elector(f"tenant-{i}", store, clock) for i in range(5)]
    for each in followers:
        each.start()
    advance(clock, TTL - 1, followers)
    assert not any(each.is_leader for each in followers)  # still held by the crashed node
    assert store.calls["get_many"] >= 5
    advance(clock, 1 + INTERVAL, followers)  # expired; the next poll reads and tries
    assert all(each.is_leader for each in followers), "expired leases not taken over"
    return followers
