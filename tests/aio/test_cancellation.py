"""Cancellation never leaves a lease held by nobody who knows it."""

from __future__ import annotations

import asyncio

import pytest

from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import settle
from tests.aio.doubles import GatedBackend


async def cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def holder(backend: MemoryBackend, key: str) -> str | None:
    record = backend.get(key)
    if record is None or not record.is_held(backend.server_time()):
        return None
    return record.owner


# --- AsyncLock.acquire -----------------------------------------------------------------


@pytest.mark.parametrize("apply_first", [True, False], ids=["write-applied", "write-not-applied"])
async def test_cancelling_acquire_during_the_store_call_leaves_the_lock_free(
    clock: FakeClock, apply_first: bool
) -> None:
    inner = MemoryBackend(clock)
    gated = GatedBackend(inner)
    gated.held = {"compare_and_set"}
    gated.apply_first = apply_first
    lock = AsyncLock("job", gated, clock=clock)
    task = asyncio.create_task(lock.acquire())
    await gated.entered.wait()
    assert holder(inner, "job") == (lock.uuid if apply_first else None)
    await cancel(task)
    assert holder(inner, "job") is None
    assert lock.token is None
    assert await AsyncLock("job", inner, clock=clock).acquire(blocking=False)


async def test_cancelling_acquire_while_it_waits_between_tries_makes_no_store_call(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    gated = GatedBackend(backend)
    await AsyncLock("job", backend, clock=clock).acquire()
    waiter = AsyncLock("job", gated, clock=clock)
    task = asyncio.create_task(waiter.acquire(step=1))
    await settle()
    tries = gated.calls["compare_and_set"]
    assert tries >= 1
    await cancel(task)
    assert gated.calls["compare_and_set"] == tries and gated.calls["release"] == 0
    assert waiter.token is None


async def test_if_the_release_after_a_cancelled_acquire_fails_release_frees_it_later(
    clock: FakeClock,
) -> None:
    inner = MemoryBackend(clock)
    gated = GatedBackend(inner)
    gated.held = {"compare_and_set"}
    lock = AsyncLock("job", gated, clock=clock)
    task = asyncio.create_task(lock.acquire())
    await gated.entered.wait()
    gated.down = True  # the store becomes unreachable: the clean-up release fails
    await cancel(task)
    assert holder(inner, "job") == lock.uuid  # still in the store, and the lock knows it may be
    gated.down = False
    assert await lock.release() is True
    assert holder(inner, "job") is None


# --- AsyncLeaderElector ------------------------------------------------------------------


async def test_cancelling_the_loop_task_steps_down_and_releases(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    losses: list[int] = []
    node = AsyncLeaderElector("svc", backend, clock=clock, on_leader_loss=lambda: losses.append(1))
    await node.start()
    assert node.is_leader and node.task is not None
    await cancel(node.task)
    assert losses == [1]
    assert not node.is_leader and not node.running
    assert holder(backend, "svc") is None


@pytest.mark.parametrize("in_flight", ["compare_and_set", "renew"])
async def test_cancelling_the_loop_task_mid_call_still_releases(
    clock: FakeClock, in_flight: str
) -> None:
    inner = MemoryBackend(clock)
    gated = GatedBackend(inner)
    node = AsyncLeaderElector("svc", gated, clock=clock, report_status=False)
    if in_flight == "compare_and_set":
        gated.held = {"compare_and_set"}
        starter = asyncio.create_task(node.start())
    else:
        await node.start()
        gated.held = {"renew"}
        clock.advance(node.retry_period)
    await gated.entered.wait()
    assert holder(inner, "svc") == node.uuid  # the write applied; its reply is outstanding
    gated.held = set()
    assert node.task is not None
    await cancel(node.task)
    if in_flight == "compare_and_set":
        await starter
    assert holder(inner, "svc") is None
    assert not node.is_leader and not node.running


def test_an_elector_left_running_is_released_when_asyncio_run_ends(clock: FakeClock) -> None:
    backend = MemoryBackend(clock)

    async def service() -> None:
        node = AsyncLeaderElector("svc", backend, clock=clock)
        await node.start()
        assert node.is_leader
        # returns without stop(): asyncio.run cancels the loop task on the way out

    asyncio.run(service())
    assert holder(backend, "svc") is None


# --- AsyncLock.release whose backend raised something other than a store error ----------


class BackendBug(Exception):
    """Not a ``BackendError``: what a backend's bug, or an unclassified driver error, raises."""


class BuggyOnce(GatedBackend):
    """Its next release raises :class:`BackendBug` before touching the store."""

    bug_next_release = False

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        if self.bug_next_release:
            self.bug_next_release = False
            raise BackendBug("release")
        return await super().release(key, owner, token=token, force=force)


async def free_after_a_release_the_backend_failed(clock: FakeClock) -> bool:
    """Whether the lock is free after a release whose backend raised a bug, then another."""
    inner = MemoryBackend(clock=clock)
    store = BuggyOnce(inner)
    lock = AsyncLock("job", store, ttl=600, clock=clock)
    assert await lock.acquire(blocking=False)
    store.bug_next_release = True
    with pytest.raises(BackendBug):
        await lock.release()
    assert holder(inner, "job") == lock.uuid  # the release did not land
    await lock.release()
    return holder(inner, "job") is None


async def test_a_release_whose_backend_raised_a_bug_is_sent_again_by_the_next_release(
    clock: FakeClock,
) -> None:
    assert await free_after_a_release_the_backend_failed(clock)


async def test_the_backend_bug_test_sees_the_failed_release_forgotten(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AsyncLock, "_release_failed", lambda self, *args: None)
    assert not await free_after_a_release_the_backend_failed(clock)
