"""mongoelector.aio.sleep / wait_until: fake time decides under a FakeClock, the loop otherwise."""

from __future__ import annotations

import asyncio

from mongoelector.aio import AsyncWaitClock, sleep, wait_until
from mongoelector.clock import SystemClock
from mongoelector.testing import FakeClock


def test_fake_clock_waits_itself_and_the_system_clock_does_not() -> None:
    assert isinstance(FakeClock(), AsyncWaitClock)
    assert not isinstance(SystemClock(), AsyncWaitClock)


async def test_sleep_under_a_fake_clock_advances_it() -> None:
    clock = FakeClock()
    await sleep(clock, 30)
    assert clock.monotonic() == 30


async def test_wait_until_under_a_fake_clock_never_moves_it() -> None:
    clock = FakeClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(wait_until(clock, 60, wakeup))
    await asyncio.sleep(0)
    wakeup.set()
    assert await waiter is True
    assert clock.monotonic() == 0


async def test_with_a_real_clock_an_event_set_first_wins() -> None:
    clock = SystemClock()
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(wait_until(clock, clock.monotonic() + 3600, wakeup))
    await asyncio.sleep(0)
    wakeup.set()
    assert await asyncio.wait_for(waiter, timeout=10) is True  # a hang guard


async def test_with_a_real_clock_a_reached_deadline_returns_false() -> None:
    clock = SystemClock()
    assert await wait_until(clock, clock.monotonic() - 1, asyncio.Event()) is False
    assert await wait_until(clock, clock.monotonic() + 0.001, asyncio.Event()) is False
    await sleep(clock, 0)
    await sleep(clock, -1)


async def test_with_a_real_clock_an_infinite_deadline_waits_for_the_event() -> None:
    wakeup = asyncio.Event()
    waiter = asyncio.create_task(wait_until(SystemClock(), float("inf"), wakeup))
    await asyncio.sleep(0)
    assert not waiter.done()
    wakeup.set()
    assert await waiter is True
