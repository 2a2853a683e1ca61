"""FencedCollection on a real MongoDB server: set ``MONGOELECTOR_TEST_URI`` to run.

The per-document fence is one command per write; these check that a real
server evaluates it as mongomock does: older and unfenced documents are
stamped, a newer one refuses a single-document write without change, an
upsert never creates a second document (nor one inside a bulk, where it is
``StaleToken`` from the server's duplicate-key ``BulkWriteError``), and
many-document writes skip newer documents and count them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo import DeleteOne, UpdateOne
from pymongo.errors import BulkWriteError

from mongoelector import Lock, StaleToken
from mongoelector.aio import AsyncLock
from mongoelector.backends import AsyncMongoBackend, MongoBackend

URI = os.environ.get("MONGOELECTOR_TEST_URI")

pytestmark = pytest.mark.skipif(
    not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB server to run the real-server tests"
)


@pytest.fixture
def database() -> Iterator[Any]:
    assert URI is not None
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
    name = f"mongoelector_fenced_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def setup(database: Any) -> tuple[Lock, Any, int]:
    """A held lock; documents fenced below it ("old"), above it ("new"), and not at all."""
    lock = Lock("job", MongoBackend(database), ttl=30)
    lock.acquire(blocking=False)
    token = lock.ensure()
    docs = database["docs"]
    docs.insert_many(
        [
            {"_id": "old", "kind": "a", "n": 0, "_fence": token - 1},
            {"_id": "new", "kind": "a", "n": 0, "_fence": token + 1},
            {"_id": "bare", "kind": "b", "n": 0},
        ]
    )
    return lock, docs, token


def test_single_document_writes_are_fenced(setup: tuple[Lock, Any, int]) -> None:
    lock, docs, token = setup
    fenced = lock.fenced(docs)
    assert fenced.update_one({"_id": "old"}, {"$inc": {"n": 1}}).modified_count == 1
    assert docs.find_one({"_id": "old"})["_fence"] == token
    with pytest.raises(StaleToken):
        fenced.update_one({"_id": "new"}, {"$inc": {"n": 1}})
    assert docs.find_one({"_id": "new"})["n"] == 0
    lock.release()


def test_an_upsert_meeting_a_newer_document_creates_no_second_one(
    setup: tuple[Lock, Any, int],
) -> None:
    lock, docs, _ = setup
    with pytest.raises(StaleToken):
        lock.fenced(docs).update_one({"_id": "new"}, {"$set": {"n": 7}}, upsert=True)
    assert docs.count_documents({"_id": "new"}) == 1
    assert docs.find_one({"_id": "new"})["n"] == 0
    lock.release()


def test_many_document_writes_skip_newer_documents_and_count_them(
    setup: tuple[Lock, Any, int],
) -> None:
    lock, docs, token = setup
    result = lock.fenced(docs).update_many({}, {"$inc": {"n": 1}})
    assert result.modified_count == 2 and result.skipped == 1
    assert {d["_id"]: d.get("_fence") for d in docs.find()} == {
        "old": token,
        "new": token + 1,
        "bare": token,
    }
    lock.release()


def test_a_bulk_upsert_meeting_a_newer_document_raises_stale_token(
    setup: tuple[Lock, Any, int],
) -> None:
    lock, docs, token = setup
    with pytest.raises(StaleToken) as caught:
        lock.fenced(docs).bulk_write(
            [
                UpdateOne({"_id": "old"}, {"$inc": {"n": 1}}),
                UpdateOne({"_id": "new"}, {"$set": {"n": 7}}, upsert=True),
                DeleteOne({"_id": "bare"}),
            ]
        )
    error = caught.value
    assert (error.document_id, error.token, error.newer_token) == ("new", token, token + 1)
    assert isinstance(error.__cause__, BulkWriteError)
    assert error.details is not None and error.details["nModified"] == 1
    assert {d["_id"]: (d["n"], d.get("_fence")) for d in docs.find()} == {
        "old": (1, token),  # applied before the refused upsert
        "new": (0, token + 1),  # unchanged, and no second document
        "bare": (0, None),  # ordered: not sent
    }
    lock.release()


def test_async_writes_are_fenced_as_the_sync_ones(database: Any) -> None:
    """AsyncFencedCollection over pymongo's own AsyncCollection (mongomock has none)."""
    assert URI is not None
    name = database.name

    async def scenario() -> None:
        client: pymongo.AsyncMongoClient[Any] = pymongo.AsyncMongoClient(
            URI, serverSelectionTimeoutMS=5000
        )
        try:
            adb = client[name]
            lock = AsyncLock("job", AsyncMongoBackend(adb), ttl=30)
            await lock.acquire(blocking=False)
            token = lock.ensure()
            await adb.docs.insert_many(
                [
                    {"_id": "old", "n": 0, "_fence": token - 1},
                    {"_id": "new", "n": 0, "_fence": token + 1},
                ]
            )
            fenced = lock.fenced(adb.docs)
            assert (await fenced.update_one({"_id": "old"}, {"$inc": {"n": 1}})).modified_count == 1
            with pytest.raises(StaleToken):
                await fenced.update_one({"_id": "new"}, {"$set": {"n": 7}}, upsert=True)
            with pytest.raises(StaleToken) as caught:
                await fenced.bulk_write(
                    [UpdateOne({"_id": "new"}, {"$set": {"n": 7}}, upsert=True)]
                )
            assert isinstance(caught.value.__cause__, BulkWriteError)
            assert await adb.docs.count_documents({"_id": "new", "n": 0}) == 1
            assert (await adb.docs.find_one({"_id": "old"}))["_fence"] == token
            await lock.release()
        finally:
            await client.close()

    asyncio.run(scenario())
