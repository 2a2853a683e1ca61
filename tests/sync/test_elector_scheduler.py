"""Started electors share the process's scheduler: a few threads, whatever their number.

Every assertion counts (threads, store calls, scheduled wake-ups, callbacks);
none measures time. Virtual time moves only when a test advances the
FakeClock; ``GUARD`` real seconds only bound waits that a broken build would
never finish.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pytest

from mongoelector import LeaderElector, Lock
from mongoelector._sync import elector as elector_module
from mongoelector._sync import manual, scheduler
from mongoelector.backends import (
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
)
from mongoelector.core.elector_machine import ElectorMachine, Role
from mongoelector.core.events import LossReason
from mongoelector.monitoring import EventListener, LeadershipLostEvent
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend, wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
#: Threads the scheduler may add to a process, whatever the number of electors: one timer
#: for the clock, the workers, and one callback thread.
EXTRA_THREADS = 4


class CountingBackend(MemoryBackend):
    """A MemoryBackend that counts acquire tries, renewals and batched reads per key."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.tries: Counter[str] = Counter()
        self.renews: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        self._count = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        with self._count:
            self.reads.update(keys)
        return super().get_many(keys)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        with self._count:
            self.tries[request.key] += 1
        return super().compare_and_set(request, force=force)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        with self._count:
            self.renews[key] += 1
        return super().renew(key, owner, token, ttl)


@pytest.fixture
def store(clock: FakeClock) -> CountingBackend:
    return CountingBackend(clock)


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock) -> Iterator[None]:
    yield
    for node in _made:  # a failed test must not leave loops to the next ones
        node.stop()
    _made.clear()
    assert [node for node in elector_module.running() if node.clock is clock] == []
    assert scheduler.scheduled(clock) == 0


_made: list[LeaderElector] = []


def elector(key: str, store: MemoryBackend, clock: FakeClock, **options: object) -> LeaderElector:
    """An elector (ttl 15 s: renew deadline 10 s, polls every 2 s), stopped after the test."""
    node = LeaderElector(key, store, clock=clock, report_status=False, **options)  # type: ignore[arg-type]
    _made.append(node)
    return node


def advance(clock: FakeClock, seconds: float, *waiting: LeaderElector | Lock) -> None:
    """Move the clock 2 s at a time; after each, wait until every one given has caught up."""
    for _ in range(int(seconds / 2)):
        clock.advance(2.0)
        for each in waiting:
            assert each.wait_idle(GUARD)


# --- how many threads -------------------------------------------------------------------------


def started_electors(n: int, store: CountingBackend, clock: FakeClock) -> tuple[int, int]:
    """Start ``n`` electors (in pairs on one key: a leader and a follower each), let them
    poll for five periods; the most threads they added while idle, and how many wake-ups
    were scheduled then."""
    before = threading.active_count()
    nodes = [elector(f"svc-{i // 2}", store, clock) for i in range(n)]
    for node in nodes:
        node.start()
    assert wait_for(lambda: all(node.running for node in nodes), limit=GUARD)
    most = 0
    scheduled = 0
    for _ in range(6):
        for node in nodes:
            assert node.wait_idle(GUARD)
        most = max(most, threading.active_count() - before)
        scheduled = scheduler.scheduled(clock)
        clock.advance(2.0)
    return most, scheduled


@pytest.mark.parametrize("n", [1, 200])
def test_started_electors_poll_on_at_most_4_more_threads(
    n: int, store: CountingBackend, clock: FakeClock
) -> None:
    extra, scheduled = started_electors(n, store, clock)
    assert extra <= EXTRA_THREADS
    assert scheduled == n  # one wake-up each, nothing else
    pairs = (n + 1) // 2
    leaders = [node for node in _made if node.is_leader]
    assert len(leaders) == pairs
    assert store.renews == Counter({f"svc-{i}": 5 for i in range(pairs)})  # one per period
    # Each key: the leader's win, then the follower's polls, one per period from its first:
    # each a try, or a read of the record with the other followers' (get_many).
    followers = n - pairs
    assert sum(store.tries.values()) + sum(store.reads.values()) == pairs + followers * 6
    for node in _made:
        node.stop()
    assert [node for node in elector_module.running() if node.clock is clock] == []
    assert scheduler.scheduled(clock) == 0


def test_a_thread_per_elector_is_caught(
    monkeypatch: pytest.MonkeyPatch, store: CountingBackend, clock: FakeClock
) -> None:
    """The count above fails if each started elector gets a thread of its own again."""
    start = LeaderElector.start

    def thread_per_loop(self: LeaderElector, blocking: bool = False) -> None:  # the old start()
        if blocking:
            start(self, True)
            return
        name = f"mongoelector-{self.key}"
        threading.Thread(target=start, args=(self, True), name=name, daemon=True).start()

    monkeypatch.setattr(LeaderElector, "start", thread_per_loop)
    extra, _ = started_electors(200, store, clock)
    assert extra > EXTRA_THREADS


