"""Started ``AsyncLeaderElector``s that lead renew in their store's batches (asyncio).

The asyncio twin of ``tests/sync/test_elector_batches.py``, on a FakeClock: time
moves only when a test advances it, and :func:`idle` lets every loop task react
(a few loop passes; ``GUARD`` real seconds only bound a broken build).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.aio import batches as aio_batches
from mongoelector.aio import elector as elector_module
from mongoelector.backends import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemoryBackend,
)
from mongoelector.core.elector_machine import ElectorMachine
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.monitoring import EventListener, StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.aio.test_renew_batches import BatchStore, renewing

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0


class Errors(EventListener):
    def __init__(self) -> None:
        self.errors: list[StoreErrorEvent] = []

    def store_error(self, event: StoreErrorEvent) -> None:
        self.errors.append(event)


def waiting(electors: list[AsyncLeaderElector]) -> bool:
    """True when every elector's loop waits for a time still ahead, or has ended."""
    for each in electors:
        loop = each._loop
        if loop is None or loop.done:
            continue
        until = loop.sleeping_until
        if until is None or until <= each._clock.monotonic():
            return False
        if loop.summoned is not None or loop.read_summoned is not None:
            return False
    return True


async def idle(electors: list[AsyncLeaderElector], locks: list[AsyncLock] = ()) -> None:  # type: ignore[assignment]
    """Let the loop tasks run until each waits for a time still ahead (or has ended)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD
    while not (waiting(electors) and renewing(list(locks))):
        assert loop.time() < give_up, "the loops never settled"
        await asyncio.sleep(0)
    for _ in range(5):  # and the callbacks they started
        await asyncio.sleep(0)


async def advance(
    clock: FakeClock, seconds: float, electors: list[AsyncLeaderElector], locks: Any = ()
) -> None:
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await idle(electors, locks)


async def start_spread(clock: FakeClock, electors: list[AsyncLeaderElector]) -> None:
    """Start ``electors`` in four groups 0.4 s apart; each wins its own key."""
    for index, each in enumerate(electors):
        await each.start()
        if len(electors) > 1 and index % max(1, len(electors) // 4) == 0:
            await idle(electors[: index + 1])
            clock.advance(0.4)
    await idle(electors)
    assert all(each.is_leader for each in electors)


async def calls_over_intervals(
    electors: list[AsyncLeaderElector], store: BatchStore, clock: FakeClock, locks: Any = ()
) -> list[int]:
    await advance(clock, INTERVAL, electors, locks)  # they line up
    counts = []
    for _ in range(4):
        before = store.store_calls
        await advance(clock, INTERVAL, electors, locks)
        counts.append(store.store_calls - before)
    return counts


async def stop_all(electors: list[AsyncLeaderElector]) -> None:
    for each in electors:
        await each.stop()
    assert aio_batches.groups(asyncio.get_running_loop()) == []  # the last one out


def electors_of(n: int, store: Any, clock: FakeClock, **options: Any) -> list[AsyncLeaderElector]:
    return [
        AsyncLeaderElector(
            f"tenant-{i}", store, ttl=TTL, clock=clock, report_status=False, **options
        )
        for i in range(n)
    ]


class TestOneCallPerInterval:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    async def test_n_leading_electors_cost_one_store_call_per_renew_interval(
        self, n: int, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        electors = electors_of(n, store, clock)
        await start_spread(clock, electors)
        counts = await calls_over_intervals(electors, store, clock)
        assert counts == [1] * 4
        assert all(each.is_leader for each in electors)
        if n == 1:
            assert store.calls["renew_many"] == 0
        else:
            assert sorted(store.batches[-1]) == sorted(f"tenant-{i}" for i in range(n))
        await stop_all(electors)

    async def test_electors_and_locks_of_one_store_renew_in_the_same_calls(
        self, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        locks = [
            AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in range(5)
        ]
        for lock in locks:
            await lock.acquire()
        electors = electors_of(5, store, clock)
        await start_spread(clock, electors)
        counts = await calls_over_intervals(electors, store, clock, locks)
        assert all(count <= 2 for count in counts), counts
        assert counts[-1] == 1
        assert sorted(store.batches[-1]) == sorted(
            [*(f"job-{i}" for i in range(5)), *(f"tenant-{i}" for i in range(5))]
        )
        for lock in locks:
            await lock.release()
        await stop_all(electors)

    @pytest.mark.parametrize(
        "mutation", ["electors never grouped", "a leader never gives its timing"]
    )
    async def test_with_batching_turned_off_for_electors_the_count_fails(
        self, mutation: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if mutation == "electors never grouped":
            monkeypatch.setattr(elector_module, "renews_in_batches", lambda backend: False)
        else:
            monkeypatch.setattr(ElectorMachine, "renew_timing", lambda self, now, *, key: None)
        store = BatchStore(clock)
        electors = electors_of(10, store, clock)
        await start_spread(clock, electors)
        counts = await calls_over_intervals(electors, store, clock)
        assert counts == [10] * 4  # the bound of the test above fails
        assert store.calls["renew_many"] == 0
        await stop_all(electors)


class TestEachOutcomeIsItsElectorsOwn:
    async def test_a_refused_renewal_steps_that_elector_down_alone_once(
        self, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        gained = Counter[int]()
        lost = Counter[int]()
        electors = [
            AsyncLeaderElector(
                f"tenant-{i}",
                store,
                ttl=TTL,
                clock=clock,
                report_status=False,
                on_leader=lambda i=i: gained.update([i]),
                on_leader_loss=lambda i=i: lost.update([i]),
            )
            for i in range(10)
        ]
        await start_spread(clock, electors)
        await advance(clock, INTERVAL, electors)  # they line up
        before = Counter(store.calls)
        store.compare_and_set(
            LeaseRequest(key="tenant-3", owner="someone-else", ttl=TTL), force=True
        )
        await advance(clock, INTERVAL, electors)
        assert store.calls - before == Counter({"renew_many": 1})
        assert lost == Counter({3: 1})
        assert [each.is_leader for each in electors] == [i != 3 for i in range(10)]
        leader = electors[3].leader
        assert leader is not None and leader.uuid == "someone-else"
        await advance(clock, 2 * INTERVAL, electors)
        assert lost == Counter({3: 1})
        assert gained == Counter({i: 1 for i in range(10)})
        await stop_all(electors)

    @pytest.mark.parametrize("failure", ["down", "lost_reply"])
    async def test_a_failed_batch_is_a_failed_renewal_of_each_elector(
        self, failure: str, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        listeners = [Errors() for _ in range(5)]
        electors = [
            AsyncLeaderElector(
                f"tenant-{i}",
                store,
                ttl=TTL,
                clock=clock,
                report_status=False,
                event_listeners=[listener],
            )
            for i, listener in enumerate(listeners)
        ]
        await start_spread(clock, electors)
        await advance(clock, INTERVAL, electors)
        setattr(store, failure, True)
        await advance(clock, INTERVAL, electors)
        error = BackendUnavailable if failure == "down" else AmbiguousOutcome
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [
                ("renew", failure == "lost_reply")
            ]
            assert isinstance(listener.errors[0].error, error)
        assert all(each.is_leader for each in electors)  # trusted until the deadline
        setattr(store, failure, False)
        await advance(clock, INTERVAL, electors)
        assert all(each.is_leader for each in electors)
        await stop_all(electors)


class TestWhichElectorsBatch:
    async def test_a_store_that_does_not_declare_renew_many_is_renewed_key_by_key(
        self, clock: FakeClock
    ) -> None:
        class Undeclared(BatchStore):
            capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

        store = Undeclared(clock)
        electors = electors_of(5, store, clock)
        await start_spread(clock, electors)
        before = Counter(store.calls)
        await advance(clock, 2 * INTERVAL, electors)
        assert store.calls - before == Counter({"renew": 10})
        await stop_all(electors)


class ReadStore(BatchStore):
    """A BatchStore that also counts reads and tries, and can fail ``get_many``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reads_down = False

    def get(self, key: str) -> LeaseRecord | None:
        self.calls["get"] += 1
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        self.calls["get_many"] += 1
        if self.reads_down:
            raise BackendUnavailable("get_many: store unreachable")
        return super().get_many(keys)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self.calls["compare_and_set"] += 1
        return super().compare_and_set(request, force=force)


