"""The async elector's loop task: start, stop, failover, and waits that go through the clock."""

from __future__ import annotations

import asyncio

from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.clock import SystemClock
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for, settle
from tests.aio.doubles import GatedBackend, leaders
from tests.fakes import FlakyBackend


def loop_tasks(key: str) -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"mongoelector-{key}"]


async def test_start_returns_after_the_first_poll_and_twice_runs_one_loop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("once", backend, clock=clock)
    await node.start()
    assert node.is_leader and node.running
    await node.start()
    assert len(loop_tasks("once")) == 1
    await node.stop()
    assert not node.running and not node.is_leader
    assert loop_tasks("once") == []


async def test_started_elector_under_fake_clock_acts_only_when_time_is_advanced(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lost: list[float] = []
    node = AsyncLeaderElector(
        "fake",
        flaky,
        clock=clock,
        report_status=False,
        on_leader_loss=lambda: lost.append(clock.monotonic()),
    )
    await node.start()
    await settle()
    assert node.is_leader and clock.waiters == 1
    assert flaky.calls["renew"] == 0  # asleep until the clock reaches its next poll
    await run_for(clock, 2)
    assert flaky.calls["renew"] == 1
    flaky.mode = "down"  # the renew at t=2 was the last to succeed: trusted until t=12
    await run_for(clock, 9.999)
    assert node.is_leader and lost == []
    await run_for(clock, 0.001)
    assert not node.is_leader
    await run_for(clock, 10)
    assert lost == [12.0]  # fired once, at the renew deadline, with no store answering
    flaky.mode = "ok"
    await node.stop()


async def test_a_crashed_leader_is_replaced_within_ttl_plus_retry_period(clock: FakeClock) -> None:
    inner = MemoryBackend(clock)
    links = [FlakyBackend(inner) for _ in range(3)]
    gained: dict[int, float] = {}
    nodes: list[AsyncLeaderElector] = []
    for index, link in enumerate(links):
        nodes.append(
            AsyncLeaderElector(
                "svc",
                link,
                clock=clock,
                on_leader=lambda index=index: gained.setdefault(index, clock.monotonic()),  # type: ignore[misc]
            )
        )
        await nodes[-1].start()
    await run_for(clock, 7)
    [first] = leaders(nodes)
    crashed = nodes.index(first)
    last_renew = first.next_poll_at - first.retry_period
    links[crashed].mode = "down"  # the leader's host is cut off from the store
    await run_for(clock, 30)
    [second] = leaders(nodes)
    took_over_at = gained[nodes.index(second)]
    assert took_over_at - last_renew <= first.ttl + first.retry_period
    assert second.token == 2
    links[crashed].mode = "ok"
    for node in nodes:
        await node.stop()


async def test_stop_returns_at_once_instead_of_waiting_for_the_next_poll(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("prompt", backend, ttl=3600, clock=clock)
    await node.start()
    await settle()
    assert node.is_leader and node.next_poll_at == 480
    await node.stop()
    assert clock.monotonic() == 0  # no poll interval passed, not even in fake time
    record = backend.get("prompt")
    assert record is not None and record.owner is None


async def test_stop_with_the_real_clock_does_not_wait_for_the_poll_interval() -> None:
    backend = MemoryBackend()
    node = AsyncLeaderElector("slow-poll", backend, ttl=3600, clock=SystemClock())
    await node.start()
    assert node.is_leader
    await asyncio.wait_for(node.stop(), timeout=10)  # the interval is 480 s: a hang guard
    record = backend.get("slow-poll")
    assert record is not None and record.owner is None


async def test_stop_waits_only_for_the_in_flight_call(clock: FakeClock) -> None:
    gated = GatedBackend(MemoryBackend(clock))
    node = AsyncLeaderElector("inflight", gated, clock=clock, report_status=False)
    await node.start()
    gated.held = {"renew"}
    clock.advance(2)
    await gated.entered.wait()
    stopper = asyncio.create_task(node.stop())
    await settle()
    assert not stopper.done()  # still inside the renew call
    gated.held = set()
    gated.gate.set()
    await stopper
    assert gated.calls["release"] == 1
    assert not node.is_leader


async def test_stop_from_a_callback_ends_the_loop(backend: MemoryBackend, clock: FakeClock) -> None:
    holder: list[AsyncLeaderElector] = []

    async def on_leader() -> None:
        await holder[0].stop()

    node = AsyncLeaderElector("selfstop", backend, clock=clock, on_leader=on_leader)
    holder.append(node)
    await node.start()
    await settle()
    assert not node.running and loop_tasks("selfstop") == []
    assert not node.is_leader


async def test_blocking_start_runs_in_the_callers_task_until_stopped(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    tasks: list[asyncio.Task[object] | None] = []
    holder: list[AsyncLeaderElector] = []

    async def on_leader() -> None:
        tasks.append(asyncio.current_task())
        await holder[0].stop()  # from the loop's own task: only asks it to stop

    node = AsyncLeaderElector("blocking", backend, clock=clock, on_leader=on_leader)
    holder.append(node)
    await node.start(blocking=True)
    assert tasks == [asyncio.current_task()]
    assert not node.running and not node.is_leader


async def test_restart_after_stop(backend: MemoryBackend, clock: FakeClock) -> None:
    node = AsyncLeaderElector("again", backend, clock=clock)
    async with node:
        assert node.is_leader
    assert not node.is_leader
    async with node:
        assert node.is_leader and node.token == 2