# --- a callback that blocks -------------------------------------------------------------------


def test_a_blocking_on_leader_delays_no_other_elector_and_no_lock(
    store: CountingBackend, clock: FakeClock
) -> None:
    entered, go_on = threading.Event(), threading.Event()

    def on_leader() -> None:
        entered.set()
        go_on.wait(GUARD)

    stuck = elector("stuck", store, clock, on_leader=on_leader)
    seen: list[str] = []
    other = elector("other", store, clock, on_leader=lambda: seen.append("leader"))
    follower = elector("other", store, clock, on_new_leader=lambda info: seen.append("new"))
    lock = Lock("lock", store, ttl=15, clock=clock, auto_renew=True)
    try:
        assert lock.acquire()
        stuck.start()
        assert entered.wait(GUARD)  # the callback thread is stuck in it from now on
        other.start()
        assert wait_for(lambda: other.is_leader, limit=GUARD)
        follower.start()
        assert follower.wait_idle(GUARD) and other.wait_idle(GUARD)
        advance(clock, 20, other, follower, lock)  # twice the renew deadline
        assert other.is_leader and other.token == 1 and lock.ensure() == 1
        assert store.renews["other"] == 10 and store.renews["lock"] == 10
        assert store.tries["other"] == 1 + 11  # the win, then the follower's tries
        assert seen == ["leader", "new"]  # their callbacks ran on another callback thread
        # The stuck elector's own polls do not wait for its callback either.
        assert wait_for(lambda: store.renews["stuck"] == 10, limit=GUARD)
        assert stuck.is_leader and stuck.token == 1
        assert not stuck.wait_idle(0.0)  # still inside on_leader
    finally:
        go_on.set()
        lock.release()
    assert stuck.wait_idle(GUARD)


# --- the renew deadline holds while a poll cannot go on ---------------------------------------


class LossListener(EventListener):
    """Records the leadership losses reported to event listeners, with their thread."""

    def __init__(self) -> None:
        self.losses: list[LossReason] = []
        self.threads: list[threading.Thread] = []

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.losses.append(event.reason)
        self.threads.append(threading.current_thread())


