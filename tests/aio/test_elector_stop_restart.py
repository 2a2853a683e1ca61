"""``stop()`` racing ``start()``, a second ``stop()``, cancellation, its own callbacks and a
status call in flight (the asyncio driver): what ``members()`` shows afterwards, and how
often each callback and report runs.

``stop()`` steps down, runs ``on_leader_loss`` and frees the lease first, then sends its
last status report (``elector_running=False``) after any status call in flight with this
node's report. A ``start()`` in between (from ``on_leader_loss``, or another task) begins
a new loop: the old stop's report is then not sent, and the new loop's first poll reports.
Everything on a FakeClock, by counts and turns of the event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from mongoelector._common.elector_base import ElectorBase
from mongoelector.aio import AsyncLeaderElector, status
from mongoelector.aio import elector as elector_module
from mongoelector.backends import LeaseRequest, MemberRecord
from mongoelector.backends.async_protocol import InlineBackend
from mongoelector.core import elector_machine
from mongoelector.monitoring import StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.aio.test_elector_status_batches import (
    Errors,
    OneByOneStore,
    StatusStore,
    idle,
    releasing_after_the_batch,
)

TTL = 15.0
STATUS_INTERVAL = TTL / 3


def made(store: Any, clock: FakeClock, **options: Any) -> AsyncLeaderElector:
    return AsyncLeaderElector("k", store, ttl=TTL, clock=clock, **options)


def shown(store: StatusStore, elector: AsyncLeaderElector) -> MemberRecord:
    """The report of ``elector`` that ``members()`` shows."""
    return {m.uuid: m for m in store.members(elector.key)}[elector.uuid]


def someone_else_leads(store: StatusStore) -> None:
    assert store.compare_and_set(LeaseRequest(key="k", owner="someone-else", ttl=TTL)).acquired


async def follower_restarted(store: StatusStore, clock: FakeClock) -> MemberRecord:
    """A follower started, stopped (shown not running) and started again; its report once
    the new loop has polled."""
    someone_else_leads(store)
    elector = made(store, clock)
    await elector.start()
    await idle([elector])
    await elector.stop()
    assert shown(store, elector).elector_running is False
    await elector.start()
    try:
        await idle([elector])
        assert elector.running and not elector.is_leader
        return shown(store, elector)
    finally:
        await elector.stop()


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
async def test_a_restarted_follower_is_shown_running_after_its_first_poll(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """start() after stop(): the new loop's first poll reports, though its leadership (a
    follower's, as before) did not change and its last report is younger than a status
    interval; it once showed ``elector_running=False`` for a status interval."""
    assert (await follower_restarted(store_type(clock), clock)).elector_running is True


async def restarted_from_on_leader_loss(store: StatusStore, clock: FakeClock) -> AsyncLeaderElector:
    """A leader whose ``on_leader_loss`` starts it again (once), stopped 1 s after its first
    report; settled once the new loop has polled."""
    restarts: list[int] = []

    async def again() -> None:
        if not restarts:
            restarts.append(1)
            await elector.start()

    elector = made(store, clock, on_leader_loss=again)
    await elector.start()
    await idle([elector])
    assert elector.is_leader
    clock.advance(1.0)
    await idle([elector])
    await elector.stop()
    await idle([elector])
    assert restarts == [1]
    return elector


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
async def test_restarted_from_on_leader_loss_the_new_term_is_reported(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """on_leader_loss of a stop() starts the elector again: the stop's last report is not
    sent (the elector runs), and the new loop's first poll reports the new term: it once
    showed the old term's token until the next status interval."""
    store = store_type(clock)
    elector = await restarted_from_on_leader_loss(store, clock)
    try:
        assert elector.running and elector.is_leader and elector.token == 2
        report = shown(store, elector)
        assert report.elector_running is True
        assert report.is_leader is True
        assert report.token == elector.token
    finally:
        await elector.stop()


