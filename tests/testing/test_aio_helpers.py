"""run_for() moves a FakeClock the way real time would, stopping at every waiter's deadline."""

from __future__ import annotations

import asyncio

import pytest

from mongoelector.aio import wait_until
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for, settle


async def test_run_for_wakes_each_waiter_exactly_at_its_deadline() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def ticker(name: str, period: float) -> None:
        while True:
            await wait_until(clock, clock.monotonic() + period, asyncio.Event())
            woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(ticker("a", 1.5)), asyncio.create_task(ticker("b", 2))]
    await run_for(clock, 4.5)
    assert woke == [("a", 1.5), ("b", 2.0), ("a", 3.0), ("b", 4.0), ("a", 4.5)]
    assert clock.monotonic() == 4.5
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


async def test_run_for_with_nobody_waiting_just_advances() -> None:
    clock = FakeClock()
    await run_for(clock, 12)
    assert clock.monotonic() == 12


async def test_settle_lets_a_chain_of_tasks_finish() -> None:
    done: list[int] = []

    async def step(n: int) -> None:
        if n:
            await asyncio.create_task(step(n - 1))
        done.append(n)

    asyncio.create_task(step(3))  # noqa: RUF006 - settle() is what runs it
    await settle()
    assert done == [0, 1, 2, 3]


async def test_bad_arguments_are_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="rounds"):
        await settle(0)
    with pytest.raises(TypeError, match="FakeClock"):
        await run_for("clock", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="-1"):
        await run_for(FakeClock(), -1)
