"""The asyncio driver's glue: coroutine callbacks and the task-reentrant poll lock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mongoelector.aio._glue import TaskLock, run_callback
from mongoelector.testing.aio import settle


async def test_run_callback_awaits_coroutines_and_logs_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []

    async def coroutine_callback(value: int) -> None:
        await asyncio.sleep(0)
        seen.append(value)

    def failing() -> None:
        raise RuntimeError("callback bug")

    await run_callback(coroutine_callback, "on_thing", 7)
    await run_callback(seen.append, "on_thing", 8)
    await run_callback(None, "on_thing")
    with caplog.at_level(logging.ERROR, logger="mongoelector"):
        await run_callback(failing, "on_thing")
    assert seen == [7, 8]
    assert "on_thing callback" in caplog.text and "callback bug" in caplog.text


async def test_run_callback_lets_cancellation_through() -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(run_callback(slow, "on_slow"))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_holding_task_may_take_the_lock_again() -> None:
    lock = TaskLock()
    async with lock, lock:
        pass
    async with lock:
        pass


async def test_other_tasks_wait_for_the_lock_in_turn() -> None:
    lock = TaskLock()
    order: list[str] = []
    release = asyncio.Event()

    async def worker(name: str) -> None:
        async with lock:
            order.append(f"{name} in")
            await release.wait()
            order.append(f"{name} out")

    tasks = [asyncio.create_task(worker(name)) for name in ("a", "b")]
    await settle()
    assert order == ["a in"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a in", "a out", "b in", "b out"]


async def test_a_waiter_cancelled_after_being_woken_passes_the_turn_on() -> None:
    lock = TaskLock()
    order: list[str] = []

    async def waiter(name: str) -> None:
        async with lock:
            order.append(name)

    async with lock:
        second, third = asyncio.create_task(waiter("b")), asyncio.create_task(waiter("c"))
        await settle()
    second.cancel()  # leaving woke "b", which is cancelled before it could run
    await asyncio.wait([second, third])
    assert second.cancelled() and order == ["c"]
