"""A MongoDB database passed straight in, as 1.x took it, is a store with default settings.

``Lock("k", db)`` and ``LeaderElector("k", db)`` wrap a sync pymongo (or
mongomock) ``Database`` in ``MongoBackend(db, clock=clock)``; ``AsyncLock`` and
``AsyncLeaderElector`` wrap an ``AsyncDatabase`` in ``AsyncMongoBackend``. A
database of the wrong kind, a client and any other object are refused at
construction with a ``TypeError`` that says what is wrong.
"""

from __future__ import annotations

from typing import Any

import mongomock
import pymongo
import pytest

from mongoelector import LeaderElector, Lock
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import AsyncMongoBackend, MongoBackend
from mongoelector.testing import FakeClock
from tests.backends.mongomock_async import AsyncMockDatabase


@pytest.fixture
def db() -> Any:
    return mongomock.MongoClient(tz_aware=True)["app"]


def test_a_lock_on_a_database_works_as_on_a_mongo_backend_with_its_defaults(
    db: Any, clock: FakeClock
) -> None:
    lock = Lock("nightly", db, clock=clock)
    assert isinstance(lock.backend, MongoBackend)
    assert lock.backend.database is db
    assert lock.backend.clock is clock
    assert lock.acquire(blocking=False)
    assert lock.token is not None
    assert db["mongolocker"].find_one({"_id": "nightly"})["uuid"] == lock.uuid
    assert lock.release()


def test_a_second_lock_on_the_same_database_sees_the_first_holder(
    db: Any, clock: FakeClock
) -> None:
    first = Lock("nightly", db, clock=clock)
    second = Lock("nightly", db, clock=clock)
    assert first.acquire(blocking=False)
    assert second.locked()
    assert not second.owned()


def test_an_elector_on_a_database_leads(db: Any, clock: FakeClock) -> None:
    elector = LeaderElector("scheduler", db, clock=clock)
    assert isinstance(elector.backend, MongoBackend)
    elector.poll()
    assert elector.is_leader
    assert db["mongolocker"].find_one({"_id": "scheduler"})["uuid"] == elector.uuid
    elector.stop()


async def test_an_async_lock_on_an_async_database_works(db: Any, clock: FakeClock) -> None:
    lock = AsyncLock("nightly", AsyncMockDatabase(db), clock=clock)
    assert isinstance(lock.backend, AsyncMongoBackend)
    assert await lock.acquire(blocking=False)
    assert lock.token is not None
    assert await lock.release()


async def test_an_async_elector_on_an_async_database_leads(db: Any, clock: FakeClock) -> None:
    elector = AsyncLeaderElector("scheduler", AsyncMockDatabase(db), clock=clock)
    assert isinstance(elector.backend, AsyncMongoBackend)
    await elector.poll()
    assert elector.is_leader
    await elector.stop()


def test_an_async_lock_refuses_a_sync_database_that_would_block_the_loop(db: Any) -> None:
    with pytest.raises(TypeError, match="block the event loop"):
        AsyncLock("k", db)
    with pytest.raises(TypeError, match="block the event loop"):
        AsyncLeaderElector("k", db)


def test_a_sync_lock_refuses_an_async_database_naming_the_async_classes(db: Any) -> None:
    with pytest.raises(TypeError, match="AsyncLock"):
        Lock("k", AsyncMockDatabase(db))
    with pytest.raises(TypeError, match="AsyncLeaderElector"):
        LeaderElector("k", AsyncMockDatabase(db))


def test_a_client_is_refused_naming_the_missing_methods_and_what_to_pass() -> None:
    client = mongomock.MongoClient()
    with pytest.raises(TypeError) as refused:
        Lock("k", client)
    assert "compare_and_set" in str(refused.value)
    assert "client['app']" in str(refused.value)


@pytest.mark.parametrize("make", [Lock, LeaderElector, AsyncLock, AsyncLeaderElector])
def test_anything_else_is_refused_naming_the_missing_methods(make: Any) -> None:
    with pytest.raises(TypeError, match="missing: server_time, compare_and_set"):
        make("k", object())


def test_pymongo_databases_are_recognised_without_connecting() -> None:
    client = pymongo.MongoClient("mongodb://localhost:1", connect=False)
    async_client = pymongo.AsyncMongoClient("mongodb://localhost:1", connect=False)
    try:
        assert isinstance(Lock("k", client["app"]).backend, MongoBackend)
        assert isinstance(LeaderElector("k", client["app"]).backend, MongoBackend)
        assert isinstance(AsyncLock("k", async_client["app"]).backend, AsyncMongoBackend)
        with pytest.raises(TypeError, match="AsyncLock"):
            Lock("k", async_client["app"])
        with pytest.raises(TypeError, match="block the event loop"):
            AsyncLock("k", client["app"])
        with pytest.raises(TypeError, match=r"client\['app'\]"):
            Lock("k", client)
    finally:
        client.close()
