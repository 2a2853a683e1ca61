"""FakeClock for asyncio tasks: async_sleep advances, async_wait_until waits for advance()."""

from __future__ import annotations

import asyncio
import threading

from mongoelector.testing import FakeClock


async def test_async_sleep_advances_the_clock_and_lets_other_tasks_run() -> None:
    clock = FakeClock()
    ran: list[float] = []

    async def other() -> None:
        ran.append(clock.monotonic())

    task = asyncio.create_task(other())
    await clock.async_sleep(2.5)
    assert ran == [2.5]  # it ran during the sleep, and saw the new time
    await task


async def test_async_wait_until_sleeps_until_the_clock_is_advanced_past_the_deadline() -> None:
    clock = FakeClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(clock.async_wait_until(5, wakeup))
    await asyncio.sleep(0)
    assert clock.waiters == 1 and clock.next_deadline == 5
    clock.advance(4.999)
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(0.001)
    assert await waiter is False  # woken by the clock, not by the event's owner
    assert clock.waiters == 0 and clock.next_deadline is None


async def test_async_wait_until_returns_true_when_its_event_is_set_first() -> None:
    clock = FakeClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(clock.async_wait_until(5, wakeup))
    await asyncio.sleep(0)
    wakeup.set()
    assert await waiter is True
    assert clock.monotonic() == 0 and clock.waiters == 0


async def test_advancing_from_another_thread_wakes_an_asyncio_waiter() -> None:
    clock = FakeClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(clock.async_wait_until(1, wakeup))
    await asyncio.sleep(0)
    advancer = threading.Thread(target=clock.advance, args=(1,))
    advancer.start()
    assert await waiter is False
    advancer.join()


async def test_a_deadline_already_reached_returns_after_yielding_once() -> None:
    clock = FakeClock()
    clock.advance(3)
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    task = asyncio.create_task(other())
    assert await clock.async_wait_until(2, asyncio.Event()) is False
    order.append("waiter")
    await task
    assert order == ["other", "waiter"]


async def test_an_infinite_deadline_waits_for_the_event_alone() -> None:
    clock = FakeClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(clock.async_wait_until(float("inf"), wakeup))
    await asyncio.sleep(0)
    clock.advance(10**9)
    await asyncio.sleep(0)
    assert not waiter.done() and clock.waiters == 0
    wakeup.set()
    assert await waiter is True


def test_next_deadline_is_the_earliest_of_thread_and_task_waiters() -> None:
    clock = FakeClock()
    stop = threading.Event()
    thread = threading.Thread(target=clock.wait_until, args=(7, stop))
    thread.start()
    while clock.waiters < 1:
        stop.wait(0.001)

    async def task_waiter() -> None:
        event = asyncio.Event()
        waiting = asyncio.create_task(clock.async_wait_until(3, event))
        await asyncio.sleep(0)
        assert clock.waiters == 2 and clock.next_deadline == 3
        event.set()
        await waiting

    asyncio.run(task_waiter())
    assert clock.next_deadline == 7
    stop.set()
    thread.join()
    assert clock.next_deadline is None
