"""FencedCollection on mongomock: every write is fenced per document, as issue 16 asks."""

from __future__ import annotations

import pickle
from typing import Any

import mongomock
import pymongo.results
import pytest
from pymongo import DeleteMany, DeleteOne, InsertOne, ReturnDocument, UpdateMany
from pymongo.errors import DuplicateKeyError

from mongoelector import LeaderElector, Lock, LockLost, MongoElectorError, NotLeader, StaleToken
from mongoelector.backends import MemoryBackend
from mongoelector.fencing import FencedCollection
from mongoelector.testing import FakeClock


@pytest.fixture
def lock(backend: MemoryBackend, clock: FakeClock) -> Lock:
    Lock("job", backend, ttl=30, clock=clock).acquire()
    backend_lock = Lock("job", backend, ttl=30, clock=clock)
    backend_lock.acquire(force=True)  # token 2: older documents carry 1, newer ones 9
    return backend_lock


@pytest.fixture
def docs() -> Any:
    collection = mongomock.MongoClient().db.docs
    collection.insert_many(
        [
            {"_id": "old", "kind": "a", "n": 0, "_fence": 1},
            {"_id": "new", "kind": "a", "n": 0, "_fence": 9},
            {"_id": "bare", "kind": "b", "n": 0},
        ]
    )
    return collection


@pytest.fixture
def fenced(lock: Lock, docs: Any) -> FencedCollection[Any]:
    return lock.fenced(docs)


def all_docs(docs: Any) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in docs.find()}


def test_update_one_stamps_older_and_unfenced_documents(fenced: Any, docs: Any) -> None:
    assert fenced.update_one({"_id": "old"}, {"$inc": {"n": 1}}).modified_count == 1
    assert fenced.update_one({"_id": "bare"}, {"$set": {"n": 5}}).modified_count == 1
    assert docs.find_one({"_id": "old"}) == {"_id": "old", "kind": "a", "n": 1, "_fence": 2}
    assert docs.find_one({"_id": "bare"}) == {"_id": "bare", "kind": "b", "n": 5, "_fence": 2}


def test_update_one_refuses_a_newer_document_and_changes_nothing(fenced: Any, docs: Any) -> None:
    before = all_docs(docs)
    with pytest.raises(StaleToken) as caught:
        fenced.update_one({"_id": "new"}, {"$inc": {"n": 1}})
    error = caught.value
    assert isinstance(error, MongoElectorError)
    assert (error.key, error.token, error.newer_token, error.document_id) == ("job", 2, 9, "new")
    assert "'new'" in str(error) and "token 9" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.key, copy.token, copy.newer_token, copy.document_id, str(copy)) == (
        "job",
        2,
        9,
        "new",
        str(error),
    )
    assert all_docs(docs) == before


def test_update_one_on_no_document_is_a_no_op(fenced: Any) -> None:
    result = fenced.update_one({"_id": "missing"}, {"$set": {"n": 1}})
    assert type(result) is pymongo.results.UpdateResult
    assert result.matched_count == 0


def test_an_upsert_creates_a_stamped_document(fenced: Any, docs: Any) -> None:
    result = fenced.update_one({"_id": "fresh"}, {"$set": {"n": 1}}, upsert=True)
    assert result.upserted_id == "fresh"
    assert docs.find_one({"_id": "fresh"}) == {"_id": "fresh", "n": 1, "_fence": 2}


def test_an_upsert_meeting_a_newer_document_raises_and_creates_none(fenced: Any, docs: Any) -> None:
    before = all_docs(docs)
    for write in (
        lambda: fenced.update_one({"_id": "new"}, {"$set": {"n": 1}}, upsert=True),
        lambda: fenced.replace_one({"_id": "new"}, {"n": 1}, upsert=True),
        lambda: fenced.find_one_and_update({"_id": "new"}, {"$set": {"n": 1}}, upsert=True),
        lambda: fenced.find_one_and_replace({"_id": "new"}, {"n": 1}, upsert=True),
        lambda: fenced.update_many({"_id": "new"}, {"$set": {"n": 1}}, upsert=True),
    ):
        with pytest.raises(StaleToken):
            write()
    assert all_docs(docs) == before


