"""AsyncLock, AsyncLeaderElector and cancellation on AsyncMongoBackend, on the wire (mockupdb).

The commands and failure cases of the backend itself run on both backends in
``test_mongo_wire.py``; here are the asyncio holders on top of it, mirroring
that module's sync holders, and what a cancelled call does on the wire. The
client's event loop runs in a thread (``loop``); the test thread scripts the
server's replies meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from mockupdb import going

from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import AsyncMongoBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread, settle
from tests.backends.mongo_wire_support import (
    REQUEST,
    Primary,
    answer_acquire,
    hang_up_on,
    lease_document,
    make_async_backend,
    warm_up,
)

GUARD = 10.0  # real seconds: a hang guard, never reached when things work


@pytest.fixture
def backend(primary: Primary) -> AsyncMongoBackend:
    return make_async_backend(primary, retryWrites=False)


def fake_clock(backend: AsyncMongoBackend) -> FakeClock:
    clock = backend.clock
    assert isinstance(clock, FakeClock)
    return clock


def start(loop: EventLoopThread, coroutine: Any) -> concurrent.futures.Future[Any]:
    """Run ``coroutine`` as a task on ``loop``; its future can be cancelled from this thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop.loop)


def cancel_once_waiting(loop: EventLoopThread, call: concurrent.futures.Future[Any]) -> None:
    """Cancel ``call`` once the request the server just received is fully sent.

    The loop first runs until every task waits again, so the cancellation
    reaches the client waiting for the reply. (Sent while pymongo still
    finishes the send, on Python 3.11, ``asyncio.wait_for`` may swallow it.)
    """
    loop.run(settle())
    call.cancel()


def test_an_async_leader_that_cannot_renew_steps_down_at_its_deadline(
    primary: Primary, backend: AsyncMongoBackend, loop: EventLoopThread
) -> None:
    clock = fake_clock(backend)
    losses: list[str] = []
    elector = AsyncLeaderElector(
        "job", backend, clock=clock, report_status=False, on_leader_loss=lambda: losses.append("x")
    )
    with going(loop.run, elector.poll()):
        answer_acquire(primary.receives("findAndModify"))
    assert elector.is_leader
    started = clock.monotonic()
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    while clock.monotonic() < started + elector.renew_deadline:
        clock.advance(elector.retry_period)
        loop.run(elector.poll(), GUARD)
        if clock.monotonic() >= started + elector.renew_deadline:
            break
        assert elector.is_leader
    assert not elector.is_leader
    assert elector.token is None
    loop.run(elector.poll(), GUARD)
    primary.server.cancel_responder(responder)
    assert losses == ["x"]


def test_an_async_lock_whose_acquire_replies_were_lost_confirms_by_reading(
    primary: Primary, backend: AsyncMongoBackend, loop: EventLoopThread
) -> None:
    lock = AsyncLock("job", backend, ttl=10, clock=backend.clock)
    warm_up(primary, BlockingBackend(backend, loop))
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    with going(loop.run, lock.acquire(blocking=False)) as acquired:
        # Every acquire attempt lost its connection; the lock reads to find out.
        find = primary.receives("find")
        primary.server.cancel_responder(responder)
        mine = lease_document(owner=lock.uuid, token=5)
        find.ok(cursor={"id": 0, "firstBatch": [mine], "ns": "app.mongolocker"})
        # It was applied: the lock renews it before trusting it.
        renew = primary.receives("findAndModify")
        assert renew["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        renew.ok(value=mine)
    assert acquired() is True
    assert lock.token == 5


def test_a_cancelled_call_propagates_at_once_and_is_not_sent_again(
    primary: Primary, backend: AsyncMongoBackend, loop: EventLoopThread
) -> None:
    warm_up(primary, BlockingBackend(backend, loop))
    call = start(loop, backend.compare_and_set(REQUEST))
    primary.receives("findAndModify")  # in flight, never answered
    cancel_once_waiting(loop, call)
    with pytest.raises(concurrent.futures.CancelledError):
        call.result(GUARD)
    assert primary.idle()


def test_an_async_lock_cancelled_mid_acquire_frees_what_it_may_have_taken(
    primary: Primary, backend: AsyncMongoBackend, loop: EventLoopThread
) -> None:
    lock = AsyncLock("job", backend, ttl=10, clock=backend.clock)
    warm_up(primary, BlockingBackend(backend, loop))
    acquiring = start(loop, lock.acquire())
    primary.receives("findAndModify")  # in flight, never answered
    cancel_once_waiting(loop, acquiring)
    # The write may have landed: the lock reads the record and releases its own token.
    mine = lease_document(owner=lock.uuid, token=8)
    primary.receives("find").ok(cursor={"id": 0, "firstBatch": [mine], "ns": "app.mongolocker"})
    release = primary.receives("findAndModify")
    assert release["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 8}
    assert release["new"] is False
    release.ok(value=mine)
    with pytest.raises(concurrent.futures.CancelledError):
        acquiring.result(GUARD)
    assert lock.token is None
    assert primary.idle()
