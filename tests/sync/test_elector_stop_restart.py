"""``stop()`` racing ``start()``, a second ``stop()``, its own callbacks and a status batch in
flight (the sync driver): what ``members()`` shows afterwards, and how often each callback
and report runs.

``stop()`` steps down, runs ``on_leader_loss`` and frees the lease first, then sends its
last status report (``elector_running=False``) after any batch in flight with this node's
report. A ``start()`` in between (from ``on_leader_loss``, or another thread) begins a new
loop: the old stop's report is then not sent, and the new loop's first poll reports.
Everything on a FakeClock, by counts; ``GUARD`` real seconds only bound a broken build.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from mongoelector import LeaderElector
from mongoelector._common.elector_base import ElectorBase
from mongoelector._sync.elector import _Batched as SyncBatched
from mongoelector.backends import LeaseRequest, MemberRecord
from mongoelector.core import elector_machine
from mongoelector.monitoring import StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.fakes import wait_for
from tests.sync.test_elector_status_batches import (  # the clean-up fixture, with its list
    Errors,
    OneByOneStore,
    StatusStore,
    _made,
    nothing_left_behind,  # noqa: F401 (an autouse fixture: used by being here)
)

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0
STATUS_INTERVAL = TTL / 3


def made(store: Any, clock: FakeClock, **options: Any) -> LeaderElector:
    elector = LeaderElector("k", store, ttl=TTL, clock=clock, **options)
    _made.append(elector)
    return elector


def shown(store: StatusStore, elector: LeaderElector) -> MemberRecord:
    """The report of ``elector`` that ``members()`` shows."""
    return {m.uuid: m for m in store.members(elector.key)}[elector.uuid]


def settled(elector: LeaderElector) -> None:
    assert elector.wait_idle(GUARD)


def someone_else_leads(store: StatusStore) -> None:
    assert store.compare_and_set(LeaseRequest(key="k", owner="someone-else", ttl=TTL)).acquired


def follower_restarted(store: StatusStore, clock: FakeClock) -> MemberRecord:
    """A follower started, stopped (shown not running) and started again; its report once
    the new loop has polled."""
    someone_else_leads(store)
    elector = made(store, clock)
    elector.start()
    settled(elector)
    elector.stop()
    assert shown(store, elector).elector_running is False
    elector.start()
    settled(elector)
    assert elector.running and not elector.is_leader
    return shown(store, elector)


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
def test_a_restarted_follower_is_shown_running_after_its_first_poll(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """start() after stop(): the new loop's first poll reports, though its leadership (a
    follower's, as before) did not change and its last report is younger than a status
    interval; it once showed ``elector_running=False`` for a status interval."""
    assert follower_restarted(store_type(clock), clock).elector_running is True


def restarted_from_on_leader_loss(store: StatusStore, clock: FakeClock) -> LeaderElector:
    """A leader whose ``on_leader_loss`` starts it again (once), stopped 1 s after its first
    report; settled once the new loop has polled."""
    restarts: list[int] = []

    def again() -> None:
        if not restarts:
            restarts.append(1)
            elector.start()

    elector = made(store, clock, on_leader_loss=again)
    elector.start()
    settled(elector)
    assert elector.is_leader
    clock.advance(1.0)
    settled(elector)
    elector.stop()
    settled(elector)
    assert restarts == [1]
    return elector


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
def test_restarted_from_on_leader_loss_the_new_term_is_reported(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """on_leader_loss of a stop() starts the elector again: the stop's last report is not
    sent (the elector runs), and the new loop's first poll reports the new term: it once
    showed the old term's token until the next status interval."""
    store = store_type(clock)
    elector = restarted_from_on_leader_loss(store, clock)
    assert elector.running and elector.is_leader and elector.token == 2
    report = shown(store, elector)
    assert report.elector_running is True
    assert report.is_leader is True
    assert report.token == elector.token


