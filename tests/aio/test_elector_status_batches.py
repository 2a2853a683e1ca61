"""Started ``AsyncLeaderElector``s with status reports on send them in batches (asyncio).

The asyncio twin of ``tests/sync/test_elector_status_batches.py``: on a store
that declares ``Capability.REPORT_MANY`` the reports that fall due together go
out in one ``report_members`` call, in a task of the status group; a store
without it gets each elector's own ``report_member``. On a FakeClock; ``GUARD``
real seconds only bound a broken build.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from mongoelector.aio import AsyncLeaderElector, status
from mongoelector.aio import elector as elector_module
from mongoelector.backends import Capability, LeaseRequest, MemberRecord, MemoryBackend
from mongoelector.backends.async_protocol import InlineBackend
from mongoelector.errors import BackendUnavailable
from mongoelector.monitoring import EventListener, StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.aio.test_elector_batches import waiting

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renewals every 2 s, a status report due every 5 s (ttl / 3)
STATUS_INTERVAL = TTL / 3
WINDOWS = 4


class StatusStore(MemoryBackend):
    """A MemoryBackend that counts its status calls and can fail them (``down``)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: Counter[str] = Counter()
        self.down = False

    def report_member(self, member: MemberRecord) -> None:
        self.calls["report_member"] += 1
        if self.down:
            raise BackendUnavailable("report_member: store unreachable")
        super().report_member(member)

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        self.calls["report_members"] += 1
        if self.down:
            raise BackendUnavailable("report_members: store unreachable")
        super().report_members(members)

    def status_calls(self) -> int:
        return self.calls["report_member"] + self.calls["report_members"]


class OneByOneStore(StatusStore):
    capabilities = MemoryBackend.capabilities - {Capability.REPORT_MANY}


class Errors(EventListener):
    def __init__(self) -> None:
        self.errors: list[StoreErrorEvent] = []

    def store_error(self, event: StoreErrorEvent) -> None:
        self.errors.append(event)


def sending() -> bool:
    """Whether a status group's call is still running."""
    return any(group._calls for group in status.groups(asyncio.get_running_loop()))


