"""AsyncMongoBackend against a real MongoDB server: set ``MONGOELECTOR_TEST_URI`` to run.

The scenarios of ``test_mongo_real_server.py``, on ``AsyncMongoClient``: the
server-side pipelines (which mongomock cannot run), in real time with short
leases, then AsyncLock and AsyncLeaderElector on top. Each test works in a
fresh database that is dropped afterwards. The conformance suite also runs on
the server for this backend (``test_mongo_conformance.py``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymongo
import pytest

from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import AsyncMongoBackend, LeaseRequest
from mongoelector.clock import SystemClock
from tests.backends.mongo_support import LegacyNode

URI = os.environ.get("MONGOELECTOR_TEST_URI")

pytestmark = pytest.mark.skipif(
    not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB server to run the real-server tests"
)

TTL = 1.0


def connect() -> pymongo.AsyncMongoClient[Any]:
    assert URI is not None
    return pymongo.AsyncMongoClient(URI, serverSelectionTimeoutMS=5000)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[Any]:
    """A new database on the server, dropped (and the client closed) afterwards."""
    client = connect()
    name = f"mongoelector_test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def ask(owner: str, ttl: float = TTL) -> LeaseRequest:
    return LeaseRequest(key="job", owner=owner, ttl=ttl)


async def test_a_modern_server_gets_pipelines_and_tells_its_time() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        estimate = await backend.time_estimate()
        assert backend.uses_pipeline is True
        assert abs((estimate.time - SystemClock().now()).total_seconds()) < 5
        assert estimate.uncertainty < 1


async def test_acquire_refuse_expire_take_over() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        first = await backend.compare_and_set(ask("a"))
        assert first.acquired
        assert not (await backend.compare_and_set(ask("b"))).acquired
        assert not (await backend.compare_and_set(ask("a"))).acquired, "the holder is refused"
        await asyncio.sleep(TTL + 0.2)
        second = await backend.compare_and_set(ask("b"))
        assert second.acquired
        assert second.record.token > first.record.token
        assert await backend.renew("job", "a", first.record.token, TTL) is None


async def test_renew_release_force() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        record = (await backend.compare_and_set(ask("a", ttl=5))).record
        renewed = await backend.renew("job", "a", record.token, 5)
        assert renewed is not None and renewed.expires_at >= record.expires_at
        forced = await backend.compare_and_set(ask("b", ttl=5), force=True)
        assert forced.acquired and forced.record.token > record.token
        assert await backend.release("job", "a", token=record.token) is False
        assert await backend.release("job", "b", token=forced.record.token) is True
        released = await backend.get("job")
        assert released is not None and released.owner is None
        again = await backend.compare_and_set(ask("c", ttl=5))
        assert again.record.token > forced.record.token


async def test_tokens_grow_across_deletions_and_processes() -> None:
    async with fresh_database() as database:
        tokens = []
        for round_number in range(3):
            backend = AsyncMongoBackend(database)
            result = await backend.compare_and_set(ask(f"owner-{round_number}"))
            assert result.acquired
            tokens.append(result.record.token)
            await database["mongolocker"].delete_one({"_id": "job"})
            await asyncio.sleep(0.002)
        assert tokens == sorted(set(tokens))


async def test_operator_lookalikes_are_stored_as_text() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        request = LeaseRequest(
            key="$job", owner="$$ROOT", ttl=5, host="$host", metadata={"k": "$x"}
        )
        assert (await backend.compare_and_set(request)).acquired
        document = await database["mongolocker"].find_one({"_id": "$job"})
        assert (document["uuid"], document["host"], document["metadata"]) == (
            "$$ROOT",
            "$host",
            {"k": "$x"},
        )


async def test_1x_and_2x_nodes_never_both_hold() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        await backend.get("job")  # creates the 1.x TTL index, as a 1.x node would
        assert URI is not None
        with pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000) as sync_client:
            collection = sync_client[database.name]["mongolocker"]
            legacy = LegacyNode(collection, "job", SystemClock(), ttl=TTL)  # type: ignore[arg-type]
            assert legacy.acquire()
            assert not (await backend.compare_and_set(ask("new"))).acquired
            await asyncio.sleep(TTL + 0.2)
            taken = await backend.compare_and_set(ask("new", ttl=5))
            assert taken.acquired
            assert not legacy.acquire()
            assert not legacy.owned()
            assert legacy.locked()
            assert await backend.release("job", "new", token=taken.record.token)
            assert not legacy.locked()


async def test_a_conflicting_1x_index_is_left_alone() -> None:
    async with fresh_database() as database:
        await database["mongolocker"].create_index("ts_expire", expireAfterSeconds=30)
        await database["mongolocker"].create_index("user_field")
        backend = AsyncMongoBackend(database)
        assert (await backend.compare_and_set(ask("a"))).acquired
        indexes = await database["mongolocker"].index_information()
        assert indexes["ts_expire_1"]["expireAfterSeconds"] == 30
        assert "user_field_1" in indexes


async def test_async_lock_with_auto_renew_and_async_elector() -> None:
    async with fresh_database() as database:
        backend = AsyncMongoBackend(database)
        async with AsyncLock("job", backend, ttl=TTL, auto_renew=True) as lock:
            token = lock.ensure()
            await asyncio.sleep(3 * TTL)
            assert lock.ensure() == token
            assert await lock.owned()
        elector = AsyncLeaderElector("svc", backend, ttl=3)
        async with elector:
            assert elector.is_leader
            detail = await elector.cluster_detail()
            assert detail["leader"]["uuid"] == elector.uuid
        assert not await AsyncLock("svc", backend).locked()
