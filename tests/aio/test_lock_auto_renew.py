"""``AsyncLock(auto_renew=True)``: a renewer task keeps the holding alive, or reports it lost.

The asyncio twin of ``tests/sync/test_lock_auto_renew.py``. Every test runs on
a FakeClock: the renewer task sleeps on the clock until the test advances it,
and :func:`~mongoelector.testing.aio.run_for` moves time the way real time
would, letting the woken tasks run at every deadline, so each assertion sees
the state that virtual time calls for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from mongoelector import LockExists, LockLost
from mongoelector.aio import AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for, settle
from tests.aio.doubles import GatedBackend
from tests.fakes import FlakyBackend

TTL = 15.0  # renew deadline 10 s, renewals every 2 s


def renewer_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("mongoelector-renew-") and not task.done()
    ]


async def steps(clock: FakeClock, seconds: float, step: float = 1.0) -> AsyncIterator[float]:
    """Advance ``clock`` by ``step`` at a time, letting every task react; yield the time."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        await run_for(clock, step)
        yield clock.monotonic()


async def elapse(clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    async for _ in steps(clock, seconds, step):
        pass


class Calls:
    """A plain ``on_lost`` that counts its calls and the tasks it ran in."""

    def __init__(self) -> None:
        self.count = 0
        self.tasks: list[str] = []

    def __call__(self) -> None:
        self.count += 1
        task = asyncio.current_task()
        self.tasks.append(task.get_name() if task is not None else "-")


def make(backend: object, clock: FakeClock, **options: object) -> AsyncLock:
    return AsyncLock("job", backend, ttl=TTL, clock=clock, **options)  # type: ignore[arg-type]


class TestHealthyStore:
    async def test_the_holder_keeps_the_lock_for_100_ttls(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        on_lost = Calls()
        lock = make(link, clock, auto_renew=True, on_lost=on_lost)
        other = make(backend, clock)
        await lock.acquire()
        token = lock.token
        assert token is not None
        async for now in steps(clock, 100 * TTL):
            assert lock.ensure() == token
            assert lock.remaining() > lock.renew_deadline - lock.retry_period - 1
            if now % 50 == 0:
                with pytest.raises(LockExists):
                    await other.acquire(blocking=False)
        assert link.calls["renew"] >= 100 * TTL / lock.retry_period - 1
        assert not lock.lost.is_set()
        assert on_lost.count == 0
        assert await lock.owned()
        assert await lock.release()
        assert renewer_tasks() == []

    async def test_renewal_outages_shorter_than_the_deadline_are_ridden_out(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        lock = make(link, clock, auto_renew=True)
        await lock.acquire()
        token = lock.token
        await elapse(clock, 5)
        link.mode = "down"
        renews_before = link.calls["renew"]
        await elapse(clock, lock.renew_deadline - 2 * lock.retry_period)
        assert link.calls["renew"] - renews_before >= 2  # retried, and failed
        assert lock.token == token
        link.mode = "ok"
        await elapse(clock, 3 * TTL)
        assert lock.ensure() == token
        assert not lock.lost.is_set()
        await lock.release()

    async def test_valid_until_moves_with_each_renewal_and_reads_no_store(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        lock = make(link, clock, auto_renew=True)
        assert lock.valid_until is None
        await lock.acquire()
        assert lock.valid_until == lock.renew_deadline
        calls = dict(link.calls)
        assert lock.remaining() == lock.renew_deadline
        assert link.calls == calls
        await run_for(clock, lock.retry_period)
        assert lock.valid_until == lock.retry_period + lock.renew_deadline
        assert lock.remaining() == lock.renew_deadline
        await lock.release()
        assert lock.valid_until is None
        assert lock.remaining() == 0.0


class TestUnreachableStore:
    async def test_the_holder_gives_up_before_anyone_else_can_acquire(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        on_lost = Calls()
        holder = make(link, clock, auto_renew=True, on_lost=on_lost)
        rival = make(backend, clock)
        await holder.acquire()
        first_token = holder.token
        assert first_token is not None
        await elapse(clock, 7)
        link.mode = "down"
        trusted_until = holder.valid_until
        lost_at = rival_acquired_at = None
        async for now in steps(clock, 2 * TTL, step=0.25):
            if holder.valid_until is not None:
                trusted_until = holder.valid_until
            if lost_at is None and holder.lost.is_set():
                lost_at = now
            try:
                await rival.acquire(blocking=False)
            except LockExists:
                continue
            rival_acquired_at = now
            # The moment another node can hold the lock, the first no longer believes it does.
            assert holder.lost.is_set()
            assert holder.token is None
            assert holder.remaining() == 0.0
            assert trusted_until is not None
            assert now >= trusted_until
            break
        assert lost_at is not None
        assert rival_acquired_at is not None
        assert lost_at < rival_acquired_at
        assert rival.token is not None and rival.token > first_token
        assert on_lost.count == 1
        assert on_lost.tasks == ["mongoelector-renew-job"]
        assert renewer_tasks() == []
        await elapse(clock, 3 * TTL)
        assert on_lost.count == 1
        with pytest.raises(LockLost, match=rf"token {first_token} was lost"):
            holder.ensure()
        await rival.release()

    async def test_release_after_a_loss_frees_the_stores_record_once_reachable(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        holder = make(link, clock, auto_renew=True)
        await holder.acquire()
        link.mode = "down"
        await elapse(clock, holder.renew_deadline)
        assert holder.lost.is_set()
        link.mode = "ok"
        assert await holder.release()  # the store still had it for ttl - renew_deadline seconds
        assert await make(backend, clock).acquire(blocking=False)


class TestTakeover:
    async def test_a_forced_takeover_is_seen_at_the_next_renewal(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        on_lost = Calls()
        holder = make(backend, clock, auto_renew=True, on_lost=on_lost)
        await holder.acquire()
        token = holder.token
        await make(backend, clock).acquire(force=True)
        assert not holder.lost.is_set()
        await run_for(clock, holder.retry_period)
        assert holder.lost.is_set()
        assert on_lost.count == 1
        assert holder.token is None
        with pytest.raises(LockLost, match=rf"token {token} was lost \(the record is no longer"):
            holder.ensure()
        assert renewer_tasks() == []
        assert not await holder.release()  # the new holder keeps its lock

    async def test_a_forced_release_is_seen_at_the_next_renewal(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        holder = make(backend, clock, auto_renew=True)
        await holder.acquire()
        await make(backend, clock).release(force=True)
        await run_for(clock, holder.retry_period)
        assert holder.lost.is_set()
        assert holder.token is None


class TestOnLost:
    async def test_fires_once_per_holding_and_lost_is_cleared_by_the_next_acquire(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        on_lost = Calls()
        holder = make(backend, clock, auto_renew=True, on_lost=on_lost)
        rival = make(backend, clock)
        for term in (1, 2):
            await holder.acquire()
            assert not holder.lost.is_set()
            await rival.acquire(force=True)
            await elapse(clock, 3 * TTL)
            assert holder.lost.is_set()
            assert on_lost.count == term
            await rival.release()

    async def test_a_coroutine_callback_is_awaited_in_the_renewer(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        seen: list[tuple[str, bool]] = []

        async def on_lost() -> None:
            await asyncio.sleep(0)
            task = asyncio.current_task()
            assert task is not None
            seen.append((task.get_name(), holder.lost.is_set()))

        holder = make(backend, clock, auto_renew=True, on_lost=on_lost)
        await holder.acquire()
        backend.delete("job")
        await run_for(clock, holder.retry_period)
        assert seen == [("mongoelector-renew-job", True)]
        assert renewer_tasks() == []

    async def test_a_raising_callback_is_logged_and_the_renewer_still_ends(
        self, clock: FakeClock, backend: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        def explode() -> None:
            raise RuntimeError("boom")

        holder = make(backend, clock, auto_renew=True, on_lost=explode)
        await holder.acquire()
        backend.delete("job")
        with caplog.at_level(logging.ERROR, logger="mongoelector.lock"):
            await run_for(clock, holder.retry_period)
        assert holder.lost.is_set()
        assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]
        assert renewer_tasks() == []

    async def test_the_callback_may_release_or_reacquire_the_lock(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        holders: list[AsyncLock] = []

        async def retry() -> None:
            await holders[0].release()
            await holders[0].acquire(blocking=False)

        holder = make(backend, clock, auto_renew=True, on_lost=retry)
        holders.append(holder)
        await holder.acquire()
        first = holder.token
        backend.delete("job")
        await run_for(clock, holder.retry_period)
        assert first is not None and holder.token is not None
        assert holder.token > first
        assert not holder.lost.is_set()
        assert len(renewer_tasks()) == 1
        await holder.release()
        assert renewer_tasks() == []

    async def test_a_loss_found_by_ensure_fires_the_callback_once_too(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        on_lost = Calls()
        holder = make(backend, clock, auto_renew=True, on_lost=on_lost)
        await holder.acquire()
        clock.advance(holder.renew_deadline)  # the renewer has not run yet
        with pytest.raises(LockLost):
            holder.ensure()
        await settle()
        assert on_lost.count == 1
        assert renewer_tasks() == []
        await elapse(clock, TTL)
        assert on_lost.count == 1

    def test_a_loss_found_outside_an_event_loop_runs_a_plain_callback_only(
        self, clock: FakeClock, backend: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        calls: list[str] = []

        async def coroutine_callback() -> None:
            calls.append("coroutine")

        plain = AsyncLock("a", backend, ttl=TTL, clock=clock, on_lost=lambda: calls.append("plain"))
        coroutine = AsyncLock("b", backend, ttl=TTL, clock=clock, on_lost=coroutine_callback)

        async def take() -> None:
            await plain.acquire()
            await coroutine.acquire()

        asyncio.run(take())
        clock.advance(plain.renew_deadline)
        with caplog.at_level(logging.WARNING, logger="mongoelector.lock"):
            for lock in (plain, coroutine):
                with pytest.raises(LockLost):
                    lock.ensure()
        assert calls == ["plain"]
        assert "on_lost coroutine not run" in caplog.text


class TestTasks:
    async def test_the_renewer_runs_only_while_held(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = make(backend, clock, auto_renew=True)
        assert lock.auto_renew and lock.renewer is None
        await lock.acquire()
        assert renewer_tasks() == [lock.renewer]
        await lock.release()
        assert renewer_tasks() == []
        assert lock.renewer is None
        assert not lock.lost.is_set()

    async def test_without_auto_renew_there_is_no_task(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = make(backend, clock)
        await lock.acquire()
        assert renewer_tasks() == [] and lock.renewer is None
        await elapse(clock, lock.renew_deadline)
        assert lock.token is None
        await lock.release()

    async def test_release_during_an_in_flight_renewal_lets_it_finish_first(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        gated = GatedBackend(backend)
        lock = make(gated, clock, auto_renew=True)
        await lock.acquire()
        gated.held = {"renew"}
        clock.advance(lock.retry_period)
        await gated.entered.wait()
        releasing = asyncio.create_task(lock.release())
        await settle()
        assert not releasing.done()  # waits for the renewal in flight
        gated.gate.set()
        assert await releasing
        assert list(gated.calls) == ["compare_and_set", "renew", "release"]
        record = backend.get("job")
        assert record is not None and record.owner is None
        assert record.expires_at <= clock.now() + timedelta(seconds=TTL)
        assert renewer_tasks() == []
        assert not lock.lost.is_set()

    async def test_a_forced_reacquire_replaces_the_renewer_without_a_loss(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = make(backend, clock, auto_renew=True, on_lost=pytest.fail)
        await lock.acquire()
        first = lock.renewer
        await lock.acquire(force=True)
        await settle()
        assert lock.token == 2
        assert renewer_tasks() == [lock.renewer]
        assert lock.renewer is not first
        await elapse(clock, 3 * TTL)
        assert lock.ensure() == 2
        assert not lock.lost.is_set()
        await lock.release()

    async def test_a_cancelled_renewer_leaves_the_holding_to_lapse_at_its_deadline(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = make(backend, clock, auto_renew=True)
        await lock.acquire()
        token = lock.token
        renewer = lock.renewer
        assert renewer is not None
        renewer.cancel()
        await settle()
        assert renewer_tasks() == [] and lock.renewer is None
        await elapse(clock, lock.renew_deadline - 1)
        assert lock.ensure() == token
        await elapse(clock, 1)
        with pytest.raises(LockLost):
            lock.ensure()
        assert await lock.release()  # the store still has it until the ttl


class TestArguments:
    @pytest.mark.parametrize(
        ("options", "error"), [({"auto_renew": 1}, "auto_renew"), ({"on_lost": 3}, "on_lost")]
    )
    def test_bad_options_are_refused_by_name(
        self, clock: FakeClock, backend: MemoryBackend, options: dict[str, object], error: str
    ) -> None:
        with pytest.raises(TypeError, match=error):
            make(backend, clock, **options)

    def test_asyncio_run_ends_a_renewer_left_running(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        left: list[asyncio.Task[None] | None] = []

        async def main() -> None:
            lock = make(backend, clock, auto_renew=True)
            await lock.acquire()
            left.append(lock.renewer)  # never released

        asyncio.run(main())
        (task,) = left
        assert task is not None and task.cancelled()
