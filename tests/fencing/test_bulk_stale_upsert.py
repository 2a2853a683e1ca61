"""A fenced ``bulk_write`` whose upsert meets a newer document raises ``StaleToken`` (mongomock).

The server refuses such an upsert with a duplicate key (its fenced filter did
not match the newer document, so it tried to insert a second one under the
same ``_id``); pymongo raises that as ``BulkWriteError``. The wrapper reads the
document, and only when it carries a newer token raises ``StaleToken`` from
the ``BulkWriteError``, with its ``details``: the statements before the
refused upsert (all the others, unordered) did apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mongomock
import mongomock.collection
import pytest
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

from mongoelector import Lock, StaleToken
from mongoelector.aio import AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.fencing._plan import Fence
from mongoelector.testing import FakeClock
from tests.backends.mongomock_async import AsyncMockCollection


@pytest.fixture(autouse=True)
def mongomock_takes_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """pymongo >= 4.9 passes ``sort=`` to a bulk's UpdateOne/ReplaceOne; mongomock 4.3 does not
    take it. Dropped here when it is ``None`` (it always is in these tests)."""
    builder: Any = mongomock.collection.BulkOperationBuilder
    for name in ("add_update", "add_replace"):
        original = getattr(builder, name)

        def without_sort(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            assert kwargs.pop("sort", None) is None
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(builder, name, without_sort)


@pytest.fixture
def lock(backend: MemoryBackend, clock: FakeClock) -> Lock:
    Lock("job", backend, ttl=30, clock=clock).acquire()
    holder = Lock("job", backend, ttl=30, clock=clock)
    holder.acquire(force=True)  # token 2: "old" carries 1, "new" carries 9
    return holder


def documents() -> Any:
    docs = mongomock.MongoClient().db.docs
    docs.insert_many(
        [
            {"_id": "old", "n": 0, "_fence": 1},
            {"_id": "new", "n": 0, "_fence": 9},
            {"_id": "bare", "n": 0},
        ]
    )
    return docs


def by_id(docs: Any) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in docs.find()}


UPSERTS: dict[str, Callable[[str], Any]] = {
    "update-one": lambda id_: UpdateOne({"_id": id_}, {"$set": {"n": 5}}, upsert=True),
    "replace-one": lambda id_: ReplaceOne({"_id": id_}, {"n": 5}, upsert=True),
    "update-many": lambda id_: UpdateMany({"_id": id_}, {"$set": {"n": 5}}, upsert=True),
}


def stale_upsert_in_an_ordered_bulk(lock: Lock, upsert: Callable[[str], Any]) -> None:
    """The scenario, shared by the test and its mutation."""
    docs = documents()
    with pytest.raises(StaleToken) as caught:
        lock.fenced(docs).bulk_write(
            [
                UpdateOne({"_id": "old"}, {"$set": {"n": 1}}),
                upsert("new"),
                DeleteOne({"_id": "bare"}),
            ]
        )
    error = caught.value
    assert (error.key, error.token, error.newer_token, error.document_id) == ("job", 2, 9, "new")
    assert isinstance(error.__cause__, BulkWriteError)
    assert error.details == error.__cause__.details
    partial = BulkWriteResult(error.details, True)  # type: ignore[arg-type]
    assert (partial.matched_count, partial.modified_count, partial.upserted_count) == (1, 1, 0)
    assert [e["index"] for e in error.details["writeErrors"]] == [1]  # type: ignore[index]
    # The statement before the upsert applied; the upsert changed nothing and added
    # no second document; the one after it was not sent (ordered).
    assert by_id(docs) == {
        "old": {"_id": "old", "n": 1, "_fence": 2},
        "new": {"_id": "new", "n": 0, "_fence": 9},
        "bare": {"_id": "bare", "n": 0},
    }


@pytest.mark.parametrize("upsert", UPSERTS.values(), ids=UPSERTS.keys())
def test_a_stale_upsert_in_a_bulk_raises_stale_token_with_the_partial_result(
    lock: Lock, upsert: Callable[[str], Any]
) -> None:
    stale_upsert_in_an_ordered_bulk(lock, upsert)


def test_mutation_without_the_translation_the_bulk_raises_bulk_write_error(
    lock: Lock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The translation switched off: the test above must fail (pymongo's error gets through)."""
    monkeypatch.setattr(Fence, "refused_upserts", staticmethod(lambda details, requests: []))
    with pytest.raises(BulkWriteError):
        stale_upsert_in_an_ordered_bulk(lock, UPSERTS["update-one"])


