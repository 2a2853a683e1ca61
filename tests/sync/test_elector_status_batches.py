"""Started electors with ``report_status=True`` send their status reports in batches.

On a store that declares ``Capability.REPORT_MANY``, the status reports of the
started electors of one store that fall due within half a status interval go
out in one ``report_members`` call, on a scheduler worker; in the steady state
that is one call per status interval (``ttl / 3``) for the whole process. A
store without the capability gets each elector's own ``report_member`` as
before. Everything is counted on a FakeClock; ``GUARD`` real seconds only
bound waits that a broken build would never finish. The MongoDB counts
(mongomock and the wire path) are in ``tests/backends/test_mongo_elector_batches.py``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mongoelector import LeaderElector
from mongoelector._common import batches as shared_batches
from mongoelector._sync import scheduler, status
from mongoelector.backends import Capability, LeaseRequest, MemberRecord, MemoryBackend
from mongoelector.errors import BackendUnavailable
from mongoelector.monitoring import EventListener, StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.fakes import wait_for
from tests.holders import advance, settle

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renewals every 2 s, a status report due every 5 s (ttl / 3)
STATUS_INTERVAL = TTL / 3
WINDOWS = 4  # status intervals counted, after the ones in which the reports line up


class StatusStore(MemoryBackend):
    """A MemoryBackend that counts its status calls (and the reports in each), and can
    fail them (``down``: ``BackendUnavailable``, nothing stored)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: Counter[str] = Counter()
        self.sizes: list[int] = []  # the reports of each report_members call
        self.down = False
        self._count = threading.Lock()

    def report_member(self, member: MemberRecord) -> None:
        with self._count:
            self.calls["report_member"] += 1
        if self.down:
            raise BackendUnavailable("report_member: store unreachable")
        super().report_member(member)

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        with self._count:
            self.calls["report_members"] += 1
            self.sizes.append(len(members))
        if self.down:
            raise BackendUnavailable("report_members: store unreachable")
        super().report_members(members)

    def status_calls(self) -> int:
        with self._count:
            return self.calls["report_member"] + self.calls["report_members"]


class OneByOneStore(StatusStore):
    """A StatusStore that does not declare REPORT_MANY."""

    capabilities = MemoryBackend.capabilities - {Capability.REPORT_MANY}


class Errors(EventListener):
    def __init__(self) -> None:
        self.errors: list[StoreErrorEvent] = []
        self._guard = threading.Lock()

    def store_error(self, event: StoreErrorEvent) -> None:
        with self._guard:
            self.errors.append(event)

    def status_errors(self) -> Counter[str]:
        with self._guard:
            return Counter(e.owner for e in self.errors if e.operation == "status report")


_made: list[LeaderElector] = []


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock) -> Iterator[None]:
    yield
    for each in _made:  # a failed test must not leave loops to the next ones
        each.stop()
    _made.clear()
    assert wait_for(lambda: scheduler.scheduled(clock) == 0, limit=GUARD)
    assert [group for group in status.groups() if group.clock is clock] == []


