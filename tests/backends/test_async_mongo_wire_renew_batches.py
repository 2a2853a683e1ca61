"""N ``AsyncLock``s on one ``AsyncMongoBackend`` over a real ``AsyncMongoClient`` cost at most
2 commands per renew interval, for N = 1, 10 and 1,000.

The asyncio twin of ``test_mongo_wire_renew_batches.py``: the scripted mockupdb
primary on loopback, a :class:`~tests.backends.mongo_wire_store.WireStore`
answering and counting the lease commands, the locks' tasks on the client's
event loop (a thread), and a FakeClock that the scenario advances itself.
``GUARD`` real seconds only bound waits that a broken build would never finish.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from mongoelector.aio import AsyncLock
from mongoelector.aio import batches as aio_batches
from mongoelector.backends import AsyncMongoBackend
from mongoelector.core import batching
from mongoelector.testing import FakeClock
from tests.backends.mongo_wire_store import WireStore
from tests.backends.mongo_wire_support import NOW, Primary

GUARD = 60.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0
INTERVALS = 3  # renew intervals counted, after the one in which the holdings line up


def settled(locks: list[AsyncLock]) -> bool:
    """True when every lock's renewer waits for a time still ahead, or has ended."""
    for lock in locks:
        renewer = lock._renewer
        if renewer is None or renewer.task.done():
            continue
        until = renewer._sleeping_until
        if until is None or until <= lock.clock.monotonic() or renewer._summoned is not None:
            return False
    return True


async def idle(locks: list[AsyncLock]) -> None:
    """Let the renewers (and the round trips they wait for) run until each waits again."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD
    while not settled(locks):
        assert loop.time() < give_up, "the renewers never settled"
        await asyncio.sleep(0.001)


async def advance(clock: FakeClock, seconds: float, locks: list[AsyncLock]) -> None:
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await idle(locks)


async def scenario(n: int, client: Any, store: WireStore) -> tuple[list[int], Counter[str]]:
    """On the client's loop: acquire ``n`` auto-renewed locks in four groups 0.4 s apart,
    count the commands of each of :data:`INTERVALS` renew intervals after the first."""
    clock = FakeClock(NOW)
    backend = AsyncMongoBackend(client["app"], clock=clock, timeout=3)
    locks = [
        AsyncLock(f"job-{i}", backend, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)
    ]
    try:
        for index, lock in enumerate(locks):
            await lock.acquire()
            if n > 1 and index % max(1, n // 4) == 0:
                await idle(locks[: index + 1])
                clock.advance(0.4)
        await idle(locks)
        await advance(clock, INTERVAL, locks)  # the holdings line up
        before_names = store.counted()
        counts = []
        for _ in range(INTERVALS):
            before = store.total
            await advance(clock, INTERVAL, locks)
            counts.append(store.total - before)
        assert all(lock.token is not None for lock in locks)
        return counts, store.counted() - before_names
    finally:
        for lock in locks:
            await lock.release()
        await idle(locks)
        assert aio_batches.groups(asyncio.get_running_loop()) == []


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_n_async_locks_cost_at_most_two_commands_per_renew_interval(
    n: int, primary: Primary
) -> None:
    store = WireStore(primary)
    counts, names = primary.loop.run(
        scenario(n, primary.async_client(retryWrites=False), store), timeout=4 * GUARD
    )
    assert all(count <= 2 for count in counts), counts
    if n == 1:
        assert names == Counter({"findAndModify": INTERVALS})  # its own renew
    else:
        assert names == Counter({"update": INTERVALS, "find": INTERVALS})


def test_with_the_decision_mutated_to_never_batch_the_count_fails(
    primary: Primary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "renew_together", lambda now, trigger, candidates, **kw: [[]])
    store = WireStore(primary)
    counts, names = primary.loop.run(
        scenario(10, primary.async_client(retryWrites=False), store), timeout=4 * GUARD
    )
    assert counts == [10] * INTERVALS  # the bound of the test above fails
    assert names == Counter({"findAndModify": 10 * INTERVALS})
