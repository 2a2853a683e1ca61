"""``AsyncLock``s of one store renew together: one ``renew_many`` call per renew interval.

The asyncio twin of ``tests/sync/test_renew_batches.py``, on a FakeClock: time
moves only when a test advances it, and :func:`idle` lets every renewer task
react (a few loop passes; ``GUARD`` real seconds only bound a broken build).
The MongoDB counts on the wire are in ``test_async_mongo_wire_renew_batches``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from mongoelector.aio import AsyncLock
from mongoelector.aio import batches as aio_batches
from mongoelector.backends import Capability, LeaseRecord, MemoryBackend, RenewItem
from mongoelector.backends.async_protocol import InlineBackend
from mongoelector.core import batching
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.monitoring import EventListener, RenewedEvent, StoreErrorEvent
from mongoelector.testing import FakeClock
from tests.aio.doubles import GatedBackend

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0


class BatchStore(MemoryBackend):
    """A MemoryBackend (used inline by AsyncLock) that counts renew calls; ``renew_many``
    can fail (``down``: ``BackendUnavailable``; ``lost_reply``: renews, then
    ``AmbiguousOutcome``)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: Counter[str] = Counter()
        self.batches: list[list[str]] = []
        self.down = False
        self.lost_reply = False

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self.calls["renew"] += 1
        return super().renew(key, owner, token, ttl)

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        self.calls["renew_many"] += 1
        self.batches.append([item.key for item in items])
        if self.down:
            raise BackendUnavailable("renew_many: store unreachable")
        records = super().renew_many(items)
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


def renewing(locks: list[AsyncLock]) -> bool:
    """True when every lock's renewer waits for a time still ahead, or has ended."""
    for lock in locks:
        renewer = lock._renewer
        if renewer is None or renewer.task.done():
            continue
        until = renewer._sleeping_until
        if until is None or until <= lock.clock.monotonic() or renewer._summoned is not None:
            return False
    return True


async def idle(locks: list[AsyncLock]) -> None:
    """Let the renewer tasks run until each waits for a time still ahead (or has ended)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD
    while not renewing(locks):
        assert loop.time() < give_up, "the renewers never settled"
        await asyncio.sleep(0)
    for _ in range(5):  # and the callbacks they started
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, locks: list[AsyncLock]) -> None:
    """Move the clock one second at a time; after each, let every renewer catch up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await idle(locks)


async def release_all(locks: list[AsyncLock]) -> None:
    for lock in locks:
        await lock.release()
    await idle(locks)
    assert (
        aio_batches.groups(asyncio.get_running_loop()) == []
    )  # the last one out removes the store's group