def test_an_upsert_must_pin_the_id(fenced: Any, docs: Any) -> None:
    before = all_docs(docs)
    with pytest.raises(ValueError, match="_id by equality"):
        fenced.update_one({"kind": "a"}, {"$set": {"n": 1}}, upsert=True)
    assert all_docs(docs) == before
    assert fenced.update_one({"_id": {"$eq": "x"}}, {"$set": {"n": 1}}, upsert=True).upserted_id


def test_replace_one_stamps_the_replacement_and_refuses_newer(fenced: Any, docs: Any) -> None:
    fenced.replace_one({"_id": "old"}, {"kind": "c"})
    assert docs.find_one({"_id": "old"}) == {"_id": "old", "kind": "c", "_fence": 2}
    with pytest.raises(StaleToken):
        fenced.replace_one({"_id": "new"}, {"kind": "c"})
    assert docs.find_one({"_id": "new"})["kind"] == "a"


def test_delete_one_deletes_older_and_refuses_newer(fenced: Any, docs: Any) -> None:
    assert fenced.delete_one({"_id": "old"}).deleted_count == 1
    with pytest.raises(StaleToken):
        fenced.delete_one({"_id": "new"})
    assert fenced.delete_one({"_id": "missing"}).deleted_count == 0
    assert set(all_docs(docs)) == {"new", "bare"}


