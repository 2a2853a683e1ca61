"""``async with elector.leadership() as term``: the block runs only while this node leads."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mongoelector import AcquireTimeout, Lock, LockLost, NotLeader
from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.core.events import LossReason
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for, settle
from tests.aio.doubles import GatedBackend
from tests.fakes import FlakyBackend


class Body:
    """A block of leader-only work that runs until cancelled, recording what happened."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started_at: float | None = None
        self.cancelled_at: float | None = None
        self.token: int | None = None
        self.error: BaseException | None = None

    async def run(self, elector: AsyncLeaderElector, timeout: float | None = None) -> None:
        try:
            async with elector.leadership(timeout=timeout) as term:
                self.started_at = self.clock.monotonic()
                self.token = term.token
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    self.cancelled_at = self.clock.monotonic()
                    raise
        except (LockLost, NotLeader, AcquireTimeout) as error:
            self.error = error

    async def begin(
        self, elector: AsyncLeaderElector, timeout: float | None = None
    ) -> asyncio.Task[None]:
        """Start :meth:`run` in a task, and let it enter (or wait to enter) its scope."""
        task = asyncio.create_task(self.run(elector, timeout))
        await settle()
        return task


async def started(backend: object, clock: FakeClock, count: int) -> list[AsyncLeaderElector]:
    """``count`` started electors of key ``svc``; the first one leads."""
    nodes = []
    for _ in range(count):
        node = AsyncLeaderElector("svc", backend, clock=clock, report_status=False)  # type: ignore[arg-type]
        await node.start()
        nodes.append(node)
    return nodes