async def calls_over_intervals(
    n: int, store: Any, clock: FakeClock, *, intervals: int = 4
) -> tuple[list[int], list[AsyncLock]]:
    """Acquire ``n`` auto-renewed locks in four groups 0.4 s apart; count the store calls
    of each of ``intervals`` renew intervals after the first (in which they line up)."""
    locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)]
    for index, lock in enumerate(locks):
        await lock.acquire()
        if n > 1 and index % max(1, n // 4) == 0:
            await idle(locks[: index + 1])
            clock.advance(0.4)
    await idle(locks)
    await advance(clock, INTERVAL, locks)
    counts = []
    for _ in range(intervals):
        before = store.store_calls
        await advance(clock, INTERVAL, locks)
        counts.append(store.store_calls - before)
    assert all(lock.token is not None for lock in locks)
    return counts, locks


class TestOneCallPerInterval:
    @pytest.mark.parametrize("n", [1, 10, 1000])
    async def test_n_locks_cost_one_store_call_per_renew_interval(
        self, n: int, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        counts, locks = await calls_over_intervals(n, store, clock)
        assert counts == [1] * 4
        if n == 1:
            assert store.calls["renew_many"] == 0  # nobody joins: the store's one-key call
        else:
            assert sorted(store.batches[-1]) == sorted(lock.key for lock in locks)
        await release_all(locks)

    async def test_with_the_decision_mutated_to_never_batch_the_count_fails(
        self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(batching, "renew_together", lambda now, trigger, candidates, **kw: [[]])
        store = BatchStore(clock)
        counts, locks = await calls_over_intervals(10, store, clock)
        assert counts == [10] * 4  # the bound of the test above fails
        assert store.calls["renew_many"] == 0
        await release_all(locks)

    async def test_each_lock_wraps_the_store_anew_and_still_batches(self, clock: FakeClock) -> None:
        store = BatchStore(clock)
        locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in "ab"]
        assert locks[0]._backend is not locks[1]._backend  # an InlineBackend each
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        await advance(clock, INTERVAL, locks)
        assert store.calls == Counter({"renew_many": 1})
        await release_all(locks)

    @pytest.mark.parametrize("first", ["plain", "own"])
    async def test_an_adapter_of_the_users_own_class_is_not_merged_with_the_plain_ones(
        self, clock: FakeClock, first: str
    ) -> None:
        """Only the plain InlineBackends that AsyncLock makes of one sync store share its
        batches: an InlineBackend subclass passed in (here one whose renewals fail) is a
        store of its own, whichever lock's renewer joined first."""

        class Unreachable(InlineBackend):
            async def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
                raise BackendUnavailable("renew: unreachable")

            async def renew_many(self, items: Sequence[RenewItem]) -> Any:
                raise BackendUnavailable("renew_many: unreachable")

        store = BatchStore(clock)
        heard = {"plain": Events(), "own": Events()}
        backends = {"plain": store, "own": Unreachable(store)}
        order = [first, "own" if first == "plain" else "plain"]
        locks = {
            name: AsyncLock(
                name,
                backends[name],
                ttl=TTL,
                clock=clock,
                auto_renew=True,
                event_listeners=[heard[name]],
            )
            for name in order
        }
        for name in order:
            await locks[name].acquire()
        await idle(list(locks.values()))
        await advance(clock, INTERVAL, list(locks.values()))
        assert [len(heard["plain"].renewals), len(heard["plain"].errors)] == [1, 0]
        assert [len(heard["own"].renewals), len(heard["own"].errors)] == [0, 1]
        await release_all(list(locks.values()))

    async def test_a_store_without_renew_many_is_renewed_key_by_key(self, clock: FakeClock) -> None:
        class Undeclared(BatchStore):
            capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

        store = Undeclared(clock)
        assert Capability.RENEW_MANY not in GatedBackend(MemoryBackend(clock)).capabilities
        locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in "ab"]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        await advance(clock, INTERVAL, locks)
        assert store.calls == Counter({"renew": 2})
        await release_all(locks)


class TestEachOutcomeIsItsLocksOwn:
    async def test_a_refused_item_makes_exactly_that_lock_lost(self, clock: FakeClock) -> None:
        store = BatchStore(clock)
        lost = Counter[str]()
        locks = [
            AsyncLock(
                f"job-{i}",
                store,
                ttl=TTL,
                clock=clock,
                auto_renew=True,
                on_lost=lambda i=i: lost.update([f"job-{i}"]),
            )
            for i in range(10)
        ]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        store.delete("job-3")
        await advance(clock, INTERVAL, locks)
        assert store.calls == Counter({"renew_many": 1})
        assert lost == Counter({"job-3": 1})
        assert locks[3].lost.is_set() and locks[3].token is None
        assert all(lock.token is not None for i, lock in enumerate(locks) if i != 3)
        await release_all(locks)

    @pytest.mark.parametrize("failure", ["down", "lost_reply"])
    async def test_a_failed_batch_is_a_failed_renewal_of_each_lock(
        self, clock: FakeClock, failure: str
    ) -> None:
        store = BatchStore(clock)
        listeners = [Events() for _ in range(5)]
        locks = [
            AsyncLock(
                f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True, event_listeners=[each]
            )
            for i, each in enumerate(listeners)
        ]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        setattr(store, failure, True)
        await advance(clock, INTERVAL, locks)
        ambiguous = failure == "lost_reply"
        kind = AmbiguousOutcome if ambiguous else BackendUnavailable
        for listener in listeners:
            assert [(e.operation, e.ambiguous) for e in listener.errors] == [("renew", ambiguous)]
            assert isinstance(listener.errors[0].error, kind)
        setattr(store, failure, False)
        await advance(clock, INTERVAL, locks)  # the retries go out together, and work
        assert store.calls == Counter({"renew_many": 2})
        assert all(len(listener.renewals) == 1 for listener in listeners)
        assert all(lock.token is not None for lock in locks)
        await release_all(locks)

    async def test_a_store_down_for_good_loses_every_lock_at_its_deadline(
        self, clock: FakeClock
    ) -> None:
        store = BatchStore(clock)
        locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in "abc"]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        store.down = True
        await advance(clock, 9, locks)
        assert not any(lock.lost.is_set() for lock in locks)
        await advance(clock, 1, locks)  # t=10: the renew deadline
        assert all(lock.lost.is_set() and lock.token is None for lock in locks)
        await release_all(locks)

    @pytest.mark.parametrize("released", [0, 1])
    async def test_a_lock_released_before_its_batchs_call_starts_is_not_in_the_call(
        self, clock: FakeClock, released: int
    ) -> None:
        """A release that begins after the batch was chosen but before its call went out (a
        task woken at the same time as the renewers): the released holding, trigger or
        joiner, is not renewed; the other is, and the release returns."""
        store = BatchStore(clock)
        locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in "ab"]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        woken = asyncio.Event()

        async def release_when_due() -> bool:
            await clock.async_wait_until(INTERVAL, woken)  # woken after the renewers
            return await locks[released].release()

        releasing = asyncio.create_task(release_when_due())
        for _ in range(3):
            await asyncio.sleep(0)  # it waits on the clock, behind the renewers
        clock.advance(INTERVAL)
        assert await asyncio.wait_for(releasing, GUARD)
        kept = locks[1 - released]
        await idle([kept])
        assert store.calls == Counter({"renew": 1})  # the kept lock's, alone
        assert locks[released].key not in [key for batch in store.batches for key in batch]
        assert kept.token is not None and not kept.lost.is_set()
        await release_all(locks)

    async def test_no_holding_is_renewed_once_its_deadline_passed_before_the_call_starts(
        self, clock: FakeClock
    ) -> None:
        """The clock jumps past every renew deadline after the batch was chosen but before
        its call went out (a task woken with the renewers): nothing is sent, and each lock
        is lost at its deadline, once, as a lone renewer would be."""
        store = BatchStore(clock)
        lost = Counter[str]()
        locks = [
            AsyncLock(
                f"job-{i}",
                store,
                ttl=TTL,
                clock=clock,
                auto_renew=True,
                on_lost=lambda i=i: lost.update([f"job-{i}"]),
            )
            for i in "ab"
        ]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        woken = asyncio.Event()

        async def jump_when_due() -> None:
            await clock.async_wait_until(INTERVAL, woken)  # woken after the renewers
            clock.advance(TTL)  # past every renew deadline (10 s)

        jumping = asyncio.create_task(jump_when_due())
        for _ in range(3):
            await asyncio.sleep(0)
        clock.advance(INTERVAL)
        await asyncio.wait_for(jumping, GUARD)
        await idle(locks)
        assert store.calls == Counter()  # no renewal sent after its deadline
        assert lost == Counter({"job-a": 1, "job-b": 1})
        assert all(lock.lost.is_set() and lock.token is None for lock in locks)
        await release_all(locks)

    @pytest.mark.parametrize("cancelled", [0, 1, 2])
    async def test_cancelling_one_renewer_of_a_batch_in_flight_cancels_no_other(
        self, clock: FakeClock, cancelled: int
    ) -> None:
        """Whether it triggered the batch or joined it: the call runs in a task of its own."""
        gate = asyncio.Event()

        class Slow(BatchStore):
            capabilities = MemoryBackend.capabilities

            async def renew_many(  # type: ignore[override]
                self, items: Sequence[RenewItem]
            ) -> list[LeaseRecord | None]:
                await gate.wait()
                return MemoryBackend.renew_many(self, items)

            async def server_time(self) -> Any:  # type: ignore[override]
                return MemoryBackend.server_time(self)

            async def compare_and_set(self, *args: Any, **kw: Any) -> Any:  # type: ignore[override]
                return MemoryBackend.compare_and_set(self, *args, **kw)

            async def renew(self, *args: Any) -> Any:  # type: ignore[override]
                return MemoryBackend.renew(self, *args)

            async def release(self, *args: Any, **kw: Any) -> Any:  # type: ignore[override]
                return MemoryBackend.release(self, *args, **kw)

            async def get(self, key: str) -> Any:  # type: ignore[override]
                return MemoryBackend.get(self, key)

        store = Slow(clock)
        locks = [AsyncLock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in "abc"]
        for lock in locks:
            await lock.acquire()
        await idle(locks)
        clock.advance(INTERVAL)
        for _ in range(20):
            await asyncio.sleep(0)
        assert all(lock._renewer and lock._renewer._sleeping_until is None for lock in locks)
        gone = locks[cancelled]
        assert gone._renewer is not None
        gone._renewer.task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        others = [lock for lock in locks if lock is not gone]
        await idle(others)
        assert all(lock.token is not None for lock in others)
        assert all(lock._renewer and not lock._renewer.task.done() for lock in others)
        for lock in locks:
            await lock.release()
        await asyncio.sleep(0)  # the tasks' done callbacks
        assert aio_batches.groups(asyncio.get_running_loop()) == []


