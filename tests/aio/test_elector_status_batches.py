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
    send = status.AsyncStatusGroup._send

    async def one_call_each(self: status.AsyncStatusGroup, batch: list[Any]) -> None:
        for member in batch:
            await send(self, [member])

    monkeypatch.setattr(status.AsyncStatusGroup, "_send", one_call_each)
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
