"""``AsyncLock.release()`` never awaits a user callback that the renewer task is running.

The asyncio twin of ``tests/sync/test_renewer_callbacks.py``. The renewer task
awaits ``on_lost``; an ``on_lost`` may wait for another task, and that task
may be the one awaiting ``release()``. ``release()`` therefore awaits only the
renewer's own work (an in-flight renew), never the callback. The callback
still runs once per lost holding, may call the lock's own methods, and once
``release()`` has returned no renew of the released holding is sent.

Waits are bounded: ``PATIENCE`` real seconds for a task that must not be stuck
(still pending after it means a deadlock; a liveness check, not a timing
assertion), ``GUARD`` for waits that only a broken build reaches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from mongoelector import LockLost
from mongoelector.aio import AsyncLock
from mongoelector.aio.renewer import AsyncRenewer
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for, settle
from tests.aio.doubles import GatedBackend
from tests.fakes import FlakyBackend

PATIENCE = 5.0  # real seconds a release() may take before it counts as deadlocked
GUARD = 20.0  # real seconds; a hang guard for waits that only a broken build reaches
TTL = 15.0  # renew deadline 10 s, renewals every 2 s


def renewer_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("mongoelector-renew-") and not task.done()
    ]


def make(backend: object, clock: FakeClock, **options: object) -> AsyncLock:
    return AsyncLock("job", backend, ttl=TTL, clock=clock, **options)  # type: ignore[arg-type]


async def elapse(clock: FakeClock, seconds: float) -> None:
    for _ in range(int(seconds)):
        await run_for(clock, 1.0)


def task_name() -> str:
    task = asyncio.current_task()
    return task.get_name() if task is not None else "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What happened when another task released the lock while ``on_lost`` waited for it."""

    release_returned: bool  # within PATIENCE, while on_lost still waited: no deadlock
    callback_tasks: list[str]  # the task of each call of on_lost
    renews_when_released: int  # renew calls sent before release() returned
    renews_after: int  # renew calls sent in all, after 3 more ttls of virtual time


async def release_while_on_lost_waits_for_it(
    clock: FakeClock, backend: MemoryBackend, *, patience: float = PATIENCE
) -> Report:
    """Hold the renewer task inside ``on_lost``, which waits until another task's
    ``release()`` has returned, and report whether that ``release()`` returned in time.

    Whatever the verdict, ``on_lost`` is then let go and every task ends
    (bounded), so a deadlock is reported instead of hanging the suite.
    """
    link = FlakyBackend(backend)
    entered, released = asyncio.Event(), asyncio.Event()
    callback_tasks: list[str] = []

    async def wait_for_the_release() -> None:
        callback_tasks.append(task_name())
        entered.set()
        await asyncio.wait_for(released.wait(), GUARD)

    lock = make(link, clock, auto_renew=True, on_lost=wait_for_the_release)
    await lock.acquire()
    backend.delete("job")  # the next renew finds the holding gone: lost
    await run_for(clock, lock.retry_period)
    await asyncio.wait_for(entered.wait(), GUARD)

    renews_when_released: list[int] = []

    async def release_then_let_on_lost_go() -> None:
        await lock.release()
        renews_when_released.append(link.calls["renew"])
        released.set()

    releaser = asyncio.create_task(release_then_let_on_lost_go(), name="releaser")
    await asyncio.wait({releaser}, timeout=patience)
    release_returned = releaser.done()
    released.set()  # let on_lost go in any case
    await asyncio.wait_for(releaser, GUARD)
    await settle()
    assert renewer_tasks() == []
    await elapse(clock, 3 * TTL)
    return Report(
        release_returned=release_returned,
        callback_tasks=callback_tasks,
        renews_when_released=renews_when_released[0],
        renews_after=link.calls["renew"],
    )