def test_the_step_down_comes_at_the_deadline_while_the_renew_hangs(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    listener = LossListener()
    lost = threading.Event()
    node = elector("hang", flaky, clock, on_leader_loss=lost.set, event_listeners=[listener])
    node.start()
    assert wait_for(lambda: node.is_leader, limit=GUARD)
    assert node.wait_idle(GUARD)
    entered, proceed = threading.Event(), threading.Event()

    def hang_renew(name: str) -> None:
        if name == "renew":
            entered.set()
            proceed.wait(GUARD)

    flaky.before_call = hang_renew
    try:
        clock.advance(2.0)  # the renew goes out, and hangs
        assert entered.wait(GUARD)
        clock.advance(7.999)
        assert not lost.is_set() and node.role is Role.LEADER
        clock.advance(0.001)  # t = 10: the renew deadline of the term won at 0
        assert lost.wait(GUARD)  # on_leader_loss, while the renew still hangs
        assert node.role is Role.FOLLOWER and not node.is_leader
        assert listener.losses == [LossReason.DEADLINE]
        assert listener.threads[0].name.startswith("mongoelector-callbacks-")
        assert flaky.calls["renew"] == 1
    finally:
        flaky.before_call = None
        proceed.set()
    # The late reply (the store did renew) is not trusted: that record is released by its
    # token and a new term begins.
    assert wait_for(lambda: node.token == 2, limit=GUARD)
    assert node.wait_idle(GUARD)
    assert flaky.calls["release"] == 1
    assert listener.losses == [LossReason.DEADLINE]


def test_the_step_down_comes_at_the_deadline_while_no_worker_takes_the_poll(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    backend = MemoryBackend(clock)
    lost = threading.Event()
    node = elector("busy", backend, clock, on_leader_loss=lost.set)
    node.poll()
    assert node.is_leader
    waiting: list[Callable[[], None]] = []
    monkeypatch.setattr(scheduler, "submit", waiting.append)  # every worker busy, for ever
    node.start()
    assert node.wait_idle(GUARD)  # waits for the renew at t = 2
    clock.advance(2.0)
    assert wait_for(lambda: len(waiting) == 1, limit=GUARD)  # the poll waits for a worker
    clock.advance(8.0)  # t = 10: the renew deadline
    assert lost.wait(GUARD)
    assert node.role is Role.FOLLOWER
    monkeypatch.undo()
    for poll in waiting:  # a worker at last: the poll tries to lead again
        scheduler.submit(poll)
    assert wait_for(lambda: node.is_leader, limit=GUARD)
    assert node.wait_idle(GUARD)
    assert node.token == 2


class LossSignal(EventListener):
    """Sets ``lost`` when a leadership loss is reported to event listeners."""

    def __init__(self) -> None:
        self.lost = threading.Event()

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.lost.set()


def roles_while_the_report_hangs(
    clock: FakeClock, hung_report: int, renewals: int, deadline: float
) -> tuple[list[Role], bool]:
    """Lead, renew ``renewals`` times (every 2 s), and let status report ``hung_report``
    hang until just past ``deadline``: the roles just before and at the deadline, seen
    from inside the hung report, and whether the loss was reported.

    The clock is driven by hand (:mod:`mongoelector._sync.manual`): the hanging report
    moves the clock and runs the timer's entries due meanwhile, as the timer thread would.
    """
    flaky = FlakyBackend(MemoryBackend(clock))
    signal = LossSignal()
    roles: list[Role] = []
    node = LeaderElector("report", flaky, clock=clock, event_listeners=[signal])
    _made.append(node)

    def hang_report(name: str) -> None:
        if name != "report_member" or flaky.calls["report_member"] != hung_report:
            return
        clock.advance(deadline - 0.001 - clock.monotonic())
        manual.run_entries(clock)
        roles.append(node.role)
        clock.advance(0.001)  # the deadline of the last successful write
        manual.run_entries(clock)
        roles.append(node.role)

    flaky.before_call = hang_report
    manual.drive(clock)
    try:
        with manual.acting_for(clock):
            node.start()
        manual.run_due(clock)  # the win at 0
        for _ in range(renewals):
            clock.advance(2.0)
            manual.run_due(clock)
        assert flaky.calls["renew"] == renewals
        assert flaky.calls["report_member"] >= hung_report
    finally:
        node.stop()
        manual.forget(clock)
    return roles, signal.lost.is_set()


@pytest.mark.parametrize(
    ("hung_report", "renewals", "deadline"),
    [
        (1, 0, 10.0),  # the report after the win at 0: no deadline was known when queued
        (2, 3, 16.0),  # the report of the poll at 6, whose renew moved the deadline to 16
    ],
)
def test_the_step_down_comes_at_the_deadline_while_the_status_report_hangs(
    hung_report: int, renewals: int, deadline: float, clock: FakeClock
) -> None:
    """The poll's store call answered (a win, a renewal) and set a new renew deadline; its
    status report then hangs: the timer still steps down at that deadline."""
    roles, lost = roles_while_the_report_hangs(clock, hung_report, renewals, deadline)
    assert roles == [Role.LEADER, Role.FOLLOWER]  # stepped down while the report hung
    assert lost


def test_mutation_a_deadline_armed_only_when_the_poll_is_queued_is_caught(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The check above fails if the deadline set by the poll's own store call is not armed."""
    monkeypatch.setattr(LeaderElector, "_arm_deadline", lambda self, loop: None)
    roles, _ = roles_while_the_report_hangs(clock, 2, 3, 16.0)
    assert roles == [Role.LEADER, Role.LEADER]


def renewals_after_a_callers_winning_poll(
    blocking: bool, store: CountingBackend, clock: FakeClock
) -> tuple[int, bool]:
    """A follower's loop waits 60 s between tries; a ``poll()`` made meanwhile wins at 0.
    How many renewals the loop made in the next 12 s, and whether the node still leads."""
    rival = Lock("slow", store, ttl=15, clock=clock)
    assert rival.acquire()
    node = elector("slow", store, clock, follower_poll=60)
    if blocking:
        threading.Thread(target=node.start, args=(True,), daemon=True).start()
    else:
        node.start()
    assert wait_for(lambda: node.running and node.next_poll_at == 60.0, limit=GUARD)
    assert node.wait_idle(GUARD)
    rival.release()
    node.poll()  # wins at 0
    assert node.is_leader and node.token == 2
    advance(clock, 12, node)  # past the renew deadline of the win
    return store.renews["slow"], node.is_leader


@pytest.mark.parametrize("blocking", [False, True])
def test_a_poll_made_by_a_caller_brings_the_loops_next_poll_forward(
    blocking: bool, store: CountingBackend, clock: FakeClock
) -> None:
    """The loop renews the term a ``poll()`` won every 2 s from then on, not at its next
    try 60 s later (by then the term would have lapsed at its renew deadline, and the
    loss would have been reported only then)."""
    assert renewals_after_a_callers_winning_poll(blocking, store, clock) == (6, True)


def test_mutation_a_loop_left_waiting_after_a_callers_poll_is_caught(
    monkeypatch: pytest.MonkeyPatch, store: CountingBackend, clock: FakeClock
) -> None:
    """The check above fails if the waiting loop is not told that a poll() made it due."""
    monkeypatch.setattr(LeaderElector, "_wake_sooner", lambda self, loop: None)
    assert renewals_after_a_callers_winning_poll(False, store, clock) == (0, False)


def test_a_refused_fenced_transaction_steps_down_under_the_machine_lock(
    store: CountingBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fenced_transaction`` proved the term lost: the step-down it records changes the
    machine under the lock the timer takes to step down at the deadline, so the two never
    interleave (which could report the loss twice, or raise ``InvalidTransition`` when the
    timer's step-down lands between the refusal's check of the role and its move)."""
    node = elector("fenced", store, clock)
    node.poll()
    assert node.is_leader and node.token == 1
    held: list[bool] = []
    on_renew_result = ElectorMachine.on_renew_result

    def checked(machine: ElectorMachine, *args: object) -> object:
        held.append(node._machine_lock.locked())
        return on_renew_result(machine, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ElectorMachine, "on_renew_result", checked)
    node._transaction_refused(1, clock.monotonic())
    assert held == [True]
    assert node.role is Role.FOLLOWER and not node.is_leader


def test_a_stop_after_the_deadline_frees_the_lease_the_store_still_keeps(
    clock: FakeClock,
) -> None:
    """Renewals fail until the term lapses at its deadline (10 s); the store keeps that
    lease until its ttl (15 s). A ``stop()`` then frees it: it returns with the lease free."""
    inner = MemoryBackend(clock)
    flaky = FlakyBackend(inner)
    node = elector("lapsed", flaky, clock)
    node.start()
    assert wait_for(lambda: node.is_leader, limit=GUARD)
    assert node.wait_idle(GUARD)
    flaky.mode = "down"
    advance(clock, 10, node)  # renewals fail at 2..8; the step-down at 10, a failed try
    assert node.role is Role.FOLLOWER and flaky.calls["renew"] == 4
    flaky.mode = "ok"
    node.stop()
    record = inner.get("lapsed")
    assert record is not None and record.owner is None  # freed, 5 s before its ttl
    assert flaky.calls["release"] == 1


def test_two_polls_of_one_elector_never_overlap(clock: FakeClock) -> None:
    """The loop's polls and poll() calls from other threads take turns."""
    flaky = FlakyBackend(MemoryBackend(clock))
    inside, most = [0], [0]
    guard = threading.Lock()

    def count(name: str) -> None:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        threading.Event().wait(0.001)  # long enough for an overlapping call to show
        with guard:
            inside[0] -= 1

    flaky.before_call = count
    node = elector("one", flaky, clock)
    node.start()
    callers = [threading.Thread(target=node.poll) for _ in range(4)]
    for caller in callers:
        caller.start()
    for _ in range(3):
        clock.advance(2.0)
    for caller in callers:
        caller.join(GUARD)
    assert node.wait_idle(GUARD)
    assert flaky.total_calls >= 5
    assert most[0] == 1


# --- a poll that raises (a bug) ---------------------------------------------------------------


class StatusBug(MemoryBackend):
    """A MemoryBackend whose second status report raises something no backend should."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reports = 0

    def report_member(self, member: MemberRecord) -> None:
        self.reports += 1
        if self.reports == 2:
            raise RuntimeError("a bug in the backend")
        super().report_member(member)


def test_a_poll_that_raises_stops_the_loop_and_steps_down_for_good(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = StatusBug(clock)
    calls: list[str] = []
    node = LeaderElector(
        "buggy",
        store,
        clock=clock,
        on_leader=lambda: calls.append("leader"),
        on_leader_loss=lambda: calls.append("loss"),
    )
    _made.append(node)
    node.start()
    assert wait_for(lambda: node.is_leader, limit=GUARD)
    assert node.wait_idle(GUARD)
    with caplog.at_level(logging.ERROR, logger="mongoelector.elector"):
        while node.running:  # the next status report is due within ttl / 3
            clock.advance(2.0)
            assert node.wait_idle(GUARD)
    assert "elector loop for 'buggy' crashed; stepping down" in caplog.text
    assert calls == ["leader", "loss"]
    assert not node.is_leader
    record = store.get("buggy")
    assert record is not None and record.owner is None  # the lease was freed
    assert node not in elector_module.running() and scheduler.scheduled(clock) == 0


def test_a_started_elector_keeps_no_event_of_its_own(
    store: CountingBackend, clock: FakeClock
) -> None:
    # Only a blocking loop waits on an Event; each scheduled one would cost ~800 bytes.
    first, second = elector("svc-a", store, clock), elector("svc-b", store, clock)
    first.start()
    second.start()
    loops = [first._loop, second._loop]
    assert loops[0] is not None and loops[1] is not None
    assert loops[0].wakeup is loops[1].wakeup is elector_module._NO_WAKEUP
    first.stop()
    second.stop()