def start(n: int, store: Any, clock: FakeClock, **options: Any) -> list[LeaderElector]:
    """``n`` started electors with status reports on: ``n // 2`` keys, so that half of
    them lead and half follow; started in four groups 0.4 s apart."""
    keys = max(1, n // 2)
    electors = []
    for index in range(n):
        made = LeaderElector(f"tenant-{index % keys}", store, ttl=TTL, clock=clock, **options)
        _made.append(made)
        made.start()
        electors.append(made)
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    settle(electors)
    assert sum(each.is_leader for each in electors) == keys
    return electors


def status_calls_per_window(
    store: StatusStore, clock: FakeClock, electors: list[LeaderElector]
) -> list[int]:
    """The store's status calls in each of :data:`WINDOWS` status intervals, after two in
    which the reports line up."""
    advance(clock, 2 * STATUS_INTERVAL, electors)
    counts = []
    for _ in range(WINDOWS):
        before = store.status_calls()
        advance(clock, STATUS_INTERVAL, electors)
        counts.append(store.status_calls() - before)
    return counts


def listed(store: MemoryBackend, electors: list[LeaderElector]) -> set[str]:
    """The uuids that ``members()`` shows, over the electors' keys."""
    keys = {each.key for each in electors}
    return {member.uuid for key in keys for member in store.members(key)}


@pytest.mark.parametrize("n", [10, 1000])
def test_n_started_electors_send_at_most_one_status_call_per_status_interval(
    n: int, clock: FakeClock
) -> None:
    store = StatusStore(clock)
    electors = start(n, store, clock)
    counts = status_calls_per_window(store, clock, electors)
    assert all(count <= 1 for count in counts), counts
    assert sum(counts) >= WINDOWS - 1  # the reports do go out (about every 6 s: a poll's)
    assert store.calls["report_members"] >= WINDOWS - 1  # (a first report at start may
    # go alone: an elector's first poll may run before the others started)
    assert max(store.sizes[-2:]) == n  # every elector in the batch
    assert listed(store, electors) == {each.uuid for each in electors}
    leaders = {m.uuid for e in electors for m in store.members(e.key) if m.is_leader}
    assert leaders == {each.uuid for each in electors if each.is_leader}


def test_a_store_without_report_many_gets_each_electors_own_report(clock: FakeClock) -> None:
    store = OneByOneStore(clock)
    electors = start(10, store, clock)
    counts = status_calls_per_window(store, clock, electors)
    assert store.calls["report_members"] == 0
    assert sum(counts) >= 10 * (WINDOWS - 1)  # one report per elector per interval
    assert listed(store, electors) == {each.uuid for each in electors}


def test_with_the_batcher_mutated_to_send_one_call_per_member_the_count_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = status.StatusGroup._run

    def one_call_each(self: status.StatusGroup, batch: list[Any]) -> None:
        for member in batch:
            run(self, [member])

    monkeypatch.setattr(status.StatusGroup, "_run", one_call_each)
    store = StatusStore(clock)
    electors = start(10, store, clock)
    counts = status_calls_per_window(store, clock, electors)
    assert not all(count <= 1 for count in counts), counts  # the bound above fails


def test_with_the_batcher_mutated_to_drop_a_member_the_count_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member left out of the batch it was due for reports on its own: a call more."""

    plan = shared_batches.plan_reports

    def drop_the_last(trigger: Any, members: Any, now: float) -> list[list[Any]] | None:
        calls = plan(trigger, members, now)
        return None if calls is None else [calls[0][:-1], *calls[1:]]

    monkeypatch.setattr(shared_batches, "plan_reports", drop_the_last)
    store = StatusStore(clock)
    electors = start(10, store, clock)
    counts = status_calls_per_window(store, clock, electors)
    assert not all(count <= 1 for count in counts), counts  # the bound above fails


def test_a_failed_batch_is_a_failed_report_of_each_elector_and_the_next_poll_retries(
    clock: FakeClock,
) -> None:
    store = StatusStore(clock)
    errors = Errors()
    electors = start(10, store, clock, event_listeners=[errors])
    advance(clock, 2 * STATUS_INTERVAL, electors)  # lined up
    store.down = True
    advance(clock, STATUS_INTERVAL + 1, electors)  # the next batch falls due and fails
    failed = errors.status_errors()
    assert set(failed) == {each.uuid for each in electors}  # each elector's own failure
    calls_while_down = store.status_calls()
    store.down = False
    stamped = {m.uuid: m.timestamp for e in electors for m in store.members(e.key)}
    advance(clock, 2, electors)  # the next polls retry at once (still due), in one batch
    assert store.status_calls() - calls_while_down <= 2
    after = {m.uuid: m.timestamp for e in electors for m in store.members(e.key)}
    assert all(after[uuid] != stamped.get(uuid) for uuid in after)  # every report is new
    assert set(after) == {each.uuid for each in electors}
    assert errors.status_errors() == failed  # no failure since


def test_a_stopped_elector_is_shown_not_running_after_the_batches(clock: FakeClock) -> None:
    """stop()'s own last report (``elector_running=False``) lands after any batch."""
    store = StatusStore(clock)
    electors = start(10, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)
    stopped = electors[3]
    stopped.stop()
    advance(clock, 2 * STATUS_INTERVAL, electors)
    shown = {m.uuid: m for m in store.members(stopped.key)}
    assert shown[stopped.uuid].elector_running is False
    others = [e for e in electors if e.key == stopped.key and e is not stopped]
    assert all(shown[e.uuid].elector_running for e in others)


class HangingStore(StatusStore):
    """A StatusStore whose ``report_members`` waits for ``go`` once ``hang`` is set."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.hang = False
        self.entered = threading.Event()
        self.go = threading.Event()
        self.renewals = 0  # renew_many and renew calls begun
        self.renewed = 0  # and answered

    def renew_many(self, items: Sequence[Any]) -> list[Any]:
        with self._renewing():
            return super().renew_many(items)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
        with self._renewing():  # a renewal nobody joined goes alone
            return super().renew(key, owner, token, ttl)

    @contextlib.contextmanager
    def _renewing(self) -> Iterator[None]:
        with self._count:
            self.renewals += 1
        try:
            yield
        finally:
            with self._count:
                self.renewed += 1

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        if self.hang:
            self.entered.set()
            self.go.wait(4 * GUARD)
        super().report_members(members)


def test_a_hung_status_batch_delays_no_renewal_and_no_follower_poll(clock: FakeClock) -> None:
    """Status is informational: while a batch of reports hangs in the store, the leaders
    keep renewing (past their renew deadline) and the followers keep polling."""
    store = HangingStore(clock)
    assert polls_go_on_while_a_batch_hangs(store, clock, limit=GUARD)


def test_with_the_batch_mutated_to_run_in_the_poll_the_hung_batch_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a poll that waits for its status batch (the batch
    run in the poll's worker, not on a worker of its own) stalls while it hangs."""

    def in_the_poll(self: status.StatusGroup, batches: list[Any]) -> None:
        self._run_all(batches)

    monkeypatch.setattr(status.StatusGroup, "_submit", in_the_poll)
    store = HangingStore(clock)
    assert not polls_go_on_while_a_batch_hangs(store, clock, limit=2.0)


def caught_up(electors: list[LeaderElector], clock: FakeClock) -> bool:
    """Whether every one of ``electors`` waits for a poll the clock has not reached: the
    polls due now (a leader's is its renewal) have run and ended. Unlike ``wait_idle``, a
    status report still in flight (a hung batch) does not count: polls do not wait for it."""
    now = clock.monotonic()
    loops = [each._latest for each in electors]
    return all(
        loop is not None and loop.parked_until is not None and loop.parked_until > now
        for loop in loops
    )


def polls_go_on_while_a_batch_hangs(store: HangingStore, clock: FakeClock, *, limit: float) -> bool:
    """Whether, with a batch of reports hanging in ``store``, every leader of ten started
    electors renews 12 s on (past its renew deadline) and every follower polls (waits
    bounded by ``limit`` real seconds, as a hang guard); then the batch is let go.

    After every move of the clock it waits until every elector has made the poll due
    (:func:`caught_up`) before moving it again: moved on at once, the clock outran polls
    due but not yet begun (a worker not yet scheduled on a busy machine), and leaders
    stepped down at a deadline their renewals, never begun, could not move.
    """
    electors = start(10, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)
    leaders = [each for each in electors if each.is_leader]
    followers = [each for each in electors if not each.is_leader]
    store.hang = True
    try:
        clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
        assert store.entered.wait(GUARD)
        went_on = wait_for(lambda: caught_up(electors, clock), limit=limit)
        polled = {each.uuid: each.node_status["last_poll"] for each in followers}
        renewals = store.renewals
        for step in range(1, 13):  # 12 s, 1 s at a time: past every leader's renew deadline
            clock.advance(1.0)
            # Every poll due made (a renewal answered a step late would be due a step
            # late), and one renewal at least in every 3 s (every 2 s a leader renews).
            went_on = went_on and wait_for(lambda: caught_up(electors, clock), limit=limit)
            went_on = went_on and store.renewed == store.renewals
            if step % 3 == 0:
                went_on = went_on and store.renewals > renewals
                renewals = store.renewals
        went_on = went_on and all(each.is_leader for each in leaders)
        went_on = went_on and all(
            each.node_status["last_poll"] != polled[each.uuid] for each in followers
        )
    finally:
        store.go.set()
    settle(electors)
    assert listed(store, electors) == {each.uuid for each in electors}
    return went_on


def test_a_trigger_whose_report_a_batch_sent_meanwhile_sends_nothing(clock: FakeClock) -> None:
    """A poll found its report due, but before it reached the group a batch took that report
    in and settled: the late trigger sends nothing (it once sent a lone report, a call more
    in that interval, one run in a few with 1,000 electors)."""
    store = StatusStore(clock)
    electors = start(10, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)  # every report sent, none due now
    calls = store.status_calls()
    late = electors[0]
    assert late._loop is not None and late._loop.batched is not None
    group = late._loop.batched.status_group
    assert group is not None
    group.due(late._loop.batched)  # what the late poll does
    settle(electors)
    assert store.status_calls() == calls


def hung_batch_then_stop(store: HangingStore, clock: FakeClock) -> tuple[LeaderElector, Any]:
    """Ten started electors, a batch of their reports hanging in the store, and ``stop()``
    of one of them begun in a thread meanwhile; that elector and the thread."""
    electors = start(10, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)
    store.hang = True
    clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
    assert store.entered.wait(GUARD)
    store.hang = False
    stopped = electors[3]
    stopping = threading.Thread(target=stopped.stop)
    stopping.start()
    return stopped, stopping


def test_a_stop_while_a_batch_is_in_flight_lands_its_last_report_after_the_batch(
    clock: FakeClock,
) -> None:
    """stop() during a batch holding the elector's report waits for that batch: the batch's
    ``elector_running=True`` cannot land after stop()'s ``elector_running=False``."""
    store = HangingStore(clock)
    stopped, stopping = hung_batch_then_stop(store, clock)
    stopping.join(0.2)  # a head start (not an assertion): stop() now waits for the batch
    store.go.set()
    stopping.join(GUARD)
    assert not stopping.is_alive()
    shown = {m.uuid: m for m in store.members(stopped.key)}
    assert shown[stopped.uuid].elector_running is False


def test_with_stop_mutated_not_to_wait_for_the_batch_the_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a last report that does not wait for the batch
    in flight is overwritten by that batch's ``elector_running=True``."""
    send = LeaderElector._send_status

    def not_waiting(self: LeaderElector, *, running: bool) -> None:
        if running:
            send(self, running=running)
            return
        held = self._status_lock
        self._status_lock = threading.Lock()  # as if the batch held nothing
        try:
            send(self, running=running)
        finally:
            self._status_lock = held

    monkeypatch.setattr(LeaderElector, "_send_status", not_waiting)
    store = HangingStore(clock)
    stopped, stopping = hung_batch_then_stop(store, clock)
    stopping.join(GUARD)  # it does not wait for the batch now
    assert not stopping.is_alive()
    store.go.set()
    assert wait_for(lambda: not stopped._status_lock.locked(), limit=GUARD)  # the batch landed
    shown = {m.uuid: m for m in store.members(stopped.key)}
    assert shown[stopped.uuid].elector_running is True  # the check above fails


def a_stop_steps_down_while_a_batch_hangs(
    store: HangingStore, clock: FakeClock, *, limit: float
) -> bool:
    """Whether ``stop()`` of a leader whose report is in a hung batch fires its
    ``on_leader_loss`` and frees its lease while the batch hangs (waits bounded by ``limit``
    real seconds, as a hang guard), its last report waiting for the batch; then the batch
    is let go and that last report lands after it."""
    losses: list[int] = []
    electors = start(10, store, clock, on_leader_loss=lambda: losses.append(1))
    advance(clock, 2 * STATUS_INTERVAL, electors)
    store.hang = True
    clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
    assert store.entered.wait(GUARD)
    store.hang = False
    leader = next(each for each in electors if each.is_leader)
    stopping = threading.Thread(target=leader.stop)
    stopping.start()
    try:
        went_on = wait_for(
            lambda: losses == [1] and store.get(leader.key).owner != leader.uuid,  # type: ignore[union-attr]
            limit=limit,
        )
        went_on = went_on and stopping.is_alive()  # its last report waits for the batch
    finally:
        store.go.set()
        stopping.join(GUARD)
    assert not stopping.is_alive()
    settle(electors)
    shown = {m.uuid: m for m in store.members(leader.key)}
    assert shown[leader.uuid].elector_running is False
    return went_on


def test_a_hung_status_batch_delays_no_stop(clock: FakeClock) -> None:
    """stop() during a hung batch holding the elector's report steps down and frees the
    lease at once; only its last report waits for the batch (it once waited first)."""
    store = HangingStore(clock)
    assert a_stop_steps_down_while_a_batch_hangs(store, clock, limit=GUARD)


def test_with_the_release_mutated_to_wait_for_the_batch_the_stop_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a release that waits for the batch in flight (as the
    last report does) leaves the lease held while the batch hangs."""
    release = LeaderElector._send_releases

    def after_the_batch(self: LeaderElector) -> None:
        with self._status_lock:  # held by a batch sending this elector's report
            pass
        release(self)

    monkeypatch.setattr(LeaderElector, "_send_releases", after_the_batch)
    store = HangingStore(clock)
    assert not a_stop_steps_down_while_a_batch_hangs(store, clock, limit=2.0)


def two_triggers_at_once(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, *, mutate: bool = False
) -> StatusStore:
    """Two started electors whose reports both fall due, handed to their group by two
    threads at once: the second claims its report while the first is choosing its batch
    (unless the group makes it wait; with ``mutate`` it does not); the store after."""
    store = StatusStore(clock)
    electors = start(2, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)  # every report sent, none due now
    loops = [each._loop.batched for each in electors if each._loop is not None]
    assert len(loops) == 2 and all(each is not None for each in loops)
    group = loops[0].status_group
    assert group is not None and loops[1].status_group is group
    if mutate:
        monkeypatch.setattr(group, "_choosing", contextlib.nullcontext())
    second_claimed = threading.Event()
    claim = type(loops[1])._claim_status

    def claiming(self: Any) -> bool:
        claimed = claim(self)
        if self is loops[1]:
            second_claimed.set()
        return claimed

    plan = shared_batches.plan_reports
    first_planning = threading.Event()

    def planning(trigger: Any, members: Any, now: float) -> list[list[Any]] | None:
        if trigger is loops[0]:
            first_planning.set()
            second_claimed.wait(0.5)  # a head start for the second (not an assertion)
        return plan(trigger, members, now)

    monkeypatch.setattr(type(loops[1]), "_claim_status", claiming)
    monkeypatch.setattr(shared_batches, "plan_reports", planning)
    for each in electors:
        with each._machine_lock:
            each._machine._status_at = None  # due now (no poll makes it due: none runs)
    calls = store.status_calls()
    first = threading.Thread(target=group.due, args=(loops[0],))
    first.start()
    assert first_planning.wait(GUARD)  # the first is choosing (its report claimed)
    group.due(loops[1])
    first.join(GUARD)
    assert not first.is_alive()
    settle(electors)
    store.calls["counted"] = store.status_calls() - calls
    return store


def test_two_triggers_at_once_send_their_reports_in_one_call(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = two_triggers_at_once(clock, monkeypatch)
    assert store.calls["counted"] == 1
    assert store.sizes[-1] == 2


def test_with_the_choosing_lock_mutated_away_two_triggers_send_two_calls(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: triggers choosing at once leave each other out."""
    store = two_triggers_at_once(clock, monkeypatch, mutate=True)
    assert store.calls["counted"] == 2  # the check above fails


def test_a_leadership_change_during_a_batch_is_reported_when_the_batch_lands(
    clock: FakeClock,
) -> None:
    """A leader whose poll steps it down while a batch carries its ``is_leader=True``
    report (its report saying so could not join: its report was in flight) has that new
    report sent as the batch lands, not a poll later (members() showed it leading until
    its next poll)."""
    store = HangingStore(clock)
    electors = start(10, store, clock)
    advance(clock, 2 * STATUS_INTERVAL, electors)
    leader = next(each for each in electors if each.is_leader)
    store.hang = True
    clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
    assert store.entered.wait(GUARD)
    store.hang = False
    taken = store.compare_and_set(
        LeaseRequest(key=leader.key, owner="someone-else", ttl=TTL), force=True
    )
    assert taken.acquired
    for _ in range(3):  # its next renewal is refused: it steps down (a renewal begun
        # before the takeover may end 2 s on, its next one then 2 s later)
        clock.advance(2.0)
        if wait_for(lambda: not leader.is_leader, limit=5.0):  # a hang guard
            break
    assert not leader.is_leader
    store.go.set()
    settle(electors)
    shown = {m.uuid: m for m in store.members(leader.key)}
    assert shown[leader.uuid].is_leader is False


class _Settles:
    """A member whose one report is begun and whose outcome is recorded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ended: list[object] = []

    def _status_begin(self) -> tuple[str, float]:
        return self.name, 0.0

    def _status_end(self, record: object, at: float, error: object) -> None:
        self.ended.append(error)


class _Interrupted:
    def report_members(self, members: object) -> None:
        raise SystemExit("interrupted mid-call")


def test_a_batch_interrupted_mid_call_settles_each_report_as_unknown(clock: FakeClock) -> None:
    """A status call cut off by SystemExit/KeyboardInterrupt may or may not have landed:
    each member's report ends with an ``AmbiguousOutcome`` (it once ended as landed)."""
    from mongoelector.errors import AmbiguousOutcome

    group = status.StatusGroup(status._registry, ("test", id(clock)), _Interrupted(), clock)  # type: ignore[arg-type]
    members = [_Settles("a"), _Settles("b")]
    with pytest.raises(SystemExit):
        group._run([(each, 0) for each in members])  # type: ignore[misc]
    assert [len(each.ended) for each in members] == [1, 1]
    assert all(isinstance(each.ended[0], AmbiguousOutcome) for each in members)