async def idle(electors: list[AsyncLeaderElector]) -> None:
    """Let the loop tasks and the status calls run until every loop waits for a time still
    ahead and no status call runs."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD
    while not (waiting(electors) and not sending()):
        assert loop.time() < give_up, "the loops never settled"
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, electors: list[AsyncLeaderElector]) -> None:
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await idle(electors)


async def start(n: int, store: Any, clock: FakeClock, **options: Any) -> list[AsyncLeaderElector]:
    """``n`` started electors on ``n // 2`` keys (half lead, half follow), in four groups."""
    keys = max(1, n // 2)
    electors = []
    for index in range(n):
        made = AsyncLeaderElector(f"tenant-{index % keys}", store, ttl=TTL, clock=clock, **options)
        await made.start()
        electors.append(made)
        if n > 1 and index % max(1, n // 4) == 0:
            await idle(electors)
            clock.advance(0.4)
    await idle(electors)
    assert sum(each.is_leader for each in electors) == keys
    return electors


async def status_calls_per_window(
    store: StatusStore, clock: FakeClock, electors: list[AsyncLeaderElector]
) -> list[int]:
    await advance(clock, 2 * STATUS_INTERVAL, electors)  # the reports line up
    counts = []
    for _ in range(WINDOWS):
        before = store.status_calls()
        await advance(clock, STATUS_INTERVAL, electors)
        counts.append(store.status_calls() - before)
    return counts


async def stop_all(electors: list[AsyncLeaderElector]) -> None:
    for each in electors:
        await each.stop()
    assert status.groups(asyncio.get_running_loop()) == []  # the last one out


def listed(store: MemoryBackend, electors: list[AsyncLeaderElector]) -> set[str]:
    return {m.uuid for key in {e.key for e in electors} for m in store.members(key)}


@pytest.mark.parametrize("n", [10, 1000])
async def test_n_started_electors_send_at_most_one_status_call_per_status_interval(
    n: int, clock: FakeClock
) -> None:
    store = StatusStore(clock)
    electors = await start(n, store, clock)
    try:
        counts = await status_calls_per_window(store, clock, electors)
        assert all(count <= 1 for count in counts), counts
        assert sum(counts) >= WINDOWS - 1
        assert store.calls["report_members"] >= WINDOWS - 1  # (the first reports at start
        # go one by one: each start() awaits its elector's first poll)
        assert listed(store, electors) == {each.uuid for each in electors}
    finally:
        await stop_all(electors)
    shown = {
        m.uuid: m.elector_running for key in {e.key for e in electors} for m in store.members(key)
    }
    assert not any(shown.values())  # each stop's own last report landed last


async def test_a_store_without_report_many_gets_each_electors_own_report(
    clock: FakeClock,
) -> None:
    store = OneByOneStore(clock)
    electors = await start(10, store, clock)
    try:
        counts = await status_calls_per_window(store, clock, electors)
        assert store.calls["report_members"] == 0
        assert sum(counts) >= 10 * (WINDOWS - 1)
        assert listed(store, electors) == {each.uuid for each in electors}
    finally:
        await stop_all(electors)


async def test_with_status_batching_turned_off_the_count_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(elector_module, "reports_in_batches", lambda backend: False)
    store = StatusStore(clock)
    electors = await start(10, store, clock)
    try:
        counts = await status_calls_per_window(store, clock, electors)
        assert not all(count <= 1 for count in counts), counts  # the bound above fails
    finally:
        await stop_all(electors)


async def test_a_failed_batch_is_a_failed_report_of_each_elector_and_the_next_poll_retries(
    clock: FakeClock,
) -> None:
    store = StatusStore(clock)
    errors = Errors()
    electors = await start(10, store, clock, event_listeners=[errors])
    try:
        await advance(clock, 2 * STATUS_INTERVAL, electors)
        store.down = True
        await advance(clock, STATUS_INTERVAL + 1, electors)
        failed = Counter(e.owner for e in errors.errors if e.operation == "status report")
        assert set(failed) == {each.uuid for each in electors}
        calls_while_down = store.status_calls()
        store.down = False
        stamped = {m.uuid: m.timestamp for e in electors for m in store.members(e.key)}
        await advance(clock, 2, electors)  # the next polls retry, in one batch
        assert store.status_calls() - calls_while_down <= 2
        after = {m.uuid: m.timestamp for e in electors for m in store.members(e.key)}
        assert set(after) == {each.uuid for each in electors}
        assert all(after[uuid] != stamped.get(uuid) for uuid in after)
    finally:
        await stop_all(electors)


async def test_with_the_batcher_mutated_to_send_one_call_per_member_the_count_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    send = status.AsyncStatusGroup._report

    async def one_call_each(self: status.AsyncStatusGroup, batch: list[Any]) -> None:
        for member in batch:
            await send(self, [member])

    monkeypatch.setattr(status.AsyncStatusGroup, "_report", one_call_each)
    store = StatusStore(clock)
    electors = await start(10, store, clock)
    try:
        counts = await status_calls_per_window(store, clock, electors)
        assert not all(count <= 1 for count in counts), counts  # the bound above fails
    finally:
        await stop_all(electors)


class HangingStore(InlineBackend):
    """``StatusStore`` seen by asyncio, whose ``report_members`` waits (suspended, the event
    loop free) for ``go`` once ``hang`` is set."""

    def __init__(self, store: StatusStore) -> None:
        super().__init__(store)
        self.store = store
        self.hang = False
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def report_members(self, members: Sequence[MemberRecord]) -> None:
        if self.hang:
            self.entered.set()
            await asyncio.wait_for(self.go.wait(), 4 * GUARD)
        await super().report_members(members)


async def hung_batch_then_stop(
    clock: FakeClock,
) -> tuple[HangingStore, list[AsyncLeaderElector], asyncio.Task[None]]:
    """Ten started electors, a batch of their reports hanging in the store, and ``stop()``
    of ``electors[3]`` begun in a task meanwhile; the store, the electors and that task."""
    store = HangingStore(StatusStore(clock))
    electors = await start(10, store, clock)
    await advance(clock, 2 * STATUS_INTERVAL, electors)
    store.hang = True
    clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
    await asyncio.wait_for(store.entered.wait(), GUARD)
    store.hang = False
    stopping = asyncio.get_running_loop().create_task(electors[3].stop())
    for _ in range(20):  # a head start: stop() now waits for the batch (not an assertion)
        await asyncio.sleep(0)
    return store, electors, stopping


def running_shown(store: HangingStore, elector: AsyncLeaderElector) -> bool:
    shown = {m.uuid: m for m in store.store.members(elector.key)}
    return shown[elector.uuid].elector_running


async def test_a_stop_while_a_batch_is_in_flight_lands_its_last_report_after_the_batch(
    clock: FakeClock,
) -> None:
    """stop() during a batch holding the elector's report waits for that batch: the batch's
    ``elector_running=True`` cannot land after stop()'s ``elector_running=False``."""
    store, electors, stopping = await hung_batch_then_stop(clock)
    try:
        assert not stopping.done()  # waiting for the batch
        store.go.set()
        await asyncio.wait_for(stopping, GUARD)
        await idle(electors)
        assert running_shown(store, electors[3]) is False
    finally:
        store.go.set()
        await stop_all(electors)


async def test_with_stop_mutated_not_to_wait_for_the_batch_the_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a last report that does not wait for the call in
    flight is overwritten by that call's ``elector_running=True``."""
    send = AsyncLeaderElector._send_status

    async def not_waiting(self: AsyncLeaderElector, *, running: bool) -> None:
        if not running:
            self._status_flight = None  # as if no call were sending its report
        await send(self, running=running)

    monkeypatch.setattr(AsyncLeaderElector, "_send_status", not_waiting)
    store, electors, stopping = await hung_batch_then_stop(clock)
    try:
        await asyncio.wait_for(stopping, GUARD)  # it does not wait for the batch now
        store.go.set()
        await idle(electors)
        assert running_shown(store, electors[3]) is True  # the check above fails
    finally:
        store.go.set()
        await stop_all(electors)


async def test_a_leadership_change_during_a_batch_is_reported_when_the_batch_lands(
    clock: FakeClock,
) -> None:
    """A leader whose poll steps it down while a call carries its ``is_leader=True`` report
    has its new report sent as that call lands, not a poll later."""
    store = HangingStore(StatusStore(clock))
    electors = await start(10, store, clock)
    try:
        await advance(clock, 2 * STATUS_INTERVAL, electors)
        leader = next(each for each in electors if each.is_leader)
        store.hang = True
        clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
        await asyncio.wait_for(store.entered.wait(), GUARD)
        store.hang = False
        request = LeaseRequest(key=leader.key, owner="someone-else", ttl=TTL)
        assert store.store.compare_and_set(request, force=True).acquired
        clock.advance(2.0)  # its next renewal is refused: it steps down
        give_up = asyncio.get_running_loop().time() + GUARD
        while leader.is_leader or not waiting([leader]):
            assert asyncio.get_running_loop().time() < give_up
            await asyncio.sleep(0)
        store.go.set()
        await idle(electors)
        shown = {m.uuid: m for m in store.store.members(leader.key)}
        assert shown[leader.uuid].is_leader is False
    finally:
        store.go.set()
        await stop_all(electors)


class RenewCountingStore(StatusStore):
    """A StatusStore that counts its ``renew_many`` calls (the leaders' batched renewals)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.renewals = 0

    def renew_many(self, items: Sequence[Any]) -> list[Any]:
        self.renewals += 1
        return super().renew_many(items)


async def caught_up(electors: list[AsyncLeaderElector], *, turns: int = 2000) -> bool:
    """Whether, within ``turns`` turns of the event loop, every loop waits for a time still
    ahead (a status call may still run: a hung one does). A bound, not a timing."""
    for _ in range(turns):
        if waiting(electors):
            return True
        await asyncio.sleep(0)
    return False


async def eventually(check: Any, *, turns: int = 2000) -> bool:
    """Whether ``check()`` holds within ``turns`` turns of the event loop."""
    for _ in range(turns):
        if check():
            return True
        await asyncio.sleep(0)
    return bool(check())


def lease_freed(store: HangingStore, elector: AsyncLeaderElector) -> bool:
    """Whether the store's record of ``elector``'s key is no longer its lease."""
    record = store.store.get(elector.key)
    return record is None or record.owner != elector.uuid


class Losses:
    """The ``on_leader_loss`` calls of each elector (by index)."""

    def __init__(self) -> None:
        self.lost: Counter[int] = Counter()

    def of(self, index: int) -> Any:
        return lambda: self.lost.update([index])


async def start_hung(
    clock: FakeClock,
) -> tuple[HangingStore, list[AsyncLeaderElector], Losses]:
    """Ten started electors (``on_leader_loss`` counted) whose reports are lined up, and the
    next batch of their reports hanging in the store; the store, electors and losses."""
    store = HangingStore(RenewCountingStore(clock))
    losses = Losses()
    electors = []
    for index in range(10):
        made = AsyncLeaderElector(
            f"tenant-{index % 5}", store, ttl=TTL, clock=clock, on_leader_loss=losses.of(index)
        )
        await made.start()
        electors.append(made)
        if index % 2 == 0:
            await idle(electors)
            clock.advance(0.4)
    await idle(electors)
    assert sum(each.is_leader for each in electors) == 5
    await advance(clock, 2 * STATUS_INTERVAL, electors)  # the reports line up
    store.hang = True
    clock.advance(STATUS_INTERVAL + 1)  # the next batch of reports falls due, and hangs
    await asyncio.wait_for(store.entered.wait(), GUARD)
    return store, electors, losses


async def nothing_waits_for_a_hung_batch(clock: FakeClock) -> bool:
    """Whether, while a batch of the reports of ten started electors hangs in the store,
    every leader renews 12 s on (past its renew deadline, one ``renew_many`` at least in
    every 3 s), every follower polls, and ``stop()`` of a leader whose report is in that
    batch fires its ``on_leader_loss`` and frees its lease (its last report still waits
    for the batch); then the batch is let go."""
    store, electors, losses = await start_hung(clock)
    counting = store.store
    assert isinstance(counting, RenewCountingStore)
    leaders = [each for each in electors if each.is_leader]
    followers = [each for each in electors if not each.is_leader]
    went_on = True
    stopping: asyncio.Task[None] | None = None
    try:
        polled = {each.uuid: each.node_status["last_poll"] for each in followers}
        renewals = counting.renewals
        for step in range(1, 13):  # 12 s, 1 s at a time: past every leader's renew deadline
            clock.advance(1.0)
            went_on = await caught_up(electors) and went_on
            if step % 3 == 0:
                went_on = went_on and counting.renewals > renewals
                renewals = counting.renewals
        went_on = went_on and all(each.is_leader for each in leaders)
        went_on = went_on and all(
            each.node_status["last_poll"] != polled[each.uuid] for each in followers
        )
        stopped = leaders[0]
        index = electors.index(stopped)
        stopping = asyncio.get_running_loop().create_task(stopped.stop())
        went_on = await eventually(lambda: lease_freed(store, stopped)) and went_on
        went_on = went_on and losses.lost[index] == 1
        went_on = went_on and not stopping.done()  # its last report waits for the batch
    finally:
        store.go.set()
        if stopping is not None:
            await asyncio.wait_for(stopping, GUARD)
        await stop_all(electors)
    assert running_shown(store, electors[electors.index(leaders[0])]) is False
    return went_on


async def test_a_hung_status_batch_delays_no_renewal_no_follower_poll_and_no_stop(
    clock: FakeClock,
) -> None:
    """Status is informational: while a batch of reports hangs in the store, the leaders
    keep renewing, the followers keep polling, and a ``stop()`` steps down and frees the
    lease at once (only its last report waits, to land after the batch)."""
    assert await nothing_waits_for_a_hung_batch(clock)


async def test_with_the_poll_mutated_to_await_its_status_batch_the_hung_batch_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the one above: a loop whose poll waits for the status calls of its
    group (the batch awaited on the renewal path) stalls while one hangs."""
    poll = AsyncLeaderElector._poll

    async def awaiting_the_batch(self: AsyncLeaderElector, *args: Any) -> None:
        await poll(self, *args)
        for group in status.groups(asyncio.get_running_loop()):
            if group._calls:
                await asyncio.wait(set(group._calls))

    monkeypatch.setattr(AsyncLeaderElector, "_poll", awaiting_the_batch)
    assert not await nothing_waits_for_a_hung_batch(clock)


async def releasing_after_the_batch(self: AsyncLeaderElector) -> None:
    """A mutation: the lease freed only once the status call holding this node's report
    has ended (the release waits for the batch)."""
    flight = self._status_flight
    if flight is not None and not flight.done():
        await asyncio.wait({flight})
    await _send_releases(self)


_send_releases = AsyncLeaderElector._send_releases


async def test_with_the_release_mutated_to_wait_for_the_batch_the_hung_batch_check_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the stop() part above: a stop whose release waits for the batch
    (as its last report does) leaves the lease held while the batch hangs."""
    monkeypatch.setattr(AsyncLeaderElector, "_send_releases", releasing_after_the_batch)
    assert not await nothing_waits_for_a_hung_batch(clock)


async def cancelled_while_in_a_batch(clock: FakeClock, *, cancel_stop: bool) -> bool:
    """Whether a leader whose report is in a hung batch, its ``stop()`` cancelled while
    that waits for the batch (``cancel_stop``) or its loop's task cancelled, steps down
    for good at once: ``on_leader_loss`` fired, its lease freed, its loop ended (or ending:
    a cancelled task's last report still waits for the batch), no longer running; then the
    batch is let go, and every other elector's report still lands."""
    store, electors, losses = await start_hung(clock)
    leader = next(each for each in electors if each.is_leader)
    index = electors.index(leader)
    loop = leader._loop
    assert loop is not None and loop.task is not None
    stepped_down = True
    cancelled: asyncio.Task[Any] | None = None
    try:
        if cancel_stop:
            cancelled = asyncio.get_running_loop().create_task(leader.stop())
            for _ in range(20):  # a head start: stop() now waits for the batch
                await asyncio.sleep(0)
        else:
            cancelled = loop.task
        cancelled.cancel()
        stepped_down = await eventually(lambda: lease_freed(store, leader)) and stepped_down
        stepped_down = stepped_down and losses.lost[index] == 1 and not leader.running
        stepped_down = stepped_down and not leader.is_leader
    finally:
        store.go.set()
        if cancelled is not None:
            await asyncio.wait({cancelled}, timeout=GUARD)
            assert cancelled.done()
        await idle(electors)
    others = [each for each in electors if each is not leader]
    try:
        assert await eventually(lambda: loop.done)
        assert all(running_shown(store, each) for each in others)
    finally:
        await stop_all(electors)
    return stepped_down


async def test_a_stop_cancelled_while_its_report_is_in_a_batch_has_freed_the_lease(
    clock: FakeClock,
) -> None:
    """``stop()`` cancelled while its last report waits for the hung batch: it has stepped
    down and freed the lease already (it once waited for the batch first: cancelled, the
    lease stayed held until its ttl ran out)."""
    assert await cancelled_while_in_a_batch(clock, cancel_stop=True)


async def test_an_elector_task_cancelled_while_its_report_is_in_a_batch_steps_down_at_once(
    clock: FakeClock,
) -> None:
    """The loop's task cancelled while a batch holds its report: it steps down and frees the
    lease at once (it once waited for the hung batch first), its last report after the
    batch."""
    assert await cancelled_while_in_a_batch(clock, cancel_stop=False)


@pytest.mark.parametrize("cancel_stop", [True, False])
async def test_with_the_release_mutated_to_wait_for_the_batch_the_cancel_checks_fail(
    cancel_stop: bool, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the two above."""
    monkeypatch.setattr(AsyncLeaderElector, "_send_releases", releasing_after_the_batch)
    assert not await cancelled_while_in_a_batch(clock, cancel_stop=cancel_stop)


async def first_report_calls(clock: FakeClock, *, together: bool, n: int = 10) -> StatusStore:
    """``n`` electors on ``n // 2`` keys started ``together`` (``asyncio.gather`` of their
    ``start()``) or one after another, settled and stopped; the store (its status calls
    counted before the stops, in ``calls["at start"]``)."""
    store = StatusStore(clock)
    electors = [
        AsyncLeaderElector(f"tenant-{index % (n // 2)}", store, ttl=TTL, clock=clock)
        for index in range(n)
    ]
    try:
        if together:
            await asyncio.gather(*(each.start() for each in electors))
        else:
            for each in electors:
                await each.start()
        await idle(electors)
        store.calls["at start"] = store.status_calls()
        leaders = {m.uuid for e in electors for m in store.members(e.key) if m.is_leader}
        assert leaders == {each.uuid for each in electors if each.is_leader}
        assert len(leaders) == n // 2
        assert listed(store, electors) == {each.uuid for each in electors}
    finally:
        await stop_all(electors)
    return store


async def test_electors_started_together_send_their_first_reports_in_one_call(
    clock: FakeClock,
) -> None:
    """Started together, the electors' first reports go out in one ``report_members`` call,
    each made after its elector's first poll (it says whether that poll won): as the sync
    driver's, whose ``start()`` returns before the first poll."""
    store = await first_report_calls(clock, together=True)
    assert store.calls["at start"] == 1
    assert store.calls["report_members"] == 1  # (the stops' last reports go one by one)


async def test_electors_started_one_after_another_send_a_first_report_each(
    clock: FakeClock,
) -> None:
    """``await start()`` returns after the elector's first poll, which has handed its report
    to its status group; the next elector starts after that report went out, so each sends
    its own (they line up into one call per status interval afterwards: the counts above)."""
    store = await first_report_calls(clock, together=False)
    assert store.calls["at start"] == 10


async def test_with_each_report_sent_alone_the_started_together_count_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the started-together count: a group that takes no other member's
    report into a trigger's call (a batch of one) makes one call per elector at start."""
    claim = status.claim_reports
    monkeypatch.setattr(
        status, "claim_reports", lambda trigger, members, now: claim(trigger, [], now)
    )
    store = await first_report_calls(clock, together=True)
    assert store.calls["at start"] == 10  # the check above fails
