"""AsyncFencedCollection: the same fencing, awaited, over mongomock behind the async facade."""

from __future__ import annotations

from typing import Any

import mongomock
import pymongo.results
import pytest
from pymongo import DeleteMany, InsertOne, UpdateMany

from mongoelector import LockLost, NotLeader, StaleToken
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.backends.mongomock_async import AsyncMockCollection


def collection() -> tuple[Any, AsyncMockCollection]:
    docs = mongomock.MongoClient().db.docs
    docs.insert_many(
        [
            {"_id": "old", "kind": "a", "n": 0, "_fence": 1},
            {"_id": "new", "kind": "a", "n": 0, "_fence": 9},
        ]
    )
    return docs, AsyncMockCollection(docs)


async def held(backend: MemoryBackend, clock: FakeClock) -> AsyncLock:
    lock = AsyncLock("job", backend, ttl=30, clock=clock)  # type: ignore[arg-type]
    await lock.acquire()
    return lock


async def test_single_writes_stamp_older_and_refuse_newer(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    docs, async_docs = collection()
    fenced: Any = (await held(backend, clock)).fenced(async_docs)  # type: ignore[arg-type]
    assert (await fenced.update_one({"_id": "old"}, {"$inc": {"n": 1}})).modified_count == 1
    assert docs.find_one({"_id": "old"}) == {"_id": "old", "kind": "a", "n": 1, "_fence": 1}
    await fenced.replace_one({"_id": "old"}, {"kind": "b"})
    assert docs.find_one({"_id": "old"}) == {"_id": "old", "kind": "b", "_fence": 1}
    with pytest.raises(StaleToken) as caught:
        await fenced.update_one({"_id": "new"}, {"$set": {"n": 1}}, upsert=True)
    assert (caught.value.token, caught.value.newer_token, caught.value.document_id) == (
        1,
        9,
        "new",
    )
    for write in (
        fenced.replace_one({"_id": "new"}, {"n": 1}),
        fenced.delete_one({"_id": "new"}),
        fenced.find_one_and_update({"_id": "new"}, {"$set": {"n": 1}}),
        fenced.find_one_and_replace({"_id": "new"}, {"n": 1}),
        fenced.find_one_and_delete({"_id": "new"}),
        fenced.insert_one({"_id": "new"}),
    ):
        with pytest.raises(StaleToken):
            await write
    assert docs.find_one({"_id": "new"}) == {"_id": "new", "kind": "a", "n": 0, "_fence": 9}
    assert docs.count_documents({}) == 2


async def test_many_writes_skip_and_count(backend: MemoryBackend, clock: FakeClock) -> None:
    docs, async_docs = collection()
    lock = await held(backend, clock)
    await lock.release()
    await lock.acquire()  # token 2
    fenced: Any = lock.fenced(async_docs)  # type: ignore[arg-type]
    await fenced.insert_many([{"_id": "x", "kind": "a"}])
    updated = await fenced.update_many({"kind": "a"}, {"$set": {"n": 5}})
    assert isinstance(updated, pymongo.results.UpdateResult)
    assert (updated.modified_count, updated.skipped) == (2, 1)
    bulk = await fenced.bulk_write([InsertOne({"_id": "y"}), UpdateMany({}, {"$inc": {"n": 1}})])
    assert (bulk.inserted_count, bulk.modified_count, bulk.skipped) == (1, 3, 1)
    deleted = await fenced.delete_many({})
    assert (deleted.deleted_count, deleted.skipped) == (3, 1)
    assert [d["_id"] for d in docs.find()] == ["new"]
    assert await fenced.find_one({"_id": "new"}) == docs.find_one({"_id": "new"})
    assert await fenced.count_documents({}) == 1


async def test_lock_lost_before_anything_is_sent(backend: MemoryBackend, clock: FakeClock) -> None:
    _, async_docs = collection()
    lock = await held(backend, clock)
    fenced: Any = lock.fenced(async_docs)  # type: ignore[arg-type]
    clock.advance(lock.renew_deadline)
    async_docs.inner = None  # any call to the collection would fail with AttributeError
    for write in (
        fenced.update_one({"_id": "old"}, {"$set": {"n": 1}}),
        fenced.bulk_write([DeleteMany({})]),
        fenced.insert_one({}),
    ):
        with pytest.raises(LockLost):
            await write


async def test_an_async_elector_fences_with_its_term(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    docs, async_docs = collection()
    elector = AsyncLeaderElector(
        "jobs",
        backend,  # type: ignore[arg-type]
        ttl=15,
        clock=clock,
        report_status=False,
    )
    with pytest.raises(NotLeader):
        elector.fenced(async_docs)  # type: ignore[arg-type]
    await elector.poll()
    fenced: Any = elector.fenced(async_docs)  # type: ignore[arg-type]
    await fenced.update_one({"_id": "old"}, {"$set": {"n": 1}})
    assert docs.find_one({"_id": "old"})["_fence"] == 1
    clock.advance(elector.timing.renew_deadline)
    with pytest.raises(LockLost):
        await fenced.update_one({"_id": "old"}, {"$set": {"n": 2}})
