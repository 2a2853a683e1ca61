"""AsyncLeaderElectors whose batched renewal is in flight: stop() and cancellation.

A batch's ``renew_many`` is held in flight (``tests.aio.doubles.GatedBackend`` with
the batch call); everything is counted on a FakeClock, ``GUARD`` real seconds only
bound a broken build.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence

from mongoelector.aio import AsyncLeaderElector
from mongoelector.aio import batches as aio_batches
from mongoelector.backends import Capability, LeaseRecord, MemoryBackend
from mongoelector.backends.protocol import RenewItem
from mongoelector.testing import FakeClock
from tests.aio.doubles import GatedBackend
from tests.aio.test_elector_batches import TTL, idle

INTERVAL = 2.0


class GatedBatches(GatedBackend):
    """A GatedBackend that renews in batches: ``renew_many`` can be held in flight too."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.inner.capabilities - {Capability.GET_MANY}

    async def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        result = await self._call("renew_many", lambda: self.inner.renew_many(items))
        assert isinstance(result, list)
        return result


async def three_leaders_in_flight(
    clock: FakeClock, *, apply_first: bool = True
) -> tuple[GatedBatches, list[AsyncLeaderElector], Counter[int]]:
    """Three leaders of their own keys, started at t=0, whose batch at t=2 is in flight."""
    store = GatedBatches(MemoryBackend(clock))
    lost = Counter[int]()
    electors = [
        AsyncLeaderElector(
            f"t-{i}",
            store,
            ttl=TTL,
            clock=clock,
            report_status=False,
            on_leader_loss=lambda i=i: lost.update([i]),
        )
        for i in range(3)
    ]
    for each in electors:
        await each.start()
    await idle(electors)
    assert all(each.is_leader for each in electors)
    store.held = {"renew_many"}
    store.apply_first = apply_first
    clock.advance(INTERVAL)
    await asyncio.wait_for(store.entered.wait(), 30)
    for _ in range(10):
        await asyncio.sleep(0)
    return store, electors, lost


class TestStopWhileTheBatchIsInFlight:
    async def test_stop_waits_for_the_renewal_in_flight_and_its_lease_ends_released(
        self, clock: FakeClock
    ) -> None:
        store, electors, lost = await three_leaders_in_flight(clock, apply_first=False)
        # the trigger's, and the two that joined it
        stopping = [asyncio.create_task(each.stop()) for each in electors]
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(task.done() for task in stopping)  # their renewals are in flight
        store.gate.set()  # the renewals arrive now
        await asyncio.wait_for(asyncio.gather(*stopping), 30)
        for index in range(3):
            record = store.inner.get(f"t-{index}")
            assert record is None or record.owner is None  # released, not revived
        assert not any(each.is_leader for each in electors)
        assert lost == Counter({0: 1, 1: 1, 2: 1})
        assert aio_batches.groups(asyncio.get_running_loop()) == []


class TestCancelledWhileTheBatchIsInFlight:
    async def test_a_cancelled_elector_steps_down_and_the_others_keep_their_renewals(
        self, clock: FakeClock
    ) -> None:
        store, electors, lost = await three_leaders_in_flight(clock)
        for index in (0, 1):  # the trigger's task, and a joiner's
            task = electors[index]._task
            assert task is not None
            task.cancel()
        for _ in range(20):
            await asyncio.sleep(0)
        store.gate.set()
        await idle(electors)
        assert electors[2].is_leader
        assert not electors[0].is_leader and not electors[1].is_leader
        before = store.calls["renew"] + store.calls["renew_many"]
        clock.advance(INTERVAL)
        await idle(electors)
        assert electors[2].is_leader
        assert store.calls["renew"] + store.calls["renew_many"] == before + 1
        assert lost == Counter({0: 1, 1: 1})  # the cancelled ones stepped down, once each
        for index in (0, 1):
            record = store.inner.get(f"t-{index}")
            assert record is not None and record.owner is None  # and freed their leases
        await electors[2].stop()
        assert aio_batches.groups(asyncio.get_running_loop()) == []


class TestStartCancelledWhileFreeingTheOldLease:
    async def test_it_leaves_no_loop_and_no_group_member_behind(self, clock: FakeClock) -> None:
        """``start()`` from ``on_leader_loss`` first frees the lease the stop is about to
        free; cancelled there (the stop's task cancelled), it leaves no loop behind: not
        running, no member in its store's renew group, and a later stop() returns."""
        store = GatedBatches(MemoryBackend(clock))
        restart: list[AsyncLeaderElector] = []

        async def on_leader_loss() -> None:
            if restart:
                await restart.pop().start()

        elector = AsyncLeaderElector(
            "t", store, ttl=TTL, clock=clock, report_status=False, on_leader_loss=on_leader_loss
        )
        await elector.start()
        await idle([elector])
        assert elector.is_leader
        restart.append(elector)
        store.held = {"release"}
        stopping = asyncio.create_task(elector.stop())
        await asyncio.wait_for(store.entered.wait(), 30)  # start() sends the release
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        assert not elector.running
        assert aio_batches.groups(asyncio.get_running_loop()) == []
        store.gate.set()
        await asyncio.wait_for(elector.stop(), 30)
        await elector.start()  # and it starts anew
        await idle([elector])
        assert elector.running and elector.is_leader
        await elector.stop()
        assert aio_batches.groups(asyncio.get_running_loop()) == []
