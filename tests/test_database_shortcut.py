"""A MongoDB database passed straight in, as 1.x took it, is a store with default settings.

``Lock("k", db)`` and ``LeaderElector("k", db)`` wrap a sync pymongo (or
mongomock) ``Database`` in ``MongoBackend(db, clock=clock)``; ``AsyncLock`` and
``AsyncLeaderElector`` wrap an ``AsyncDatabase`` in ``AsyncMongoBackend``. A
database of the wrong kind, a client and any other object are refused at
construction with a ``TypeError`` that says what is wrong.
"""

from __future__ import annotations

import gc
import weakref
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


class TestOneBackendPerDatabase:
    """Locks and electors given one database share one backend, so they renew together."""

    def test_locks_and_electors_on_one_database_and_clock_share_its_backend(
        self, db: Any, clock: FakeClock
    ) -> None:
        locks = [Lock(f"job-{i}", db, clock=clock) for i in range(3)]
        elector = LeaderElector("scheduler", db, clock=clock)
        assert {id(holder.backend) for holder in (*locks, elector)} == {id(locks[0].backend)}

    def test_another_clock_or_database_gets_its_own(self, db: Any, clock: FakeClock) -> None:
        other_db = mongomock.MongoClient(tz_aware=True)["other"]
        first = Lock("job", db, clock=clock)
        assert Lock("job", db, clock=FakeClock()).backend is not first.backend
        assert Lock("job", other_db, clock=clock).backend is not first.backend
        assert Lock("job", db).backend is not first.backend  # the system clock

    def test_auto_renewed_locks_on_one_database_renew_in_one_call(
        self, db: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        renew_many = MongoBackend.renew_many

        def counted(backend: MongoBackend, items: Any) -> Any:
            calls.append(len(items))
            return renew_many(backend, items)

        monkeypatch.setattr(MongoBackend, "renew_many", counted)
        locks = [Lock(f"job-{i}", db, clock=clock, auto_renew=True, ttl=15) for i in range(5)]
        for lock in locks:
            assert lock.acquire(blocking=False)
        for _ in range(4):  # two renew intervals, a second at a time
            clock.advance(1.0)
            for lock in locks:
                assert lock.wait_idle(30)
        assert calls and set(calls) == {5}, calls  # the five holdings, together
        for lock in locks:
            assert lock.release()

    def test_a_backend_no_lock_uses_is_not_kept(self, db: Any, clock: FakeClock) -> None:
        backend = Lock("job", db, clock=clock).backend
        ref = weakref.ref(backend)
        del backend
        gc.collect()
        assert ref() is None

    async def test_async_locks_on_one_async_database_share_its_backend(
        self, clock: FakeClock
    ) -> None:
        adb = AsyncMockDatabase(mongomock.MongoClient(tz_aware=True)["app"])
        first, second = AsyncLock("a", adb, clock=clock), AsyncLock("b", adb, clock=clock)
        assert isinstance(first.backend, AsyncMongoBackend)
        assert first.backend is second.backend


def test_mutation_a_backend_per_lock_renews_key_by_key(
    db: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mongoelector._common import stores

    monkeypatch.setattr(
        stores, "_shared", lambda database, clock, make: make(database, clock=clock)
    )
    with pytest.raises(AssertionError):
        TestOneBackendPerDatabase().test_auto_renewed_locks_on_one_database_renew_in_one_call(
            db, clock, monkeypatch
        )