async def leaders_and_followers(
    n: int, store: ReadStore, clock: FakeClock
) -> tuple[list[AsyncLeaderElector], list[AsyncLeaderElector]]:
    leaders = electors_of(n, store, clock)
    await start_spread(clock, leaders)
    followers = electors_of(n, store, clock)
    for index, each in enumerate(followers):
        await each.start()
        if n > 1 and index % max(1, n // 4) == 0:
            await idle(followers[: index + 1])
            clock.advance(0.4)
    await idle([*leaders, *followers])
    return leaders, followers


async def calls_by_name(
    electors: list[AsyncLeaderElector], store: ReadStore, clock: FakeClock
) -> list[Counter[str]]:
    await advance(clock, INTERVAL, electors)
    counted = []
    for _ in range(3):
        before = Counter(store.calls)
        await advance(clock, INTERVAL, electors)
        counted.append(Counter(store.calls) - before)
    return counted


class TestFollowersReadTogether:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    async def test_n_followers_cost_one_get_many_per_poll_window_and_no_try(
        self, n: int, clock: FakeClock
    ) -> None:
        store = ReadStore(clock)
        leaders, followers = await leaders_and_followers(n, store, clock)
        counted = await calls_by_name([*leaders, *followers], store, clock)
        if n == 1:  # nobody to read with: its own try, as before
            assert counted == [Counter({"compare_and_set": 1, "renew": 1})] * 3
        else:
            assert counted == [Counter({"get_many": 1, "renew_many": 1})] * 3
        assert all(each.is_leader for each in leaders)
        for follower, leader in zip(followers, leaders, strict=True):
            assert not follower.is_leader
            assert follower.leader is not None and follower.leader.uuid == leader.uuid
        await stop_all([*leaders, *followers])

    async def test_with_read_batching_turned_off_the_count_fails(
        self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(elector_module, "reads_in_batches", lambda backend: False)
        store = ReadStore(clock)
        leaders, followers = await leaders_and_followers(10, store, clock)
        counted = await calls_by_name([*leaders, *followers], store, clock)
        assert counted == [Counter({"compare_and_set": 10, "renew_many": 1})] * 3
        await stop_all([*leaders, *followers])

    async def test_followers_take_over_released_leases_in_the_poll_that_reads_them(
        self, clock: FakeClock
    ) -> None:
        store = ReadStore(clock)
        leaders, followers = await leaders_and_followers(10, store, clock)
        await advance(clock, INTERVAL, [*leaders, *followers])
        for each in leaders:
            await each.stop()
        before = Counter(store.calls)
        await advance(clock, INTERVAL, followers)
        assert all(each.is_leader for each in followers)
        taken = Counter(store.calls) - before
        assert taken["get_many"] == 1 and taken["compare_and_set"] == 10
        await stop_all(followers)

    async def test_followers_take_over_expired_leases(self, clock: FakeClock) -> None:
        followers = await check_expired_leases_are_taken_over(clock, ReadStore(clock))
        await stop_all(followers)

    async def test_a_follower_mutated_to_skip_the_try_of_an_expired_lease_is_caught(
        self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        judge = ElectorMachine.on_observe_result

        def skips_expired(
            self: ElectorMachine, now: float, record: LeaseRecord | None, server_now: datetime
        ) -> Any:
            if record is not None and record.expires_at is not None:
                server_now = min(server_now, record.expires_at - timedelta(seconds=1))
            return judge(self, now, record, server_now)

        monkeypatch.setattr(ElectorMachine, "on_observe_result", skips_expired)
        made: list[AsyncLeaderElector] = []
        with pytest.raises(AssertionError, match="not taken over"):
            await check_expired_leases_are_taken_over(clock, ReadStore(clock), made)
        await stop_all(made)

    async def test_a_failed_read_is_a_failed_poll_of_each_follower(self, clock: FakeClock) -> None:
        store = ReadStore(clock)
        leaders = electors_of(5, store, clock)
        await start_spread(clock, leaders)
        listeners = [Errors() for _ in range(5)]
        followers = [
            AsyncLeaderElector(
                f"tenant-{i}",
                store,
                ttl=TTL,
                clock=clock,
                report_status=False,
                event_listeners=[listener],
            )
            for i, listener in enumerate(listeners)
        ]
        for each in followers:
            await each.start()
        everyone = [*leaders, *followers]
        await advance(clock, INTERVAL, everyone)
        store.reads_down = True
        await advance(clock, INTERVAL, everyone)
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("read", False)]
        assert not any(each.is_leader for each in followers)
        store.reads_down = False
        await advance(clock, INTERVAL, everyone)
        assert all(len(listener.errors) == 1 for listener in listeners)
        await stop_all(everyone)


async def check_expired_leases_are_taken_over(
    clock: FakeClock, store: ReadStore, made: list[AsyncLeaderElector] | None = None
) -> list[AsyncLeaderElector]:
    """Leases of a crashed node are taken over by followers within a poll after they
    expire, by the store's time; the followers."""
    for i in range(5):
        store.compare_and_set(LeaseRequest(key=f"tenant-{i}", owner="crashed", ttl=TTL))
    followers = electors_of(5, store, clock)
    if made is not None:
        made.extend(followers)
    for each in followers:
        await each.start()
    await advance(clock, TTL - 1, followers)
    assert not any(each.is_leader for each in followers)
    assert store.calls["get_many"] >= 5
    await advance(clock, 1 + INTERVAL, followers)
    assert all(each.is_leader for each in followers), "expired leases not taken over"
    return followers
