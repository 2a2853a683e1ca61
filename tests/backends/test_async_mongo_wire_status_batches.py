"""N started ``AsyncLeaderElector``s on one ``AsyncMongoBackend`` over a real
``AsyncMongoClient`` send at most one status call per status interval, for N = 10 and 1,000.

The asyncio twin of ``TestStatusReportsOnTheWire`` in
``test_mongo_elector_batches.py``: the scripted mockupdb primary on loopback, a
:class:`~tests.backends.mongo_wire_store.WireStore` answering and counting the
commands (a status report or a batch of them is one ``update`` of the status
collection, counted as ``"status update"``), the electors' tasks on the
client's event loop (a thread), and a FakeClock that the scenario advances
itself. ``GUARD`` real seconds only bound waits that a broken build would never
finish.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mongoelector.aio import AsyncLeaderElector, status
from mongoelector.aio import elector as elector_module
from mongoelector.backends import AsyncMongoBackend
from mongoelector.testing import FakeClock
from tests.aio.test_elector_batches import waiting
from tests.backends.mongo_wire_store import WireStore
from tests.backends.mongo_wire_support import NOW, Primary

GUARD = 60.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renewals every 2 s, a status report due every 5 s (ttl / 3)
INTERVAL = 2.0
STATUS_INTERVAL = TTL / 3
WINDOWS = 3  # status intervals counted, after two in which the reports line up


def sending() -> bool:
    """Whether a status group's call is still running on this loop."""
    return any(group._calls for group in status.groups(asyncio.get_running_loop()))


async def idle(electors: list[AsyncLeaderElector]) -> None:
    """Let the loops (and the round trips they wait for) run until each waits for a time
    still ahead and no status call runs."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD
    while not (waiting(electors) and not sending()):
        assert loop.time() < give_up, "the electors never settled"
        await asyncio.sleep(0.001)


async def advance(clock: FakeClock, seconds: float, electors: list[AsyncLeaderElector]) -> None:
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await idle(electors)


async def scenario(n: int, client: Any, store: WireStore) -> tuple[list[int], list[int], set[str]]:
    """On the client's loop: start ``n`` electors of their own keys (every one leads) in four
    groups 0.4 s apart; the status updates of each of :data:`WINDOWS` status intervals
    after two in which the reports line up, every command of each renew interval
    meanwhile, and the electors' uuids. The electors are stopped after."""
    clock = FakeClock(NOW)
    backend = AsyncMongoBackend(client["app"], clock=clock, timeout=3)
    electors = [AsyncLeaderElector(f"tenant-{i}", backend, ttl=TTL, clock=clock) for i in range(n)]
    started: list[AsyncLeaderElector] = []
    try:
        for index, each in enumerate(electors):
            await each.start()
            started.append(each)
            if n > 1 and index % max(1, n // 4) == 0:
                await idle(started)
                clock.advance(0.4)
        await idle(electors)
        assert all(each.is_leader for each in electors)
        await advance(clock, 2 * STATUS_INTERVAL, electors)  # the reports line up
        statuses, commands = [], []
        for _ in range(WINDOWS):
            before_status = store.counted()["status update"]
            for _ in range(int(STATUS_INTERVAL // INTERVAL)):
                before = store.total
                await advance(clock, INTERVAL, electors)
                commands.append(store.total - before)
            await advance(clock, STATUS_INTERVAL % INTERVAL, electors)
            statuses.append(store.counted()["status update"] - before_status)
        assert all(each.is_leader for each in electors)
        return statuses, commands, {each.uuid for each in electors}
    finally:
        for each in started:
            await each.stop()
        assert status.groups(asyncio.get_running_loop()) == []


@pytest.mark.parametrize("n", [10, 1000])
def test_n_reporting_async_electors_send_one_status_update_per_status_interval(
    n: int, primary: Primary
) -> None:
    store = WireStore(primary)
    statuses, per_renewal, uuids = primary.loop.run(
        scenario(n, primary.async_client(retryWrites=False), store), timeout=4 * GUARD
    )
    assert all(count <= 1 for count in statuses), statuses
    assert sum(statuses) >= WINDOWS - 1  # the reports do go out
    assert all(count <= 3 for count in per_renewal), per_renewal  # ≤2 renew + 1 status
    assert store.reported == uuids
    # the upserts one report sends, stamped by the server's own $$NOW (pipeline path)
    statement = store.last_status[0]
    assert statement["upsert"] is True
    assert statement["u"][0]["$set"]["timestamp"] == "$$NOW"


def test_with_status_batching_turned_off_the_count_fails(
    primary: Primary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(elector_module, "reports_in_batches", lambda backend: False)
    store = WireStore(primary)
    statuses, _, _ = primary.loop.run(
        scenario(10, primary.async_client(retryWrites=False), store), timeout=4 * GUARD
    )
    assert not all(count <= 1 for count in statuses), statuses  # the bound above fails