def test_find_one_and_writes(fenced: Any, docs: Any) -> None:
    after = fenced.find_one_and_update(
        {"_id": "old"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": "old", "kind": "a", "n": 1, "_fence": 2}
    replaced = fenced.find_one_and_replace({"_id": "bare"}, {"kind": "z"})
    assert replaced == {"_id": "bare", "kind": "b", "n": 0}
    assert docs.find_one({"_id": "bare"}) == {"_id": "bare", "kind": "z", "_fence": 2}
    assert fenced.find_one_and_delete({"_id": "old"})["_id"] == "old"
    assert fenced.find_one_and_update({"_id": "missing"}, {"$set": {"n": 1}}) is None
    for write in (
        lambda: fenced.find_one_and_update({"_id": "new"}, {"$set": {"n": 1}}),
        lambda: fenced.find_one_and_replace({"_id": "new"}, {"n": 1}),
        lambda: fenced.find_one_and_delete({"_id": "new"}),
    ):
        with pytest.raises(StaleToken):
            write()
    assert docs.find_one({"_id": "new"}) == {"_id": "new", "kind": "a", "n": 0, "_fence": 9}


def test_a_single_write_picks_an_eligible_document_over_a_newer_one(fenced: Any) -> None:
    assert fenced.update_one({"kind": "a"}, {"$set": {"n": 7}}).modified_count == 1
    assert fenced.find_one({"_id": "old"})["n"] == 7
    with pytest.raises(StaleToken) as caught:
        fenced.delete_one({"kind": "a", "n": 0})
    assert caught.value.document_id == "new"


def test_inserts_are_stamped(fenced: Any, docs: Any) -> None:
    document: dict[str, Any] = {"kind": "d"}
    result = fenced.insert_one(document)
    assert type(result) is pymongo.results.InsertOneResult
    assert document == {"kind": "d", "_id": result.inserted_id}
    assert docs.find_one({"_id": result.inserted_id})["_fence"] == 2
    many = fenced.insert_many([{"_id": 1}, {"_id": 2}])
    assert many.inserted_ids == [1, 2]
    assert [d["_fence"] for d in docs.find({"_id": {"$in": [1, 2]}})] == [2, 2]


def test_an_insert_over_a_newer_document_raises_stale_token(fenced: Any, docs: Any) -> None:
    with pytest.raises(StaleToken) as caught:
        fenced.insert_one({"_id": "new"})
    assert caught.value.newer_token == 9
    with pytest.raises(DuplicateKeyError):
        fenced.insert_one({"_id": "old"})


def test_many_writes_skip_newer_documents_and_count_them(fenced: Any, docs: Any) -> None:
    updated = fenced.update_many({"kind": "a"}, {"$set": {"n": 3}})
    assert isinstance(updated, pymongo.results.UpdateResult)
    assert (updated.modified_count, updated.skipped) == (1, 1)
    assert {d["_id"]: d["n"] for d in docs.find()} == {"old": 3, "new": 0, "bare": 0}
    deleted = fenced.delete_many({})
    assert isinstance(deleted, pymongo.results.DeleteResult)
    assert (deleted.deleted_count, deleted.skipped) == (2, 1)
    assert set(all_docs(docs)) == {"new"}


def test_bulk_write_fences_each_request(fenced: Any, docs: Any) -> None:
    result = fenced.bulk_write(
        [
            InsertOne({"_id": "ins"}),
            UpdateMany({"kind": "a"}, {"$set": {"n": 4}}),
            DeleteOne({"_id": "new"}),
            DeleteMany({"_id": "bare"}),
        ]
    )
    assert isinstance(result, pymongo.results.BulkWriteResult)
    assert (result.inserted_count, result.modified_count, result.deleted_count) == (1, 1, 1)
    assert result.skipped == 2  # "new": by the UpdateMany and by the DeleteOne
    assert all_docs(docs) == {
        "ins": {"_id": "ins", "_fence": 2},
        "old": {"_id": "old", "kind": "a", "n": 4, "_fence": 2},
        "new": {"_id": "new", "kind": "a", "n": 0, "_fence": 9},
    }


def test_pipeline_updates_get_a_final_stamping_stage(fenced: Any, docs: Any) -> None:
    fenced.update_many({"kind": "a"}, [{"$set": {"n": {"$add": ["$n", 2]}}}])
    assert docs.find_one({"_id": "old"}) == {"_id": "old", "kind": "a", "n": 2, "_fence": 2}


@pytest.mark.parametrize(
    "update",
    [
        {"$set": {"_fence": 100}},
        {"$inc": {"_fence": 1}},
        {"$unset": {"_fence": ""}},
        [{"$unset": "_fence"}],
        [{"$set": {"_fence": 1}}],
    ],
)
def test_an_update_that_writes_the_field_is_refused(fenced: Any, docs: Any, update: Any) -> None:
    before = all_docs(docs)
    with pytest.raises(ValueError, match="fencing field"):
        fenced.update_many({}, update)
    with pytest.raises(ValueError, match="fencing field"):
        fenced.insert_one({"_fence": 1})
    assert all_docs(docs) == before


def test_reads_pass_through(fenced: Any, docs: Any) -> None:
    assert fenced.collection is docs
    assert fenced.find_one({"_id": "new"})["_fence"] == 9
    assert [d["_id"] for d in fenced.find({"kind": "a"}).sort("_id")] == ["new", "old"]
    assert fenced.count_documents({"kind": "a"}) == 2
    assert sorted(fenced.distinct("kind")) == ["a", "b"]
    assert list(fenced.aggregate([{"$count": "n"}])) == [{"n": 3}]


def test_a_custom_field(lock: Lock, docs: Any) -> None:
    fenced = lock.fenced(docs, field="meta.fence")
    fenced.update_one({"_id": "old"}, {"$set": {"n": 1}})
    assert docs.find_one({"_id": "old"})["meta"] == {"fence": 2}
    docs.update_one({"_id": "bare"}, {"$set": {"meta.fence": 5}})
    with pytest.raises(StaleToken) as caught:
        fenced.update_one({"_id": "bare"}, {"$set": {"n": 1}})
    assert caught.value.newer_token == 5
    with pytest.raises(ValueError):
        lock.fenced(docs, field="_id")


class Spy:
    """A collection that records every call: no call means nothing was sent."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        raise AssertionError(f"{name} was called")


WRITES: list[tuple[str, tuple[Any, ...]]] = [
    ("insert_one", ({"a": 1},)),
    ("insert_many", ([{"a": 1}],)),
    ("update_one", ({"_id": 1}, {"$set": {"a": 1}})),
    ("update_many", ({}, {"$set": {"a": 1}})),
    ("replace_one", ({"_id": 1}, {"a": 1})),
    ("delete_one", ({"_id": 1},)),
    ("delete_many", ({},)),
    ("find_one_and_update", ({"_id": 1}, {"$set": {"a": 1}})),
    ("find_one_and_replace", ({"_id": 1}, {"a": 1})),
    ("find_one_and_delete", ({"_id": 1},)),
    ("bulk_write", ([DeleteMany({})],)),
]


@pytest.mark.parametrize(("method", "args"), WRITES)
def test_a_write_after_the_renew_deadline_raises_lock_lost_and_sends_nothing(
    backend: MemoryBackend, clock: FakeClock, method: str, args: tuple[Any, ...]
) -> None:
    lock = Lock("job", backend, ttl=30, clock=clock)
    lock.acquire()
    spy = Spy()
    fenced: Any = lock.fenced(spy)  # type: ignore[arg-type]
    clock.advance(lock.renew_deadline)
    with pytest.raises(LockLost, match="renew deadline"):
        getattr(fenced, method)(*args)
    assert spy.calls == []


def test_the_token_is_taken_at_each_call(backend: MemoryBackend, clock: FakeClock) -> None:
    docs = mongomock.MongoClient().db.docs
    lock = Lock("job", backend, ttl=30, clock=clock)
    fenced = lock.fenced(docs)
    with pytest.raises(LockLost):
        fenced.insert_one({"_id": 1})
    lock.acquire()
    fenced.insert_one({"_id": 1})
    lock.release()
    lock.acquire()
    fenced.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert docs.find_one({"_id": 1}) == {"_id": 1, "a": 1, "_fence": 2}


def test_an_elector_fences_with_its_current_term(backend: MemoryBackend, clock: FakeClock) -> None:
    docs = mongomock.MongoClient().db.docs
    elector = LeaderElector("jobs", backend, ttl=15, clock=clock, report_status=False)
    with pytest.raises(NotLeader):
        elector.fenced(docs)
    elector.poll()
    assert elector.is_leader
    fenced = elector.fenced(docs)
    fenced.insert_one({"_id": 1})
    assert docs.find_one({"_id": 1}) == {"_id": 1, "_fence": elector.token}
    clock.advance(elector.timing.renew_deadline)
    with pytest.raises(LockLost, match=r"leadership of 'jobs' \(token 1\) ended"):
        fenced.update_one({"_id": 1}, {"$set": {"a": 1}})
    while not elector.is_leader:  # the lease lapses; a new term, with a new token
        clock.advance(1)
        elector.poll()
    assert elector.token == 2
    with pytest.raises(LockLost):  # the old wrapper stays refused
        fenced.update_one({"_id": 1}, {"$set": {"a": 1}})
    elector.fenced(docs).update_one({"_id": 1}, {"$set": {"a": 1}})
    assert docs.find_one({"_id": 1}) == {"_id": 1, "a": 1, "_fence": 2}


def test_insert_many_over_a_newer_document_stays_pymongos_bulk_write_error(
    fenced: Any, docs: Any
) -> None:
    """As docs/locks.md says: only ``insert_one`` tells a newer ``_id`` apart."""
    with pytest.raises(pymongo.errors.BulkWriteError):
        fenced.insert_many([{"_id": "new"}])
    assert docs.find_one({"_id": "new"})["_fence"] == 9