def test_unordered_the_other_statements_apply(lock: Lock) -> None:
    docs = documents()
    with pytest.raises(StaleToken) as caught:
        lock.fenced(docs).bulk_write(
            [
                UpdateOne({"_id": "new"}, {"$set": {"n": 5}}, upsert=True),
                UpdateOne({"_id": "fresh"}, {"$set": {"n": 5}}, upsert=True),
                DeleteOne({"_id": "bare"}),
            ],
            ordered=False,
        )
    assert caught.value.document_id == "new"
    assert caught.value.details is not None
    assert caught.value.details["nUpserted"] == 1 and caught.value.details["nRemoved"] == 1
    assert by_id(docs) == {
        "old": {"_id": "old", "n": 0, "_fence": 1},
        "new": {"_id": "new", "n": 0, "_fence": 9},
        "fresh": {"_id": "fresh", "n": 5, "_fence": 2},
    }


def test_an_upsert_over_an_older_document_is_no_error(lock: Lock) -> None:
    docs = documents()
    result = lock.fenced(docs).bulk_write(
        [
            UpdateOne({"_id": "old"}, {"$set": {"n": 5}}, upsert=True),
            ReplaceOne({"_id": "bare"}, {"n": 5}, upsert=True),
        ]
    )
    assert (result.modified_count, result.upserted_count, result.skipped) == (2, 0, 0)


def test_a_duplicate_key_that_no_newer_document_explains_stays_bulk_write_error(
    lock: Lock,
) -> None:
    """An upsert whose own filter does not match the existing _id collides unfenced too."""
    docs = documents()
    with pytest.raises(BulkWriteError) as caught:
        lock.fenced(docs).bulk_write(
            [UpdateOne({"_id": "old", "n": 99}, {"$set": {"n": 5}}, upsert=True)]
        )
    assert caught.value.details["writeErrors"][0]["code"] == 11000
    # A newer _id that the caller's own filter does not match is no StaleToken either.
    with pytest.raises(BulkWriteError):
        lock.fenced(docs).bulk_write(
            [UpdateOne({"_id": "new", "n": 99}, {"$set": {"n": 5}}, upsert=True)]
        )


def test_a_duplicate_insert_in_a_bulk_stays_bulk_write_error(lock: Lock) -> None:
    """Only upserts: an insert over an existing _id fails the same with or without a fence."""
    docs = documents()
    with pytest.raises(BulkWriteError):
        lock.fenced(docs).bulk_write([InsertOne({"_id": "new"})])


def test_stale_token_with_details_pickles(lock: Lock) -> None:
    import pickle

    docs = documents()
    with pytest.raises(StaleToken) as caught:
        lock.fenced(docs).bulk_write([UpdateOne({"_id": "new"}, {"$set": {"n": 5}}, upsert=True)])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.document_id, copy.details) == ("new", caught.value.details)


async def test_async_a_stale_upsert_in_a_bulk_raises_stale_token(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    await AsyncLock("job", backend, ttl=30, clock=clock).acquire()  # type: ignore[arg-type]
    lock = AsyncLock("job", backend, ttl=30, clock=clock)  # type: ignore[arg-type]
    await lock.acquire(force=True)  # token 2
    docs = documents()
    fenced: Any = lock.fenced(AsyncMockCollection(docs))  # type: ignore[arg-type]
    with pytest.raises(StaleToken) as caught:
        await fenced.bulk_write(
            [
                UpdateOne({"_id": "old"}, {"$set": {"n": 1}}),
                UpdateOne({"_id": "new"}, {"$set": {"n": 5}}, upsert=True),
            ]
        )
    assert (caught.value.token, caught.value.newer_token, caught.value.document_id) == (2, 9, "new")
    assert isinstance(caught.value.__cause__, BulkWriteError)
    assert caught.value.details == caught.value.__cause__.details
    assert by_id(docs)["old"] == {"_id": "old", "n": 1, "_fence": 2}
    assert by_id(docs)["new"] == {"_id": "new", "n": 0, "_fence": 9}
    with pytest.raises(BulkWriteError):
        await fenced.bulk_write([InsertOne({"_id": "new"})])