async def test_with_the_machine_start_mutated_to_keep_the_last_report_the_restart_checks_fail(
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
    assert (await follower_restarted(StatusStore(clock), clock)).elector_running is False
    store = StatusStore(clock)
    elector = await restarted_from_on_leader_loss(store, clock)
    try:
        assert shown(store, elector).token != elector.token  # the check above fails
    finally:
        await elector.stop()


class GatedStore(InlineBackend):
    """A ``StatusStore`` seen by asyncio whose next ``hold`` status calls each wait for a
    gate of their own (``gates``, in the order the calls came; the event loop stays free)."""

    def __init__(self, store: StatusStore) -> None:
        super().__init__(store)
        self.store = store
        self.hold = 0
        self.gates: list[asyncio.Event] = []

    async def _gate(self) -> None:
        if self.hold:
            self.hold -= 1
            gate = asyncio.Event()
            self.gates.append(gate)
            await gate.wait()

    async def report_member(self, member: MemberRecord) -> None:
        await self._gate()
        await super().report_member(member)

    async def report_members(self, members: Sequence[MemberRecord]) -> None:
        await self._gate()
        await super().report_members(members)


async def eventually(check: Any, *, turns: int = 2000) -> bool:
    """Whether ``check()`` holds within ``turns`` turns of the event loop (a bound)."""
    for _ in range(turns):
        if check():
            return True
        await asyncio.sleep(0)
    return bool(check())


async def restarted_over_a_hung_report(
    clock: FakeClock,
) -> tuple[GatedStore, AsyncLeaderElector]:
    """A leader whose report hangs in its status group's call (gate 0) is stopped, and its
    ``on_leader_loss`` starts it again (once) while that call hangs; a report the new
    loop's first poll sends may hang too (gate 1). The store and the elector, restarted."""
    store = GatedStore(StatusStore(clock))
    restarts: list[int] = []

    async def again() -> None:
        if not restarts:
            restarts.append(1)
            await elector.start()

    elector = made(store, clock, on_leader_loss=again)
    await elector.start()
    await idle([elector])
    store.hold = 1
    clock.advance(STATUS_INTERVAL + 1)  # the next report falls due, and hangs
    assert await eventually(lambda: len(store.gates) == 1)
    store.hold = 1
    await asyncio.wait_for(elector.stop(), 30)  # its last report is not sent: restarted
    assert restarts == [1] and elector.running and elector.token == 2
    return store, elector


async def test_a_report_of_the_old_loop_landing_after_a_restart_is_followed_by_the_new_one(
    clock: FakeClock,
) -> None:
    """The old loop's report (made before the stop: the old term) lands after the restart:
    the new loop reports its term right after it, not a status interval later."""
    store, elector = await restarted_over_a_hung_report(clock)
    try:
        store.hold = 0
        for gate in store.gates:
            gate.set()
        await idle([elector])
        report = shown(store.store, elector)
        assert report.elector_running is True
        assert report.token == elector.token == 2
    finally:
        for gate in store.gates:
            gate.set()
        await elector.stop()


async def test_a_stop_after_a_restart_over_a_hung_report_lands_last(clock: FakeClock) -> None:
    """The restarted elector is stopped after the old loop's hung call lands, while a call
    of the new loop may still hang: the last report (``elector_running=False``) lands after
    every call carrying a report of either loop. The old loop's call once settled the new
    loop's in-flight mark, and the stop sent its report before that call landed."""
    store, elector = await restarted_over_a_hung_report(clock)
    stopping: asyncio.Task[None] | None = None
    try:
        store.gates[0].set()  # the old loop's call lands
        for _ in range(50):  # turns of the event loop (not an assertion)
            await asyncio.sleep(0)
        stopping = asyncio.get_running_loop().create_task(elector.stop())
        await eventually(stopping.done, turns=50)  # (it waits for the new loop's call)
        for gate in store.gates:
            gate.set()
        await asyncio.wait_for(stopping, 30)
        for _ in range(50):
            await asyncio.sleep(0)
        assert shown(store.store, elector).elector_running is False
    finally:
        for gate in store.gates:
            gate.set()
        if stopping is not None:
            await asyncio.wait({stopping}, timeout=30)
        await elector.stop()
    assert status.groups(asyncio.get_running_loop()) == []


async def test_with_a_second_call_begun_while_one_is_in_flight_the_last_report_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a status group that begins the new loop's report
    while the old loop's call is in flight (two calls of one node at once, as it once did)
    shows the stopped elector running."""

    def not_waiting(self: Any) -> tuple[MemberRecord, float] | None:
        elector, loop = self._elector, self._loop
        if loop.stopped or loop.done:
            loop.status_queued = False
            return None
        elector._status_flight = asyncio.get_running_loop().create_future()
        return elector._member_record(running=True)  # type: ignore[no-any-return]

    monkeypatch.setattr(elector_module._Batched, "_status_begin", not_waiting)
    with pytest.raises(AssertionError, match="elector_running"):
        await test_a_stop_after_a_restart_over_a_hung_report_lands_last(clock)


async def test_with_a_stale_report_recorded_as_the_latest_the_restart_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the restart check above: the old loop's report, landing after the
    restart, recorded as the node's latest (as it once was) leaves the old term shown."""
    landed = ElectorBase._status_landed

    def recorded(self: Any, member: MemberRecord, at: float, error: Any, *, stale: bool) -> bool:
        return landed(self, member, at, error, stale=False)  # type: ignore[no-any-return]

    monkeypatch.setattr(ElectorBase, "_status_landed", recorded)
    with pytest.raises(AssertionError, match="token"):
        await test_a_report_of_the_old_loop_landing_after_a_restart_is_followed_by_the_new_one(
            clock
        )


class Stopping(Errors):
    """A listener that notes the task of each status-report store error."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[asyncio.Task[Any] | None] = []

    def store_error(self, event: StoreErrorEvent) -> None:
        super().store_error(event)
        if event.operation == "status report":
            self.tasks.append(asyncio.current_task())


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
@pytest.mark.parametrize("inside", ["poll", "stop", "release"])
async def test_a_call_from_on_leader_loss_between_the_release_and_the_last_report(
    clock: FakeClock, store_type: type[StatusStore], inside: str
) -> None:
    """``on_leader_loss`` runs after the step-down and before the last report; a
    ``poll()``, ``stop()`` or ``release()`` from it (the poll lock is free then) takes
    nothing back: the last report says not leading and not running, ``on_leader_loss``
    ran once, the lease is free, and no call deadlocks (bounded by the test's guard)."""
    store = store_type(clock)
    losses: list[int] = []

    async def lost() -> None:
        losses.append(1)
        await getattr(elector, inside)()

    elector = made(store, clock, on_leader_loss=lost)
    await elector.start()
    await idle([elector])
    assert elector.is_leader
    await elector.stop()
    assert losses == [1]
    report = shown(store, elector)
    assert (report.elector_running, report.is_leader, report.token) == (False, False, None)
    assert store.get("k").owner is None  # type: ignore[union-attr]
    assert not elector.running and not elector.is_leader
    assert status.groups(asyncio.get_running_loop()) == []


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
async def test_a_failed_last_report_is_one_store_error_in_the_stopping_task(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """The last report fails: its ``store_error`` reaches the listeners once, in the task
    of ``stop()`` (it runs the callbacks its call caused), after ``on_leader_loss``."""
    store = store_type(clock)
    listener = Stopping()
    order: list[str] = []
    elector = made(
        store, clock, event_listeners=[listener], on_leader_loss=lambda: order.append("loss")
    )
    await elector.start()
    await idle([elector])
    store.down = True
    await elector.stop()
    failed = Counter(e.owner for e in listener.errors if e.operation == "status report")
    assert failed == Counter({elector.uuid: 1})
    assert listener.tasks == [asyncio.current_task()]
    assert order == ["loss"]
    assert store.get("k").owner is None  # type: ignore[union-attr]


async def test_with_the_last_report_mutated_to_go_before_the_step_down_the_window_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the check above: a last report made before the step-down (the
    stop's report then says the node leads) is caught."""
    step_down = AsyncLeaderElector._step_down_for_good

    async def report_first(self: AsyncLeaderElector, starts: int) -> None:
        async with self._poll_lock:
            if self._starts == starts:
                await self._send_status(running=False)
        reporting, self._report_status = self._report_status, False
        try:
            await step_down(self, starts)
        finally:
            self._report_status = reporting

    monkeypatch.setattr(AsyncLeaderElector, "_step_down_for_good", report_first)
    with pytest.raises(AssertionError, match="False, False, None"):
        await test_a_call_from_on_leader_loss_between_the_release_and_the_last_report(
            clock, StatusStore, "poll"
        )


async def test_with_the_last_report_mutated_into_a_task_of_its_own_the_error_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the failed-report check (a listener report is made at once in the
    task whose store call failed, here): a last report sent from a task of its own has
    its store_error reach the listeners in that task, which the check catches."""
    send_status = AsyncLeaderElector._send_status

    async def elsewhere(self: AsyncLeaderElector, *, running: bool) -> None:
        if running:
            await send_status(self, running=running)
        else:
            await asyncio.get_running_loop().create_task(send_status(self, running=False))

    monkeypatch.setattr(AsyncLeaderElector, "_send_status", elsewhere)
    with pytest.raises(AssertionError, match="tasks"):
        await test_a_failed_last_report_is_one_store_error_in_the_stopping_task(clock, StatusStore)


async def two_stops_at_once_over_a_hung_call(clock: FakeClock) -> bool:
    """Whether, when two tasks stop a leader whose report hangs in a status call, the lease
    is freed and ``on_leader_loss`` has run once while the call hangs (within a bound of
    turns of the event loop); then both return once it lands, ``on_leader_loss`` having
    run once, and the report shown last says not running."""
    store = GatedStore(StatusStore(clock))
    losses: list[int] = []
    elector = made(store, clock, on_leader_loss=lambda: losses.append(1))
    await elector.start()
    await idle([elector])
    store.hold = 1
    clock.advance(STATUS_INTERVAL + 1)  # the next report falls due, and hangs
    assert await eventually(lambda: len(store.gates) == 1)
    loop = asyncio.get_running_loop()
    stopping = [loop.create_task(elector.stop()) for _ in range(2)]
    try:
        went_on = await eventually(lambda: store.store.get("k").owner is None)  # type: ignore[union-attr]
        went_on = went_on and losses == [1]
        went_on = went_on and not any(each.done() for each in stopping)  # reports wait
    finally:
        for gate in store.gates:
            gate.set()
        await asyncio.wait_for(asyncio.gather(*stopping), 30)
    assert losses == [1]
    assert shown(store.store, elector).elector_running is False
    assert status.groups(asyncio.get_running_loop()) == []
    return went_on


async def test_two_stops_at_once_over_a_hung_call_step_down_once_and_both_return(
    clock: FakeClock,
) -> None:
    """Two tasks stop a leader whose report hangs in a status call: neither holds the other's
    step-down up, ``on_leader_loss`` runs once, and both return once the call lands."""
    assert await two_stops_at_once_over_a_hung_call(clock)


async def test_with_the_release_mutated_to_wait_for_the_call_the_two_stops_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a release that waits for the status call in flight
    (as the last report does, which the stop once sent first) leaves the lease held."""
    monkeypatch.setattr(AsyncLeaderElector, "_send_releases", releasing_after_the_batch)
    assert not await two_stops_at_once_over_a_hung_call(clock)


class HungRelease(InlineBackend):
    """A ``StatusStore`` seen by asyncio whose ``release`` waits for ``go`` while ``hang``
    is set (``entered`` once one waits)."""

    def __init__(self, store: StatusStore) -> None:
        super().__init__(store)
        self.store = store
        self.hang = False
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def release(self, key: str, owner: str, *, token: int | None = None) -> bool:
        if self.hang:
            self.entered.set()
            await self.go.wait()
        return await super().release(key, owner, token=token)


async def stop_cancelled_during_its_release(
    clock: FakeClock,
) -> tuple[HungRelease, AsyncLeaderElector, list[int]]:
    """A leader whose ``stop()`` is cancelled while its release call hangs (the call
    abandoned: nothing freed); the store (no longer hanging), the elector and its
    ``on_leader_loss`` calls."""
    store = HungRelease(StatusStore(clock))
    losses: list[int] = []
    elector = made(store, clock, on_leader_loss=lambda: losses.append(1))
    await elector.start()
    await idle([elector])
    store.hang = True
    stopping = asyncio.get_running_loop().create_task(elector.stop())
    await asyncio.wait_for(store.entered.wait(), 30)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    store.hang = False
    assert losses == [1] and not elector.running and not elector.is_leader
    assert store.store.get("k").owner == elector.uuid  # type: ignore[union-attr]
    return store, elector, losses


async def test_a_stop_cancelled_during_its_release_is_completed_by_the_next_stop(
    clock: FakeClock,
) -> None:
    """The release abandoned by a cancelled ``stop()`` is sent again by the next ``stop()``
    (by its token: a no-op had it landed); it once was dropped, the lease then held
    until its ttl ran out, and a ``start()`` meanwhile waited for it like another's."""
    store, elector, losses = await stop_cancelled_during_its_release(clock)
    await elector.stop()
    assert store.store.get("k").owner is None  # type: ignore[union-attr]
    assert losses == [1]
    assert shown(store.store, elector).elector_running is False


async def test_a_start_after_a_stop_cancelled_during_its_release_leads_at_once(
    clock: FakeClock,
) -> None:
    """``start()`` after that cancelled ``stop()`` sends the abandoned release first, then
    its first poll wins a new term (it once found its own old lease and waited for it
    to lapse, as another node's)."""
    store, elector, losses = await stop_cancelled_during_its_release(clock)
    await elector.start()
    try:
        await idle([elector])
        assert elector.is_leader and elector.token == 2
        assert shown(store.store, elector).token == 2
    finally:
        await elector.stop()
    assert store.store.get("k").owner is None  # type: ignore[union-attr]
    assert losses == [1, 1]


async def test_with_the_abandoned_release_dropped_the_cancelled_release_checks_fail(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the two above: a release abandoned mid-call and dropped (as it
    once was) leaves the lease held after the next ``stop()``, and the ``start()``
    meanwhile does not lead."""
    monkeypatch.setattr(ElectorBase, "_abandoned", lambda self, release: None)
    with pytest.raises(AssertionError, match="owner"):
        await test_a_stop_cancelled_during_its_release_is_completed_by_the_next_stop(clock)
    with pytest.raises(AssertionError, match="is_leader"):
        await test_a_start_after_a_stop_cancelled_during_its_release_leads_at_once(clock)


class HungRenew(InlineBackend):
    """A ``StatusStore`` seen by asyncio whose ``renew`` waits for ``go`` while ``hang`` is
    set (``entered`` once one waits)."""

    def __init__(self, store: StatusStore) -> None:
        super().__init__(store)
        self.store = store
        self.hang = False
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
        if self.hang:
            self.entered.set()
            await self.go.wait()
        return await super().renew(key, owner, token, ttl)


async def test_a_stop_cancelled_before_its_step_down_is_completed_by_the_next_stop(
    clock: FakeClock,
) -> None:
    """``stop()`` cancelled while it waits for the loop's renewal in flight (before its
    step-down) has stopped the loop and nothing else; awaiting ``stop()`` again steps
    down (``on_leader_loss`` once) and frees the lease (docs/asyncio.md, Cancellation)."""
    store = HungRenew(StatusStore(clock))
    losses: list[int] = []
    elector = made(store, clock, on_leader_loss=lambda: losses.append(1))
    await elector.start()
    await idle([elector])
    store.hang = True
    clock.advance(2.5)  # the next renewal is due, and hangs
    await asyncio.wait_for(store.entered.wait(), 30)
    stopping = asyncio.get_running_loop().create_task(elector.stop())
    for _ in range(20):  # turns of the event loop: stop() waits for the renewal
        await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    store.hang = False
    store.go.set()
    assert await eventually(lambda: elector._task is not None and elector._task.done())
    assert not elector.running and losses == []
    assert store.store.get("k").owner == elector.uuid  # type: ignore[union-attr]
    await elector.stop()
    assert losses == [1] and not elector.is_leader
    assert store.store.get("k").owner is None  # type: ignore[union-attr]
    assert shown(store.store, elector).elector_running is False


async def test_with_a_stop_of_a_stopped_elector_mutated_to_do_nothing_the_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a ``stop()`` that does nothing once no loop runs
    leaves the lease of the interrupted stop held."""
    stop = AsyncLeaderElector.stop

    async def only_running(self: AsyncLeaderElector) -> None:
        if self._loop is not None:
            await stop(self)

    monkeypatch.setattr(AsyncLeaderElector, "stop", only_running)
    with pytest.raises(AssertionError, match=r"\[\] == \[1\]"):
        await test_a_stop_cancelled_before_its_step_down_is_completed_by_the_next_stop(clock)