class TestTheGroupsOfALoop:
    async def test_a_renewer_cancelled_before_it_ever_ran_leaves_its_group(
        self, clock: FakeClock
    ) -> None:
        """asyncio.run cancels the tasks left at its end, some before they start: their
        renewers leave the loop's group all the same."""
        lock = AsyncLock("job", BatchStore(clock), ttl=TTL, clock=clock, auto_renew=True)
        await lock.acquire()
        renewer = lock._renewer
        assert renewer is not None
        assert len(aio_batches.groups(asyncio.get_running_loop())) == 1
        renewer.task.cancel()  # before its first step
        for _ in range(3):
            await asyncio.sleep(0)
        assert renewer.task.cancelled()
        assert aio_batches.groups(asyncio.get_running_loop()) == []
        await lock.release()

    def test_the_groups_of_a_closed_loop_are_forgotten(self, clock: FakeClock) -> None:
        async def leave_one_running() -> None:
            lock = AsyncLock("job", BatchStore(clock), ttl=TTL, clock=clock, auto_renew=True)
            await lock.acquire()
            await asyncio.sleep(0)

        before = len(aio_batches.groups())
        loop = asyncio.new_event_loop()
        loop.run_until_complete(leave_one_running())
        loop.close()  # its renewer never ended ("Task was destroyed but it is pending")
        assert len(aio_batches.groups()) == before
