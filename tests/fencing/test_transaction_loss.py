"""A fenced transaction whose check failed marks the holding lost only when the lock record,
read after, proves it (mongomock; the wire tests show the commands).

``_confirm_loss`` is what ``fenced_transaction`` calls after a check that matched nothing,
or a write conflict on the check or the commit: it reads the record and, if it is no
longer this acquisition's, has the lock (or elector) record the loss exactly as on a
refused renewal. These tests drive it with the record made by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mongomock
import pytest

from mongoelector import LeaderElector, Lock, LockLost
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.core.events import LossReason
from mongoelector.fencing import transaction
from mongoelector.monitoring import EventListener, LeadershipLostEvent
from mongoelector.testing import FakeClock
from tests.backends.mongomock_async import AsyncMockCollection


class Losses(EventListener):
    def __init__(self) -> None:
        self.reasons: list[LossReason] = []

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.reasons.append(event.reason)


def record(leases: Any, *, owner: str, token: int, locked: bool = True) -> None:
    leases.replace_one(
        {"_id": "job"}, {"_id": "job", "locked": locked, "uuid": owner, "token": token}, upsert=True
    )


@pytest.fixture
def leases() -> Any:
    return mongomock.MongoClient().app.mongolocker


def test_a_record_taken_over_marks_the_lock_lost_once(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    on_lost: list[int] = []
    losses = Losses()
    lock = Lock(
        "job",
        backend,
        ttl=30,
        clock=clock,
        auto_renew=True,
        on_lost=lambda: on_lost.append(1),
        event_listeners=[losses],
    )
    lock.acquire()
    token = lock.ensure()
    record(leases, owner="other", token=token + 1)
    assert transaction._confirm_loss(lock, leases, token) is True
    assert transaction._confirm_loss(lock, leases, token) is True  # told again: nothing new
    assert lock.lost.is_set()
    assert (on_lost, losses.reasons) == ([1], [LossReason.TAKEN_OVER])
    assert lock.token is None
    with pytest.raises(LockLost, match="no longer ours"):
        lock.ensure()
    clock.advance(lock.renew_deadline)  # the renewer was stopped: no second loss
    assert lock.wait_idle(5)
    assert (on_lost, losses.reasons) == ([1], [LossReason.TAKEN_OVER])


def test_a_record_still_ours_marks_nothing(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    lock = Lock("job", backend, ttl=30, clock=clock)
    lock.acquire()
    token = lock.ensure()
    record(leases, owner=lock.uuid, token=token)  # expired or not: a renew would extend it
    assert transaction._confirm_loss(lock, leases, token) is False
    assert not lock.lost.is_set() and lock.ensure() == token


def test_a_record_of_an_earlier_holding_of_the_lock_marks_nothing_now(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    """A late check of token 1, after the lock was released and acquired again (token 2)."""
    lock = Lock("job", backend, ttl=30, clock=clock)
    lock.acquire()
    lock.release()
    lock.acquire()
    record(leases, owner="other", token=9)
    assert transaction._confirm_loss(lock, leases, 1) is True  # token 1 is lost, indeed ...
    assert not lock.lost.is_set() and lock.ensure() == 2  # ... but token 2 is not touched


def test_an_elector_steps_down_with_on_leader_loss(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    losses: list[int] = []
    elector = LeaderElector(
        "job",
        backend,
        ttl=15,
        clock=clock,
        report_status=False,
        on_leader_loss=lambda: losses.append(1),
    )
    elector.poll()
    token = elector.token
    assert token is not None
    fenced = elector.fenced(mongomock.MongoClient().app.docs)
    record(leases, owner="other", token=token + 1)
    assert transaction._confirm_loss(elector, leases, token) is True
    assert losses == [1]
    assert not elector.is_leader and elector.token is None
    with pytest.raises(LockLost, match="the record is no longer ours"):
        fenced.insert_one({"_id": 1})


async def test_async_a_record_taken_over_marks_the_lock_lost(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    on_lost: list[int] = []
    lock = AsyncLock(
        "job",
        backend,
        ttl=30,
        clock=clock,
        on_lost=lambda: on_lost.append(1),  # type: ignore[arg-type]
    )
    await lock.acquire()
    token = lock.ensure()
    async_leases: Any = AsyncMockCollection(leases)
    record(leases, owner=lock.uuid, token=token)
    assert await transaction._async_confirm_loss(lock, async_leases, token) is False
    assert not lock.lost.is_set()
    record(leases, owner=lock.uuid, token=token, locked=False)  # force-released by someone
    assert await transaction._async_confirm_loss(lock, async_leases, token) is True
    for _ in range(3):
        await asyncio.sleep(0)  # on_lost runs in a task
    assert lock.lost.is_set() and on_lost == [1]
    with pytest.raises(LockLost):
        lock.ensure()


async def test_async_an_elector_steps_down_with_on_leader_loss(
    backend: MemoryBackend, clock: FakeClock, leases: Any
) -> None:
    losses: list[int] = []
    elector = AsyncLeaderElector(
        "job",
        backend,
        ttl=15,
        clock=clock,
        report_status=False,  # type: ignore[arg-type]
        on_leader_loss=lambda: losses.append(1),
    )
    await elector.poll()
    token = elector.token
    assert token is not None
    record(leases, owner="other", token=token + 1)
    assert await transaction._async_confirm_loss(elector, AsyncMockCollection(leases), token)
    assert losses == [1]
    assert not elector.is_leader