class TestReleaseFromAnotherTask:
    async def test_returns_while_on_lost_waits_for_it_and_nothing_is_renewed_after(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        report = await release_while_on_lost_waits_for_it(clock, backend)
        assert report.release_returned, "release() awaited on_lost: deadlock"
        assert report.callback_tasks == ["mongoelector-renew-job"]  # once, in the renewer
        assert report.renews_after == report.renews_when_released

    async def test_the_scenario_reports_a_release_that_awaits_on_lost(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: stopping a renewer awaits its task, whatever the task is doing.
        async def stop_and_await(renewer: AsyncRenewer) -> None:
            renewer.request_stop()
            if renewer.task is not asyncio.current_task():
                await asyncio.wait({renewer.task})

        monkeypatch.setattr(AsyncRenewer, "stop", stop_and_await)
        report = await release_while_on_lost_waits_for_it(clock, backend, patience=0.5)
        assert not report.release_returned
        assert report.callback_tasks == ["mongoelector-renew-job"]


class TestOnLostCallsItsOwnLock:
    async def test_release_frees_the_store_and_the_renewer_ends(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        results: list[bool] = []
        locks: list[AsyncLock] = []

        async def release() -> None:
            link.mode = "ok"
            results.append(await locks[0].release())

        lock = make(link, clock, auto_renew=True, on_lost=release)
        locks.append(lock)
        await lock.acquire()
        link.mode = "down"  # no renewal succeeds: lost at the renew deadline
        await elapse(clock, lock.renew_deadline)
        assert results == [True]  # the store still had it; the callback's release freed it
        assert lock.lost.is_set()
        await settle()
        assert renewer_tasks() == []
        assert await make(backend, clock).acquire(blocking=False)

    async def test_acquire_starts_a_new_holding_whose_loss_fires_the_callback_again(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        tokens: list[int | None] = []
        locks: list[AsyncLock] = []

        async def reacquire() -> None:
            await locks[0].acquire(blocking=False)
            tokens.append(locks[0].token)

        lock = make(backend, clock, auto_renew=True, on_lost=reacquire)
        locks.append(lock)
        await lock.acquire()
        first = lock.token
        assert first is not None
        backend.delete("job")
        await run_for(clock, lock.retry_period)
        await settle()
        assert tokens == [lock.token]
        assert lock.token is not None and lock.token > first
        assert not lock.lost.is_set()
        assert renewer_tasks() == [lock.renewer]
        await elapse(clock, 3 * TTL)
        assert lock.ensure() == tokens[0]  # kept alive by the new renewer
        backend.delete("job")
        await run_for(clock, lock.retry_period)
        await settle()
        assert len(tokens) == 2  # once per lost holding
        await lock.release()

    async def test_touch_returns_none_without_a_store_call(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        link = FlakyBackend(backend)
        touched: list[object] = []
        locks: list[AsyncLock] = []

        async def touch() -> None:
            calls = link.total_calls
            touched.append(await locks[0].touch())
            touched.append(link.total_calls - calls)

        lock = make(link, clock, auto_renew=True, on_lost=touch)
        locks.append(lock)
        await lock.acquire()
        backend.delete("job")
        await run_for(clock, lock.retry_period)
        await settle()
        assert touched == [None, 0]
        await lock.release()


class TestReleaseDuringAnInFlightRenewal:
    async def test_the_reply_is_not_trusted_and_no_renew_follows(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        gated = GatedBackend(backend)
        lock = make(gated, clock, auto_renew=True)
        await lock.acquire()
        gated.held = {"renew"}
        clock.advance(lock.retry_period)
        await asyncio.wait_for(gated.entered.wait(), GUARD)
        releasing = asyncio.create_task(lock.release())
        await settle()
        gated.gate.set()
        assert await asyncio.wait_for(releasing, PATIENCE)
        renews = gated.calls["renew"]
        assert renews == 1
        record = backend.get("job")
        assert record is not None and record.owner is None
        assert lock.token is None
        with pytest.raises(LockLost, match="was released"):
            lock.ensure()
        await elapse(clock, 3 * TTL)
        assert gated.calls["renew"] == renews
        assert renewer_tasks() == []
        assert not lock.lost.is_set()