def test_with_the_machine_start_mutated_to_keep_the_last_report_the_restart_checks_fail(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the two above: a machine whose start() leaves its last report's
    time as it was (a restart's first report not due) shows the stop's report, or the
    old term's."""
    start = elector_machine.ElectorMachine.start

    def keeping(self: elector_machine.ElectorMachine) -> None:
        kept = (self._status_at, self._status_leading)
        start(self)
        self._status_at, self._status_leading = kept

    monkeypatch.setattr(elector_machine.ElectorMachine, "start", keeping)
    assert follower_restarted(StatusStore(clock), clock).elector_running is False
    store = StatusStore(clock)
    elector = restarted_from_on_leader_loss(store, clock)
    assert shown(store, elector).token != elector.token  # the check above fails


class GatedStore(StatusStore):
    """A StatusStore whose next ``hold`` status calls each wait for a gate of their own
    (``gates``, in the order the calls came)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.hold = 0
        self.gates: list[threading.Event] = []
        self._holding = threading.Lock()

    def _gate(self) -> None:
        with self._holding:
            gate = None
            if self.hold:
                self.hold -= 1
                gate = threading.Event()
                self.gates.append(gate)
        if gate is not None:
            assert gate.wait(4 * GUARD)

    def report_member(self, member: MemberRecord) -> None:
        self._gate()
        super().report_member(member)

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        self._gate()
        super().report_members(members)

    def open_all(self) -> None:
        with self._holding:
            self.hold = 0
            for gate in self.gates:
                gate.set()


def restarted_over_a_hung_report(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> tuple[GatedStore, LeaderElector, list[int]]:
    """A leader whose report hangs in its status group's batch is stopped, and its
    ``on_leader_loss`` starts it again (once) while that batch hangs; the store, the
    elector, restarted (its new loop has polled), and the count of the reports settled
    since (each ``_status_end`` returned: watched, not changed)."""
    ended: list[int] = []
    status_end = SyncBatched._status_end

    def counted(self: SyncBatched, *args: Any) -> None:
        status_end(self, *args)
        ended.append(1)

    store = GatedStore(clock)
    restarts: list[int] = []

    def again() -> None:
        if not restarts:
            restarts.append(1)
            elector.start()

    elector = made(store, clock, on_leader_loss=again)
    elector.start()
    settled(elector)
    store.hold = 1
    clock.advance(STATUS_INTERVAL + 1)  # the next report falls due, and hangs
    assert wait_for(lambda: len(store.gates) == 1, limit=GUARD)
    monkeypatch.setattr(SyncBatched, "_status_end", counted)
    elector.stop()  # its last report is not sent: restarted
    assert restarts == [1] and elector.running
    assert wait_for(lambda: elector.token == 2 and elector.wait_idle(0), limit=GUARD)
    return store, elector, ended


def test_a_report_of_the_old_loop_landing_after_a_restart_is_followed_by_the_new_one(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old loop's report (made before the stop: the old term) lands after the restart,
    the new loop's own skipped while it was in flight: the new loop reports its term
    right after it (it once showed the old term until the next status interval)."""
    store, elector, ended = restarted_over_a_hung_report(clock, monkeypatch)
    try:
        assert len(store.gates) == 1  # one batch at a time: the new loop's report waits
        store.open_all()
        assert wait_for(lambda: len(ended) >= 1, limit=GUARD)  # the old batch settled
        settled(elector)  # (a report queued or in flight is not idle)
        report = shown(store, elector)
        assert report.elector_running is True
        assert report.token == elector.token == 2
    finally:
        store.open_all()
        elector.stop()
    assert shown(store, elector).elector_running is False


def test_with_a_stale_report_recorded_as_the_latest_the_restart_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: the old loop's report, landing after the restart,
    recorded as the node's latest (as it once was) leaves the old term shown."""
    landed = ElectorBase._status_landed

    def recorded(self: Any, member: MemberRecord, at: float, error: Any, *, stale: bool) -> bool:
        return landed(self, member, at, error, stale=False)  # type: ignore[no-any-return]

    monkeypatch.setattr(ElectorBase, "_status_landed", recorded)
    with pytest.raises(AssertionError, match="token"):
        test_a_report_of_the_old_loop_landing_after_a_restart_is_followed_by_the_new_one(
            clock, monkeypatch
        )


class Stopping(Errors):
    """A listener that notes the thread of each status-report store error."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []

    def store_error(self, event: StoreErrorEvent) -> None:
        super().store_error(event)
        if event.operation == "status report":
            self.threads.append(threading.current_thread())


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
@pytest.mark.parametrize("inside", ["poll", "stop", "release"])
def test_a_call_from_on_leader_loss_between_the_release_and_the_last_report(
    clock: FakeClock, store_type: type[StatusStore], inside: str
) -> None:
    """``on_leader_loss`` runs after the step-down and before the last report; a
    ``poll()``, ``stop()`` or ``release()`` from it (the poll lock is free then) takes
    nothing back: the last report says not leading and not running, ``on_leader_loss``
    ran once, the lease is free, and no call deadlocks (bounded by the test's guard)."""
    store = store_type(clock)
    losses: list[int] = []

    def lost() -> None:
        losses.append(1)
        getattr(elector, inside)()

    elector = made(store, clock, on_leader_loss=lost)
    elector.start()
    settled(elector)
    assert elector.is_leader
    elector.stop()
    assert losses == [1]
    report = shown(store, elector)
    assert (report.elector_running, report.is_leader, report.token) == (False, False, None)
    assert store.get("k").owner is None  # type: ignore[union-attr]
    assert not elector.running and not elector.is_leader


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
def test_a_failed_last_report_is_one_store_error_in_the_stopping_thread(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """The last report fails: its ``store_error`` reaches the listeners once, in the thread
    of ``stop()`` (it runs the callbacks its call caused), after ``on_leader_loss``."""
    store = store_type(clock)
    listener = Stopping()
    order: list[str] = []
    elector = made(
        store, clock, event_listeners=[listener], on_leader_loss=lambda: order.append("loss")
    )
    elector.start()
    settled(elector)
    store.down = True
    elector.stop()
    assert listener.status_errors() == Counter({elector.uuid: 1})
    assert listener.threads == [threading.current_thread()]
    assert order == ["loss"]
    assert store.get("k").owner is None  # type: ignore[union-attr]


def test_with_the_last_report_mutated_to_go_before_the_step_down_the_window_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the check above: a last report made before the step-down (the
    stop's report then says the node leads) is caught."""
    step_down = LeaderElector._step_down_for_good

    def report_first(self: LeaderElector, starts: int, *, callbacks_here: bool = True) -> None:
        with self._poll_lock:
            if self._starts == starts:
                self._send_status(running=False)
        reporting, self._report_status = self._report_status, False
        try:
            step_down(self, starts, callbacks_here=callbacks_here)
        finally:
            self._report_status = reporting

    monkeypatch.setattr(LeaderElector, "_step_down_for_good", report_first)
    with pytest.raises(AssertionError, match="False, False, None"):
        test_a_call_from_on_leader_loss_between_the_release_and_the_last_report(
            clock, StatusStore, "poll"
        )


def test_with_the_callbacks_after_the_last_report_handed_away_the_error_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the failed-report check: the callbacks the last report caused left
    to the callback thread (the stop returning before its store_error ran) are caught."""
    end_callbacks = LeaderElector._end_callbacks
    calls: list[bool] = []

    def second_away(self: LeaderElector, here: bool) -> None:
        calls.append(here)
        end_callbacks(self, here and len(calls) % 2 == 1)

    monkeypatch.setattr(LeaderElector, "_end_callbacks", second_away)
    with pytest.raises(AssertionError):
        test_a_failed_last_report_is_one_store_error_in_the_stopping_thread(clock, StatusStore)


def two_stops_at_once_over_a_hung_batch(clock: FakeClock, *, limit: float) -> bool:
    """Whether, when two threads stop a leader whose report hangs in a batch, the lease is
    freed and ``on_leader_loss`` has run once while the batch hangs (waits bounded by
    ``limit`` real seconds); then both return once it lands, ``on_leader_loss`` having
    run once, and the report shown last says not running."""
    store = GatedStore(clock)
    losses: list[int] = []
    elector = made(store, clock, on_leader_loss=lambda: losses.append(1))
    elector.start()
    settled(elector)
    store.hold = 1
    clock.advance(STATUS_INTERVAL + 1)  # the next report falls due, and hangs
    assert wait_for(lambda: len(store.gates) == 1, limit=GUARD)
    together = threading.Barrier(2)

    def stop() -> None:
        together.wait(GUARD)
        elector.stop()

    stopping = [threading.Thread(target=stop) for _ in range(2)]
    for each in stopping:
        each.start()
    try:
        went_on = wait_for(lambda: store.get("k").owner is None, limit=limit)  # type: ignore[union-attr]
        went_on = wait_for(lambda: losses == [1], limit=limit) and went_on
        went_on = went_on and all(each.is_alive() for each in stopping)  # reports wait
    finally:
        store.open_all()
        for each in stopping:
            each.join(GUARD)
    assert not any(each.is_alive() for each in stopping)
    assert losses == [1]
    assert shown(store, elector).elector_running is False
    return went_on


def test_two_stops_at_once_over_a_hung_batch_step_down_once_and_both_return(
    clock: FakeClock,
) -> None:
    """Two threads stop a leader whose report hangs in a batch: neither holds the other's
    step-down up (the poll lock is not held across the wait), ``on_leader_loss`` runs
    once, and both return once the batch lands."""
    assert two_stops_at_once_over_a_hung_batch(clock, limit=GUARD)


def test_with_the_release_mutated_to_wait_for_the_batch_the_two_stops_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a release that waits for the batch in flight (as
    the last report does, which the stop once sent first) leaves the lease held."""
    release = LeaderElector._send_releases

    def after_the_batch(self: LeaderElector) -> None:
        with self._status_lock:  # held by the batch sending this elector's report
            pass
        release(self)

    monkeypatch.setattr(LeaderElector, "_send_releases", after_the_batch)
    assert not two_stops_at_once_over_a_hung_batch(clock, limit=1.0)
