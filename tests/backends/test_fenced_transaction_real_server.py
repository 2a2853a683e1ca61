"""``fenced_transaction`` against a real replica set: set ``MONGOELECTOR_TEST_URI`` to run.

Transactions need a replica set or a sharded cluster; on a standalone these
tests skip with the reason. Each test works in a fresh database, dropped
afterwards.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from mongoelector import LeaderElector, Lock
from mongoelector.aio import AsyncLock
from mongoelector.backends import AsyncMongoBackend, MongoBackend
from mongoelector.errors import LockLost

URI = os.environ.get("MONGOELECTOR_TEST_URI")

pytestmark = pytest.mark.skipif(
    not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB server to run the real-server tests"
)


@pytest.fixture
def client() -> Iterator[pymongo.MongoClient[Any]]:
    assert URI is not None
    mongo: pymongo.MongoClient[Any] = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
    hello = mongo.admin.command("hello")
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        mongo.close()
        pytest.skip("transactions need a replica set or a sharded cluster; this is a standalone")
    yield mongo
    mongo.close()


@pytest.fixture
def database(client: pymongo.MongoClient[Any]) -> Iterator[Any]:
    name = f"mongoelector_test_{uuid.uuid4().hex[:12]}"
    database = client[name]
    database.create_collection("orders")  # not created inside the transaction (4.2)
    yield database
    client.drop_database(name)


def test_the_writes_commit_while_the_lock_is_held(client: Any, database: Any) -> None:
    lock = Lock("job", MongoBackend(database), ttl=10)
    lock.acquire()
    with lock.fenced_transaction(client) as session:
        database.orders.insert_one({"_id": 1}, session=session)
        database.orders.insert_one({"_id": 2}, session=session)
        assert database.orders.count_documents({}) == 0  # not visible outside yet
    assert sorted(d["_id"] for d in database.orders.find()) == [1, 2]
    assert database.mongolocker.find_one({"_id": "job"})["fenced_commits"] == 1
    lock.release()


def test_a_takeover_during_the_transaction_makes_it_fail_and_nothing_is_visible(
    client: Any, database: Any
) -> None:
    lock = Lock("job", MongoBackend(database), ttl=10)
    lock.acquire()
    other = Lock("job", MongoBackend(database), ttl=10)
    with (
        pytest.raises(LockLost, match="the holding is lost"),
        lock.fenced_transaction(client) as session,
    ):
        database.orders.insert_one({"_id": 1}, session=session)
        assert other.acquire(force=True)  # a takeover, committed at once
    assert database.orders.count_documents({}) == 0
    assert database.mongolocker.find_one({"_id": "job"})["uuid"] == other.uuid
    # The holder knows it, as after a refused renewal.
    assert lock.lost.is_set() and lock.token is None
    other.release()


def test_a_lease_expired_by_the_server_clock_makes_it_fail(client: Any, database: Any) -> None:
    lock = Lock("job", MongoBackend(database), ttl=1)
    lock.acquire()
    with (
        pytest.raises(LockLost, match="expired"),
        lock.fenced_transaction(client) as session,
    ):
        database.orders.insert_one({"_id": 1}, session=session)
        time.sleep(1.3)  # past ts_expire; nobody took over
    assert database.orders.count_documents({}) == 0
    # The record is still this acquisition's: the check marks no loss (a renew would extend
    # it); the lock's own renew deadline has passed, which ensure() reports.
    with pytest.raises(LockLost, match="renew deadline"):
        lock.ensure()


def test_a_leader_commits_by_its_term(client: Any, database: Any) -> None:
    elector = LeaderElector("job", MongoBackend(database), ttl=10, report_status=False)
    elector.poll()
    assert elector.is_leader
    with elector.fenced_transaction(client) as session:
        database.orders.insert_one({"_id": 1}, session=session)
    assert database.orders.count_documents({}) == 1
    elector.release()


def test_an_async_takeover_makes_the_commit_fail(database: Any) -> None:
    assert URI is not None
    name = database.name

    async def scenario() -> None:
        client: pymongo.AsyncMongoClient[Any] = pymongo.AsyncMongoClient(
            URI, serverSelectionTimeoutMS=5000
        )
        try:
            adb = client[name]
            lock = AsyncLock("job", AsyncMongoBackend(adb), ttl=10)
            await lock.acquire()
            async with lock.fenced_transaction(client) as session:
                await adb.orders.insert_one({"_id": 1}, session=session)
            assert await adb.orders.count_documents({}) == 1
            other = AsyncLock("job", AsyncMongoBackend(adb), ttl=10)
            with pytest.raises(LockLost):
                async with lock.fenced_transaction(client) as session:
                    await adb.orders.insert_one({"_id": 2}, session=session)
                    assert await other.acquire(force=True)
            assert await adb.orders.count_documents({}) == 1
            assert lock.lost.is_set() and lock.token is None
            await other.release()
        finally:
            await client.close()

    asyncio.run(scenario())
