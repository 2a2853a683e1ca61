"""Cancellation on the wire: AsyncMongoBackend and AsyncLock against mockupdb.

The commands and failure cases (and the holders on top) run on both backends
in ``test_mongo_wire.py``; here is what only asyncio has: a call cancelled
while its request is in flight. The client's event loop runs in a thread
(``loop``); the test thread scripts the server's replies meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

import pytest
from mockupdb import going

from mongoelector.aio import AsyncLock
from mongoelector.backends import AsyncMongoBackend, LeaseRequest
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.testing.aio import BlockingBackend, EventLoopThread, settle
from tests.backends.mongo_wire_support import (
    REQUEST,
    Primary,
    acquire_id_of,
    answer_acquire,
    lease_document,
    make_async_backend,
    warm_up,
)

GUARD = 10.0  # real seconds: a hang guard, never reached when things work


@pytest.fixture
def backend(primary: Primary) -> AsyncMongoBackend:
    return make_async_backend(primary, retryWrites=False)


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


@pytest.mark.parametrize("retry_writes", [False, True], ids=["retryWrites=false", "retryWrites"])
def test_a_cancelled_acquire_whose_write_lands_after_the_read_is_still_released(
    primary: Primary, loop: EventLoopThread, retry_writes: bool
) -> None:
    """Issue 13, item 3: the clean-up read finds nothing yet; the write lands later; the
    next release() reads again and frees it (it is remembered, not forgotten)."""
    backend = make_async_backend(primary, retryWrites=retry_writes)
    lock = AsyncLock("job", backend, ttl=10, clock=backend.clock)
    warm_up(primary, BlockingBackend(backend, loop))
    acquiring = start(loop, lock.acquire())
    write = primary.receives("findAndModify")  # in flight
    cancel_once_waiting(loop, acquiring)
    primary.receives("find").ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})
    with pytest.raises(concurrent.futures.CancelledError):
        acquiring.result(GUARD)
    loop.run(settle())  # the cancelled task's clean-up has finished
    # Now the write lands: the store holds a lease of this lock that nobody trusts.
    landed = lease_document(owner=lock.uuid, token=8, acquire_id=acquire_id_of(write))
    releasing = start(loop, lock.release())
    primary.receives("find").ok(cursor={"id": 0, "firstBatch": [landed], "ns": "app.mongolocker"})
    release = primary.receives("findAndModify")
    assert release["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 8}
    release.ok(value=landed)
    assert releasing.result(GUARD) is True
    assert primary.idle()


# --- the one-write fast path on pymongo's AsyncCollection ------------------------------------


def pair_on_the_wire(
    primary: Primary, backend: AsyncMongoBackend, loop: EventLoopThread, monkeypatch: Any
) -> tuple[int, list[dict[str, Any]]]:
    """(plans run, the commands sent) by an uncontended acquire and its release."""
    plans = [0]
    run = AsyncMongoBackend._run

    async def counted(self: AsyncMongoBackend, plan: Any) -> Any:
        plans[0] += 1
        return await run(self, plan)

    blocking = BlockingBackend(backend, loop)
    warm_up(primary, blocking)
    monkeypatch.setattr(AsyncMongoBackend, "_run", counted)
    request = LeaseRequest(key="job", owner="me", ttl=10, host="h", pid=7, acquisition="same")
    sent = []
    with going(blocking.compare_and_set, request) as acquired:
        write = primary.receives("findAndModify")
        sent.append(write.doc)
        answer_acquire(write)
    assert acquired().acquired
    with going(blocking.release, "job", "me", token=5) as released:
        write = primary.receives("findAndModify")
        sent.append(write.doc)
        write.ok(value=lease_document(acquire_id="same"))
    released()
    assert primary.idle()
    kept = ("findAndModify", "query", "update", "upsert", "new", "writeConcern")
    return plans[0], [
        {**{k: _any_release_id(doc[k]) for k in kept if k in doc}, "bounded": "maxTimeMS" in doc}
        for doc in sent
    ]


def _any_release_id(value: Any) -> Any:
    """``value`` with the release id (new per release call) in it replaced by one marker."""
    if isinstance(value, Mapping):
        return {
            k: "<release id>" if k == "released_by" else _any_release_id(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_any_release_id(v) for v in value]
    return value


def test_the_fast_path_runs_no_plan_and_sends_what_the_plan_sends(
    primary: Primary, loop: EventLoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans, fast = pair_on_the_wire(primary, make_async_backend(primary), loop, monkeypatch)
    assert plans == 0
    assert all(command["bounded"] for command in fast)  # under pymongo.timeout
    monkeypatch.setattr(MongoOperations, "quick_acquire", lambda self, request, force: None)
    monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)
    plans, planned = pair_on_the_wire(primary, make_async_backend(primary), loop, monkeypatch)
    assert plans == 2  # the count sees the plan path
    assert planned == fast