async def test_the_block_runs_at_once_while_leading_and_leaving_it_keeps_leadership(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.start()
    async with node.leadership() as term:
        assert term.token == node.token == 1
        assert not term.lost.is_set() and term.reason is None
    assert node.is_leader
    await node.stop()


async def test_a_node_that_is_not_leader_and_not_running_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    with pytest.raises(NotLeader, match="not running"):
        async with node.leadership():
            pytest.fail("the block must not run")


async def test_a_polled_leader_may_enter_without_a_running_loop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.poll()
    async with node.leadership() as term:
        assert term.token == 1


async def test_a_running_follower_waits_until_it_leads(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = await started(backend, clock, 2)
    body = Body(clock)
    task = await body.begin(second)
    await run_for(clock, 30)
    assert body.started_at is None  # still waiting: the first node leads
    await first.stop()
    stopped_at = clock.monotonic()
    await run_for(clock, 5)
    assert body.started_at is not None and body.token == 2
    assert body.started_at - stopped_at <= second.retry_period
    await second.stop()
    await task
    assert isinstance(body.error, LockLost)


async def test_waiting_for_leadership_times_out_on_the_elector_clock(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = await started(backend, clock, 2)
    body = Body(clock)
    task = await body.begin(second, timeout=7)
    await run_for(clock, 20)
    await task
    assert isinstance(body.error, AcquireTimeout) and body.started_at is None
    assert "timeout=7" in str(body.error)
    with pytest.raises(AcquireTimeout):
        async with second.leadership(timeout=0):
            pytest.fail("the block must not run")
    await first.stop()
    await second.stop()


async def test_stopping_while_waiting_for_leadership_raises_not_leader(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = await started(backend, clock, 2)
    body = Body(clock)
    task = await body.begin(second)
    await second.stop()
    await task
    assert isinstance(body.error, NotLeader)
    await first.stop()


async def test_the_block_is_cancelled_at_the_renew_deadline_when_the_store_is_unreachable(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    [node] = await started(flaky, clock, 1)
    body = Body(clock)
    task = await body.begin(node)
    flaky.mode = "down"  # the last successful write was the acquire at t=0
    await run_for(clock, 30)
    await task
    assert body.cancelled_at == node.renew_deadline == 10
    assert isinstance(body.error, LockLost) and "renew deadline" in str(body.error)
    flaky.mode = "ok"
    await node.stop()


async def test_the_block_is_cancelled_at_the_deadline_even_while_a_renew_hangs(
    clock: FakeClock,
) -> None:
    gated = GatedBackend(MemoryBackend(clock))
    [node] = await started(gated, clock, 1)
    body = Body(clock)
    task = await body.begin(node)
    gated.held = {"renew"}
    gated.apply_first = False  # the renew never reaches the store while it hangs
    await run_for(clock, 30)
    assert gated.entered.is_set()  # the loop is stuck in the renew sent at t=2
    await task
    assert body.cancelled_at == 10
    gated.held = set()
    gated.gate.set()
    await node.stop()


async def test_the_block_is_cancelled_when_another_node_takes_over(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    [node] = await started(backend, clock, 1)
    body = Body(clock)
    task = await body.begin(node)
    Lock("svc", backend, ttl=60, clock=clock).acquire(blocking=False, force=True)
    await run_for(clock, node.retry_period)
    await task
    assert body.cancelled_at == node.retry_period  # noticed at the next renew
    assert isinstance(body.error, LockLost) and "no longer ours" in str(body.error)
    await node.stop()


async def test_the_block_is_cancelled_when_the_elector_stops(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    [node] = await started(backend, clock, 1)
    body = Body(clock)
    task = await body.begin(node)
    await node.stop()
    await task
    assert body.cancelled_at == 0
    assert isinstance(body.error, LockLost) and "stopped" in str(body.error)


async def test_the_block_never_runs_on_once_the_elector_knows_leadership_is_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    [node] = await started(backend, clock, 1)
    lost_seen: list[bool] = []

    async def busy() -> None:
        with contextlib.suppress(LockLost):
            async with node.leadership() as term:
                while True:  # always ready to run again: no scheduling luck involved
                    lost_seen.append(term.lost.is_set())
                    await asyncio.sleep(0)

    task = asyncio.create_task(busy())
    await settle()
    Lock("svc", backend, ttl=60, clock=clock).acquire(blocking=False, force=True)
    await run_for(clock, node.retry_period)  # the renew finds the lease taken over
    assert task.done() and lost_seen and True not in lost_seen
    await node.stop()


async def test_a_cancellation_from_outside_passes_through_unchanged(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    [node] = await started(backend, clock, 1)
    body = Body(clock)
    task = await body.begin(node)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.error is None and node.is_leader
    await node.stop()


async def test_an_error_in_the_block_propagates_and_leadership_stays(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.start()
    with pytest.raises(ValueError, match="job failed"):
        async with node.leadership():
            raise ValueError("job failed")
    assert node.is_leader
    await node.stop()


async def test_a_block_that_swallows_the_cancellation_still_raises_lock_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.start()

    async def stubborn() -> LossReason | None:
        async with node.leadership() as term:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            return term.reason
        return None  # pragma: no cover - unreachable: leaving raises

    task = asyncio.create_task(stubborn())
    await settle()
    await node.release()
    with pytest.raises(LockLost, match="released"):
        await task
    await node.stop()


async def test_lost_wait_times_out_while_leading_and_returns_once_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.start()
    outcomes: list[tuple[bool, float]] = []

    async def watch() -> None:
        try:
            async with node.leadership() as term:
                outcomes.append((await term.lost.wait(timeout=3), clock.monotonic()))
                outcomes.append((await term.lost.wait(), clock.monotonic()))
        except LockLost:
            pass

    task = asyncio.create_task(watch())
    await run_for(clock, 5)
    assert outcomes == [(False, 3.0)]
    await node.release()
    await settle()
    await task
    assert outcomes == [(False, 3.0)]  # the block was cancelled before wait() could return
    await node.stop()


async def test_a_scope_is_entered_once_and_bad_timeouts_are_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = AsyncLeaderElector("svc", backend, clock=clock)
    await node.poll()
    scope = node.leadership()
    async with scope:
        pass
    with pytest.raises(RuntimeError, match="once"):
        async with scope:
            pass
    with pytest.raises(ValueError, match="-1"):
        node.leadership(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        node.leadership(timeout="5")  # type: ignore[arg-type]
